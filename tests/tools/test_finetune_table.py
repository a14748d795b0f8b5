"""tools/analysis_tools/finetune_table.py: its command line, table and claims; the tiny run end to
end is marked slow (minutes: two pretrainings, four fine-tunes and tests)."""
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import finetune_table  # noqa: E402


def fake(auc, dice, seed=0, **extra):
    m = {'tumor/auc': auc, 'tumor/dice': dice, 'tumor/auc/liver': auc + 0.05,
         'tumor/dice/liver': dice + 0.1, 'tumor/dice_num_studies': 35, '_seed': seed,
         '_train_seconds': 240, '_test_seconds': 60, '_max_iters': 300,
         '_run': {'date': '2026-11-29T10:00:00', 'device': 'x86_64 CPU (2 cores)'}}
    m.update(extra)
    return m


def test_command_names_every_option_that_changes_results():
    args = finetune_table.parse_args([])
    assert finetune_table.command(args) == (
        'python tools/analysis_tools/finetune_table.py --families nnunet mit --seeds 0 1 2')
    args = finetune_table.parse_args(['--families', 'mit', '--seeds', '0', '--max-iters', '50',
                                      '--pretrain-max-iters', '100', '--no-scratch-check',
                                      '--cfg-options', 'a.b=1'])
    assert finetune_table.command(args) == (
        'python tools/analysis_tools/finetune_table.py --families mit --seeds 0 '
        '--pretrain-max-iters 100 --max-iters 50 --cfg-options a.b=1 --no-scratch-check')


def test_pretraining_overrides_of_the_user_win_over_the_scripts_seed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(finetune_table, 'run', lambda cmd, log: calls.append(cmd))
    args = finetune_table.parse_args(['--pretrain-dir', str(tmp_path), '--pretrain-max-iters',
                                      '7', '--pretrain-cfg-options', 'randomness.seed=1'])
    finetune_table.pretrain('mit', 'ctglip', args)
    options = calls[0][calls[0].index('--cfg-options') + 1:]
    assert options[-1] == 'randomness.seed=1'
    assert options.index('randomness.seed=0') < options.index('randomness.seed=1')
    assert 'train_cfg.max_iters=7' in options
    assert '--pretrain-cfg-options randomness.seed=1' in finetune_table.command(args)


def test_family_seeds_run_one_family_with_other_seeds(capsys):
    args = finetune_table.parse_args(['--family-seeds', 'mit=0'])
    assert finetune_table.family_seeds(args, 'mit') == [0]
    assert finetune_table.family_seeds(args, 'nnunet') == [0, 1, 2]
    assert '--seeds 0 1 2 --family-seeds mit=0' in finetune_table.command(args)
    results = {('nnunet', 'scratch'): [fake(0.70, 0.50, s) for s in (0, 1, 2)],
               ('mit', 'scratch'): [fake(0.60, 0.40, 0)]}
    caption = finetune_table.caption(results, args)
    assert 'nnunet: mean (min-max) over seeds 0, 1, 2; mit: seed 0' in caption
    for bad in ('vit=0', 'mit=', 'mit=a'):
        with pytest.raises(SystemExit):
            finetune_table.parse_args(['--family-seeds', bad])
    assert '--family-seeds' in capsys.readouterr().err


def test_caption_names_each_familys_schedule_and_devices():
    args = finetune_table.parse_args([])
    gpu = {'date': '2026-11-30T18:00:00', 'device': 'NVIDIA H200 GPU'}
    results = {('nnunet', 'scratch'): [fake(0.70, 0.50, s, _max_iters=2400) for s in (0, 1)],
               ('nnunet', 'scratch-2x'): [fake(0.71, 0.55, 0, _max_iters=4800)],
               ('mit', 'scratch'): [fake(0.60, 0.40, 0, _max_iters=4800),
                                    fake(0.60, 0.40, 1, _max_iters=4800, _run=gpu)]}
    caption = finetune_table.caption(results, args)
    assert 'fine-tuning iterations (batch 2): nnunet 2400, mit 4800 and twice that' in caption
    assert 'on x86_64 CPU (2 cores) and NVIDIA H200 GPU' in caption
    results.pop(('mit', 'scratch'))
    assert '2400 fine-tuning iterations (batch 2)' in finetune_table.caption(results, args)


def test_a_cell_that_only_some_seeds_have_names_them():
    from zeroshot_table import fmt_seeds
    runs = [fake(0.9, 0.5, 0, x=0.6), fake(0.8, 0.5, 1), fake(0.7, 0.5, 2, x=0.4)]
    assert fmt_seeds(runs, 'tumor/auc') == '80.0 (70.0-90.0)'
    assert fmt_seeds(runs, 'x') == '50.0 (40.0-60.0, seeds 0, 2)'
    assert fmt_seeds(runs[:2], 'x') == '60.0 (seed 0)'


def test_table_rows_gains_and_convergence_check():
    args = finetune_table.parse_args(['--families', 'nnunet', '--seeds', '0', '1'])
    results = {('nnunet', 'scratch'): [fake(0.70, 0.50, 0), fake(0.72, 0.52, 1)],
               ('nnunet', 'clip'): [fake(0.80, 0.60, 0), fake(0.82, 0.62, 1)],
               ('nnunet', 'ctglip'): [fake(0.85, 0.65, 0), fake(0.87, 0.67, 1)],
               ('nnunet', 'scratch-2x'): [fake(0.71, 0.505, 0)]}
    text = finetune_table.table(results, args)
    assert finetune_table.command(args) in text
    assert '| nnunet | CT-GLIP | 91.0 (90.0-92.0) | n/a | n/a | 86.0 (85.0-87.0) |' in text
    assert '| nnunet | scratch, 2x iterations |' in text
    assert 'CT-GLIP - CLIP = +5.0 AUC, +5.0 Dice' in text
    assert 'CLIP - scratch = +10.0 AUC, +10.0 Dice' in text
    assert 'converged lower bound' in text and '35 studies' in text
    assert 'One test study moves the overall Dice by 2.9 points' in text
    assert 'empty prediction on an empty truth counts as 1' in text
    results[('nnunet', 'scratch-2x')] = [fake(0.80, 0.50, 0)]
    assert 'NOT converged: scratch still improves' in finetune_table.table(results, args)
    results[('nnunet', 'scratch-2x')] = [fake(0.71, 0.60, 0)]
    assert 'converged in AUC (under 2 points), NOT in Dice' in finetune_table.table(results, args)
    results[('nnunet', 'scratch')][0] = fake(0.52, 0.57, 0)  # chance at both lengths
    results[('nnunet', 'scratch-2x')] = [fake(0.50, 0.57, 0)]
    text = finetune_table.table(results, args)
    assert 'has not learnt the tumors' in text and 'converged lower bound' not in text


def test_a_run_of_another_schedule_is_not_reused(tmp_path):
    """A folder left by a run with another schedule stops the table instead of entering it."""
    import json
    run = tmp_path / 'scratch_nnunet_seed0'
    run.mkdir()
    (run / 'metrics.json').write_text(json.dumps(fake(0.70, 0.50, _max_iters=600)))
    args = finetune_table.parse_args(['--out', str(tmp_path), '--max-iters', '600'])
    assert finetune_table.finetune_and_test('nnunet', 'scratch', 0, args)['tumor/auc'] == 0.70
    args = finetune_table.parse_args(['--out', str(tmp_path), '--max-iters', '1200'])
    with pytest.raises(SystemExit, match=r'600-iteration run, but this table asks for 1200.*'
                                         r'--force'):
        finetune_table.finetune_and_test('nnunet', 'scratch', 0, args)
    with pytest.raises(SystemExit, match='asks for 1200'):  # the 2x check of a 600 schedule
        finetune_table.finetune_and_test('nnunet', 'scratch', 0, finetune_table.parse_args(
            ['--out', str(tmp_path), '--max-iters', '600']), iters_factor=2, tag='')
    assert json.loads((run / 'metrics.json').read_text())['_max_iters'] == 600  # kept


def test_each_readme_section_has_its_own_picture():
    assert finetune_table.picture_name('finetune-table') == 'finetune_example.png'
    assert finetune_table.picture_name('finetune-table-nnunet') == 'finetune_example_nnunet.png'
    assert finetune_table.picture_name('my-section') == 'finetune_example_my_section.png'
    args = finetune_table.parse_args(['--readme-section', 'finetune-table-mit'])
    assert '(docs/finetune_example_mit.png)' in finetune_table.table({}, args)


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tiny_bert, tiny_data, tmp_path):
    """The script on the tiny configs, 1 pretraining and 2 fine-tuning iterations."""
    from ctglip.testing.tumor_data import make_tiny_tumor_dataset
    tumor = make_tiny_tumor_dataset(str(tmp_path / 'tumor'))
    readme = tmp_path / 'README.md'
    readme.write_text('# x\n<!-- finetune-table:start -->\n<!-- finetune-table:end -->\n')
    cmd = [sys.executable, 'tools/analysis_tools/finetune_table.py', '--families', 'tiny',
           '--seeds', '0', '--pretrain-config', 'configs/tests/tiny_{variant}.py',
           '--finetune-config', 'configs/tests/tiny_finetune_{init}.py',
           '--pretrain-data-root', tiny_data, '--data-root', tumor, '--pretrain-max-iters', '1',
           '--max-iters', '2', '--pretrain-cfg-options',
           f'model.text_encoder.model_path={tiny_bert}', '--out', str(tmp_path / 'out'),
           '--update-readme', '--readme', str(readme), '--docs-dir', str(tmp_path / 'docs')]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = readme.read_text()
    assert '| tiny | CT-GLIP |' in text and '| tiny | scratch, 2x iterations |' in text
    assert (tmp_path / 'docs' / 'finetune_example.png').is_file()
    assert (tmp_path / 'out' / 'pretrain' / 'tiny_ctglip' / 'last_checkpoint').is_file()


def _pretraining(tmp_path, iters):
    """A pretraining folder as mmengine leaves it: iter_<N>.pth and last_checkpoint."""
    work = tmp_path / 'ctglip_nnunet_104organ'
    work.mkdir(exist_ok=True)
    ckpt = work / f'iter_{iters}.pth'
    ckpt.write_bytes(b'weights')
    (work / 'last_checkpoint').write_text(str(ckpt))
    return work


def test_a_pretraining_of_another_length_is_not_reused(tmp_path):
    work = _pretraining(tmp_path, 300)
    args = finetune_table.parse_args(['--pretrain-dir', str(tmp_path),
                                      '--pretrain-max-iters', '300'])
    last, _ = finetune_table.pretrain('nnunet', 'ctglip', args)
    assert last == str(work / 'last_checkpoint')
    args = finetune_table.parse_args(['--pretrain-dir', str(tmp_path),
                                      '--pretrain-max-iters', '500'])
    with pytest.raises(SystemExit, match=r'ctglip_nnunet_104organ is a 300-iteration pretraining, '
                                         r'but this table pretrains for 500.*tools/train.py'):
        finetune_table.pretrain('nnunet', 'ctglip', args)


def test_a_finetune_run_of_an_older_pretraining_is_not_reused(tmp_path):
    """Re-pretraining (a longer schedule) makes the fine-tune runs made from the old checkpoint
    stale: reusing them would put the old encoder's numbers under the new one's name."""
    import json
    import os
    work = _pretraining(tmp_path, 300)
    last = str(work / 'last_checkpoint')
    run = tmp_path / 'out' / 'ctglip_nnunet_seed0'
    run.mkdir(parents=True)
    metrics = run / 'metrics.json'
    # recorded with the checkpoint it started from: reused while that file is unchanged
    metrics.write_text(json.dumps(fake(0.70, 0.50, _max_iters=600, _pretrained=(
        finetune_table.pretrained_record(last)))))
    args = finetune_table.parse_args(['--out', str(tmp_path / 'out'), '--max-iters', '600'])
    assert finetune_table.finetune_and_test('nnunet', 'ctglip', 0, args, last)['tumor/auc'] == 0.7
    ckpt = work / 'iter_300.pth'
    os.utime(ckpt, (ckpt.stat().st_atime, ckpt.stat().st_mtime + 60))  # pretrained again
    with pytest.raises(SystemExit, match=r'fine-tuned from another pretraining than .*iter_300'
                                         r'.pth.*--force'):
        finetune_table.finetune_and_test('nnunet', 'ctglip', 0, args, last)
    # a moved pretraining folder: last_checkpoint names the old path, the file is beside it
    (work / 'last_checkpoint').write_text('/gone/ctglip_nnunet_104organ/iter_300.pth')
    assert finetune_table.pretrained_record(last)['checkpoint'] == osp.realpath(ckpt)
    # a run recorded before the checkpoint was written down: stale when older than it
    metrics.write_text(json.dumps(fake(0.70, 0.50, _max_iters=600)))
    os.utime(metrics, (ckpt.stat().st_mtime - 10, ckpt.stat().st_mtime - 10))
    with pytest.raises(SystemExit, match='another pretraining'):
        finetune_table.finetune_and_test('nnunet', 'ctglip', 0, args, last)
    os.utime(metrics, (ckpt.stat().st_mtime + 10, ckpt.stat().st_mtime + 10))
    assert finetune_table.finetune_and_test('nnunet', 'ctglip', 0, args, last)['tumor/auc'] == 0.7


def test_dice_parts_split_the_overall_dice_into_empty_studies_and_tumor_studies(tmp_path):
    """The overall Dice = (tumor-free studies predicted empty + Dice of each tumor study) / N;
    the table's convergence check reports the two parts from the predictions folder."""
    import json
    import nibabel as nib
    import numpy as np
    root = tmp_path / 'data'
    (root / 'images').mkdir(parents=True)
    (root / 'tumor_masks').mkdir()
    truth = np.zeros((4, 4, 4), np.uint8)
    truth[:2, :2, :2] = 1  # 8 voxels
    nib.save(nib.Nifti1Image(truth, np.eye(4)), str(root / 'tumor_masks' / 'a.nii.gz'))
    rows = [{'case_id': 'a', 'image': 'images/a.nii.gz', 'tumor_mask': 'tumor_masks/a.nii.gz'},
            {'case_id': 'b', 'image': 'images/b.nii.gz'},
            {'case_id': 'c', 'image': 'images/c.nii.gz'}]
    (root / 'manifest.jsonl').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    pred = {'a': truth.copy(), 'b': np.zeros_like(truth), 'c': np.zeros_like(truth)}
    pred['a'][0, 0, 0] = 0  # 7 of 8 found: Dice 14 / 15
    pred['c'][3, 3, 3] = 1  # one stray voxel in a tumor-free study
    for case, mask in pred.items():
        folder = tmp_path / 'run' / 'predictions' / case
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(mask, np.eye(4)), str(folder / 'tumor_mask.nii.gz'))
        (folder / 'tumor_probabilities.json').write_text(json.dumps(
            {'image': str(root / 'images' / f'{case}.nii.gz')}))
    parts = finetune_table.dice_parts(str(tmp_path / 'run'))
    assert parts['free'] == 2 and parts['clean'] == 1
    assert parts['tumor_dice'] == pytest.approx(14 / 15)
    assert finetune_table.dice_parts(str(tmp_path / 'none')) is None
    args = finetune_table.parse_args(['--families', 'nnunet', '--seeds', '0'])
    run = fake(0.7, 0.5, _work=str(tmp_path / 'run'))
    text = finetune_table.table({('nnunet', 'scratch'): [run],
                                 ('nnunet', 'scratch-2x'): [dict(run, **{'tumor/dice': 0.6})]},
                                args)
    assert '| 50.0 | 93.3 | 50.0 | 4.0 |' in text  # Dice overall, tumor studies, empty, min
    assert ('Tumor-free studies predicted empty: 1 -> 1 of 2; mean Dice of the studies with a '
            'tumor: 93.3 -> 93.3.') in text
