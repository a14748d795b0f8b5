"""The table-making parts of tools/analysis_tools (the training runs themselves are benchmarks)."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import abnormality_oracle  # noqa: E402
import abnormality_probe  # noqa: E402
import abnormality_supervised  # noqa: E402
import prompt_agreement  # noqa: E402
import pooler_table  # noqa: E402
import zeroshot_table  # noqa: E402


def fake_metrics(auc, val_auc=None):
    m = {'zeroshot/organ_top1': 0.8, 'zeroshot/organ_top5': 0.95, 'zeroshot/abn_auc': auc,
         'zeroshot/abn_auc_ci_low': auc - 0.1, 'zeroshot/abn_auc_ci_high': auc + 0.1,
         'zeroshot/abn_f1': 0.3, 'zeroshot/abn_auc/liver': 0.61,
         'zeroshot/abn_auc/liver/cyst': 0.52, '_train_seconds': 600}
    if val_auc is not None:
        m['_val'] = {'zeroshot/abn_auc': val_auc, 'zeroshot/organ_top1': 0.7}
    return m


def test_zeroshot_command_names_every_option_that_changes_results():
    args = zeroshot_table.parse_args(['--families', 'mit', '--max-iters', '300'])
    assert zeroshot_table.command(args) == \
        'python tools/analysis_tools/zeroshot_table.py --families mit --max-iters 300'
    args = zeroshot_table.parse_args(['--families', 'mit', 'nnunet', '--variants', 'ctglip',
                                      '--data-root', 'data/x', '--cfg-options', 'a.b=1'])
    assert zeroshot_table.command(args) == (
        'python tools/analysis_tools/zeroshot_table.py --families mit nnunet --variants ctglip '
        '--data-root data/x --cfg-options a.b=1')


def test_zeroshot_table_rows_and_intervals():
    args = zeroshot_table.parse_args(['--families', 'mit'])
    text = zeroshot_table.table({('mit', 'ctglip', 'CT-GLIP'): [fake_metrics(0.6)]}, args)
    row = [line for line in text.splitlines() if '| CT-GLIP |' in line]
    assert row[0].startswith('| mit | CT-GLIP | 80.0 | 95.0 | 30.0 | n/a | n/a | 60.0 (50-70) |')
    assert '| mit | CT-GLIP | 61.0 |' in text  # per-group AUC row
    assert zeroshot_table.command(args) in text


def test_zeroshot_table_with_seeds_and_claims():
    args = zeroshot_table.parse_args(['--families', 'nnunet', '--seeds', '0', '1', '2'])
    assert zeroshot_table.command(args).endswith('--families nnunet --seeds 0 1 2')

    def runs(auc, f1):
        out = []
        for d in (-0.01, 0.0, 0.01):
            m = fake_metrics(auc + d)
            m['zeroshot/abn_f1'] = f1 + d
            out.append(m)
        return out
    results = {('nnunet', 'clip', 'vanilla CLIP (report)'): runs(0.5, 0.10),
               ('nnunet', 'clip-findings', 'vanilla CLIP (findings)'): runs(0.55, 0.12),
               ('nnunet', 'anatomy', 'anatomy only'): runs(0.6, 0.15),
               ('nnunet', 'ctglip-nodict', 'CT-GLIP w/o dictionary'): runs(0.7, 0.2),
               ('nnunet', 'ctglip', 'CT-GLIP'): runs(0.8, 0.3)}
    text = zeroshot_table.table(results, args)
    assert '| nnunet | CT-GLIP | 80.0 (80.0-80.0) | 95.0 (95.0-95.0) | 30.0 (29.0-31.0) |' in text
    assert 'mean (min-max) over seeds 0, 1, 2' in text
    assert '| nnunet | CT-GLIP | 79.0 (69-89) | 29.0 |' in text  # seed 0 with its interval
    assert 'order (CT-GLIP > w/o dictionary > anatomy only > CLIP) holds' in text
    assert 'CT-GLIP - CLIP = +18.0 F1 points' in text
    # intervals 70-90 vs CLIP rows up to 66: above in all three seeds
    assert 'above the intervals of both CLIP rows in 3 of 3 seed(s)' in text
    results[('nnunet', 'anatomy', 'anatomy only')] = runs(0.6, 0.25)
    assert 'does not hold' in zeroshot_table.table(results, args)


def recorded_metrics(auc, device, date, val_calibrated=1.0, skipped=0):
    m = fake_metrics(auc)
    m.update({'zeroshot/abn_thresholds_val_calibrated': val_calibrated,
              'zeroshot/abn_thresholds_self_calibrated': 1.0 - val_calibrated,
              'zeroshot/abn_ci_level': 0.9, 'zeroshot/abn_bootstrap_skipped': skipped,
              'zeroshot/abn_bootstrap_used': 1000 - skipped,
              '_run': {'device': device, 'date': date}})
    return m


def test_zeroshot_caption_states_what_the_runs_recorded():
    args = zeroshot_table.parse_args(['--families', 'mit'])
    one = {('mit', 'ctglip', 'CT-GLIP'):
           [recorded_metrics(0.6, 'NVIDIA H200 GPU', '2031-02-03T10:00:00+00:00')]}
    caption = zeroshot_table.table(one, args).splitlines()[0]
    assert 'measured 2031-02-03 on NVIDIA H200 GPU, with `python' in caption
    assert 'bootstrap 90% intervals' in caption
    assert 'thresholds chosen on the validation split of the same run.' in caption
    assert 'CPU' not in caption and 'skipped' not in caption

    two = dict(one)
    two[('mit', 'clip', 'vanilla CLIP (report)')] = [recorded_metrics(
        0.5, 'x86_64 CPU (2 cores)', '2031-02-01T23:00:00+00:00', val_calibrated=0.0,
        skipped=250)]
    caption = zeroshot_table.caption(two, args)
    assert 'measured 2031-02-01 to 2031-02-03 on NVIDIA H200 GPU and x86_64 CPU (2 cores)' \
        in caption
    assert ('thresholds chosen on the validation split of the same run for mit CT-GLIP; '
            'chosen on the test split itself (optimistic) for mit vanilla CLIP (report)') \
        in caption
    assert 'more than 10% were in: mit vanilla CLIP (report) (250 of 1000)' in caption

    # metrics reused from before the runs were recorded are called out, not papered over
    old = {('mit', 'ctglip', 'CT-GLIP'): [fake_metrics(0.6)]}
    caption = zeroshot_table.caption(old, args)
    assert 'measured on an unrecorded date and device (1 of 1 runs reused metrics' in caption
    assert 'thresholds of unrecorded source' in caption
    assert 'bootstrap intervals (level not recorded)' in caption
    assert zeroshot_table.threshold_source(
        {'zeroshot/abn_thresholds_val_calibrated': 0.0,
         'zeroshot/abn_thresholds_self_calibrated': 0.0}) == 'given'


def test_zeroshot_main_updates_the_readme_section(tmp_path, monkeypatch, capsys):
    import readme_section
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'manifest.jsonl').write_text('')
    (tmp_path / 'docs').mkdir()
    readme = tmp_path / 'README.md'
    readme.write_text('intro\n<!-- zeroshot-table:start -->\nold table\n'
                      '<!-- zeroshot-table:end -->\nrest\n')
    metrics = recorded_metrics(0.6, 'Fake Accelerator 9000', '2031-02-03T10:00:00+00:00')
    monkeypatch.setattr(zeroshot_table, 'train_and_test', lambda *a: dict(metrics))
    monkeypatch.setattr(zeroshot_table, 'REPO', str(tmp_path))  # docs/ radar copies go here
    real_update = readme_section.update_readme
    monkeypatch.setattr(readme_section, 'update_readme',
                        lambda name, markdown: real_update(name, markdown, readme=str(readme)))
    zeroshot_table.main(['--families', 'mit', '--variants', 'ctglip', '--data-root', str(data),
                         '--out', str(tmp_path / 'out'), '--update-readme'])
    text = readme.read_text()
    assert 'old table' not in text and text.startswith('intro\n') and text.endswith('rest\n')
    assert 'on Fake Accelerator 9000' in text and '| mit | CT-GLIP | 80.0 |' in text
    assert (tmp_path / 'docs' / 'zeroshot_radar_mit.png').stat().st_size > 0


def test_zeroshot_table_refuses_a_missing_custom_data_root(tmp_path):
    args = zeroshot_table.parse_args(['--data-root', str(tmp_path / 'nothing')])
    with pytest.raises(SystemExit, match='holds no manifest.jsonl'):
        zeroshot_table.ensure_data(args)


def test_zeroshot_table_refuses_a_run_of_another_length(tmp_path):
    """A reused run must be as long as the table says (the MiT configs went from 300 to 500
    iterations; a 300-iteration folder must not enter a 500-iteration table)."""
    work = tmp_path / 'ctglip_mit'
    work.mkdir()
    (work / 'metrics.json').write_text(json.dumps(fake_metrics(0.8)))
    (work / 'last_checkpoint').write_text(str(work / 'iter_300.pth'))
    args = zeroshot_table.parse_args(['--out', str(tmp_path), '--max-iters', '300'])
    assert zeroshot_table.train_and_test('mit', 'ctglip', args)['zeroshot/abn_auc'] == 0.8
    args = zeroshot_table.parse_args(['--out', str(tmp_path)])  # the config's 500
    with pytest.raises(SystemExit, match=r'ctglip_mit is a 300-iteration run, but this table '
                                         r'trains 500 iterations.*--max-iters 300'):
        zeroshot_table.train_and_test('mit', 'ctglip', args)
    assert zeroshot_table.checkpoint_iters(str(tmp_path / 'missing')) is None


def test_with_val_metrics_reads_the_calibration_run(tmp_path):
    (tmp_path / 'val_calibration').mkdir()
    (tmp_path / 'val_calibration' / 'val_metrics.json').write_text('{"zeroshot/abn_auc": 0.7}')
    assert zeroshot_table.with_val_metrics({}, str(tmp_path))['_val'] == {'zeroshot/abn_auc': 0.7}
    assert '_val' not in zeroshot_table.with_val_metrics({}, str(tmp_path / 'none'))


def test_pooler_choice_uses_validation_not_test():
    results = {'A': fake_metrics(0.9, val_auc=0.55), 'B': fake_metrics(0.5, val_auc=0.65),
               'C': fake_metrics(0.99)}  # no validation metrics: not eligible
    assert pooler_table.choose(results) == 'B'
    text = pooler_table.table(results, pooler_table.parse_args([]), 'B')
    assert '| **B** (chosen) | 65.0 | 70.0 | 80.0 |' in text
    assert '| liver/cyst | 52.0 | 52.0 | 52.0 |' in text  # per-abnormality table
    assert pooler_table.choose({'C': fake_metrics(0.9)}) is None


def test_pooler_runs_differ_only_in_the_pooler():
    args = pooler_table.parse_args(['--max-iters', '10'])
    a, b = (vars(pooler_table.run_args(args, p)) for p in ('OrganMaskPooler', 'OrganGeMPooler'))
    assert a['cfg_options'] == ['model.pooler.type=OrganMaskPooler']
    assert {k for k in a if a[k] != b[k]} == {'cfg_options', 'out'}


def test_oracle_features_by_hand():
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    feats = dict(zip(abnormality_oracle.FEATURES, abnormality_oracle.organ_features(values)))
    assert feats['mean'] == 2.0 and feats['min'] == 0.0 and feats['max'] == 4.0
    assert feats['p50'] == 2.0 and feats['std'] == pytest.approx(np.sqrt(2.0))
    assert feats['log_voxels'] == pytest.approx(np.log(5))


def test_oracle_runs_on_a_manifest_dataset(tiny_data, capsys):
    from ctglip.datasets.organs import all_abnormalities
    abnormality_oracle.main([osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'),
                             '--data-root', tiny_data])
    out = capsys.readouterr().out
    for abnormality in all_abnormalities():
        assert f'| {abnormality} |' in out


def test_supervised_labels_cover_the_organ_group_only():
    import torch

    from ctglip.datasets.organs import all_abnormalities, organ_vocabulary
    from ctglip.structures import CTDataSample
    vocab = organ_vocabulary()
    names = list(all_abnormalities())
    index = {a: i for i, a in enumerate(names)}
    sample = CTDataSample(metainfo=dict(abnormalities={'liver': ['liver cyst']}))
    valid = torch.zeros(1, len(vocab), dtype=torch.bool)
    for organ in ('liver', 'spleen', 'aorta'):  # aorta: no abnormality group
        valid[0, vocab.index(organ)] = True
    rows, targets, masks = abnormality_supervised.label_rows([sample], vocab, valid, names, index)
    organs = [vocab[k] for _, k in rows]  # in vocabulary order
    assert sorted(organs) == ['liver', 'spleen']
    liver, spleen = organs.index('liver'), organs.index('spleen')
    assert masks[liver].sum() == 4 and masks[spleen].sum() == 2  # 4 and 2 abnormalities
    assert targets[liver, index['liver cyst']] == 1 and targets.sum() == 1


def test_supervised_ceiling_runs_on_a_manifest_dataset(tiny_data, capsys):
    abnormality_supervised.main([osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'),
                                 '--data-root', tiny_data, '--iters', '2',
                                 '--splits', 'train', 'test', '--device', 'cpu'])
    out = capsys.readouterr().out
    assert 'supervised ceiling of tiny_ctglip.py: 2 iterations' in out and 'on cpu)' in out
    assert '| abnormality | train units (pos) | train AUC | test units (pos) | test AUC |' in out
    assert '| liver cyst |' in out
    assert 'mean supervised train AUC' in out and 'mean supervised test AUC' in out


def test_probe_runs_on_an_untrained_model(tiny_data, capsys):
    abnormality_probe.main([osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'), 'none',
                            '--data-root', tiny_data, '--fit-split', 'train', '--device', 'cpu'])
    out = capsys.readouterr().out
    assert '| abnormality | test units (pos) | zero-shot AUC | linear-probe AUC |' in out
    assert 'mean zero-shot AUC' in out


def test_prompt_agreement_reads_finding_texts_of_abnormal_organs(tmp_path):
    import json
    studies = [
        dict(findings={'liver': ['A 1 cm cyst in segment VI.'], 'spleen': ['Normal spleen.']},
             abnormalities={'liver': ['liver cyst']}),
        dict(findings={'kidney_left': ['Left renal stone.']},
             abnormalities={'kidney_left': ['kidney stone'], 'aorta': ['aortic calcification']}),
        dict(findings={}, abnormalities=None),
    ]
    manifest = tmp_path / 'manifest.jsonl'
    manifest.write_text(''.join(json.dumps(s) + '\n' for s in studies))
    assert prompt_agreement.finding_texts(str(manifest)) == {
        ('liver', 'liver cyst'): [('liver', 'A 1 cm cyst in segment VI.')],
        ('kidney', 'kidney stone'): [('kidney_left', 'Left renal stone.')]}
    with pytest.raises(SystemExit, match='holds no manifest.jsonl'):
        prompt_agreement.main([str(tmp_path / 'missing')])


def test_supervised_head_is_standardised_and_has_its_own_learning_rate(tiny_data, tmp_path,
                                                                       monkeypatch):
    head = abnormality_supervised.supervised_head(1, 1, num_organs=2)
    with torch.no_grad():
        head.linear.weight.fill_(1.0)
        head.linear.bias.zero_()
    organ = torch.tensor([0] * 4 + [1] * 4)
    x = torch.tensor([[0.1], [0.2], [0.3], [0.4], [10.0], [10.1], [10.2], [10.3]])
    head.train()
    z = head(x, organ)
    # standardised within each organ: two organs far apart both span -1.34 .. 1.34
    assert torch.allclose(z[:4], z[4:], atol=1e-3) and z[:4].mean().abs() < 1e-4
    # later rows use the statistics of every row seen of their organ, not their batch's
    assert head(torch.tensor([[0.0]]), torch.tensor([0])) < -1
    head.eval()
    frozen = head(x, organ)
    assert torch.allclose(head(x, organ), frozen)  # no update at test
    groups = {}
    from mmengine import optim as mm_optim
    real_build = mm_optim.build_optim_wrapper

    def spy(model, cfg):
        wrapper = real_build(model, cfg)
        for g in wrapper.optimizer.param_groups:
            groups[id(g['params'][0])] = (g['lr'], g['weight_decay'])
        return wrapper
    monkeypatch.setattr(abnormality_supervised, 'build_optim_wrapper', spy, raising=False)
    import mmengine.optim
    monkeypatch.setattr(mmengine.optim, 'build_optim_wrapper', spy)
    out = tmp_path / 'summary.json'
    summary = abnormality_supervised.main(
        [osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'), '--data-root', tiny_data,
         '--iters', '2', '--head-lr', '0.05', '--device', 'cpu', '--json', str(out)],
        overrides={'model': dict(backbone=dict(_delete_=True, type='IdentityBackbone'),
                                 intensity_skip=dict(type='OrganIntensityStats'))})
    # the identity backbone has no parameters: the pooler has none either, so every group is
    # the head's, at the head's learning rate without weight decay
    assert groups and all(wd == 0.0 for _, wd in groups.values())
    assert any(abs(lr - 0.05) < 1e-9 for lr, _ in groups.values())
    assert json.loads(out.read_text())['test']['auc'].keys() == summary['test']['auc'].keys()
    assert summary['train_studies_seen'] == 2 * 2


def test_ladder_runs_rungs_and_writes_the_docs_table(tiny_data, tmp_path, monkeypatch):
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    import abnormality_ladder
    monkeypatch.setitem(abnormality_ladder.RUNGS, 'oracle-stats', (
        'stats + LR', 'oracle', 'configs/tests/tiny_ctglip.py', 'stats'))
    monkeypatch.setitem(abnormality_ladder.RUNGS, 'identity-skip', (
        'identity + skip', 'supervised', 'configs/tests/tiny_ctglip.py',
        abnormality_ladder.RUNGS['identity-skip'][3]))
    doc = tmp_path / 'doc.md'
    doc.write_text('a\n<!-- ladder-table:start -->\nold\n<!-- ladder-table:end -->\nb\n')
    monkeypatch.setattr(abnormality_ladder, 'DOC', str(doc))
    try:
        abnormality_ladder.main(['--data-root', tiny_data, '--iters', '2', '--rungs',
                                 'oracle-stats', 'identity-skip', '--out-dir',
                                 str(tmp_path / 'out'), '--device', 'cpu', '--update-docs'])
    except ValueError as e:  # the tiny set may lack both classes for every abnormality
        pytest.skip(f'tiny data has no evaluable abnormality: {e}')
    text = doc.read_text()
    assert 'old' not in text and '| identity-skip | identity + skip |' in text
    assert (tmp_path / 'out' / 'identity-skip.json').is_file()
    assert '--rungs oracle-stats identity-skip' in text


def test_ladder_learning_curve_table():
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    import abnormality_ladder
    args = abnormality_ladder.main.__globals__['argparse'].Namespace(data_root='d')
    points = {50: dict(train_minutes=0.4, train_studies_seen=200, train_studies=1688,
                       device='cpu', test=dict(mean_auc=0.6)),
              1000: dict(train_minutes=7.0, train_studies_seen=4000, train_studies=1688,
                         device='cpu', test=dict(mean_auc=0.9))}
    text = abnormality_ladder.curve_table('nnunet-skip', points, args)
    assert '--curve nnunet-skip --curve-iters 50 1000' in text
    assert '| 50 | 0.4 | 200 of 1688 | 60.0 |' in text
    assert '| 1000 | 7.0 | 1688 of 1688 | 90.0 |' in text  # a study seen twice counts once


def test_every_supervised_ladder_rung_states_its_intensity_skip():
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    import abnormality_ladder
    for name, (_, kind, _, extra) in abnormality_ladder.RUNGS.items():
        if kind == 'supervised':
            skip = extra['model']['intensity_skip']
            assert (skip is not None) == name.endswith('skip'), name
