"""CT-RATE end to end: a fake download in the real layout -> converter -> tools/train.py ->
tools/test.py zero-shot, with the CT-RATE vocabulary and configs (tiny: seconds of training)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO

TINY = 'configs/tests/tiny_ctglip_ct_rate.py'
CT_RATE_LABELS = 18


def run_tool(args):
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    from ctglip.datasets.converters import convert_ct_rate
    from ctglip.testing.ct_rate import make_fake_ct_rate
    root = tmp_path_factory.mktemp('ct_rate')
    fake = make_fake_ct_rate(str(root / 'download'))
    out = str(root / 'manifest')
    convert_ct_rate(out, root=fake, masks=osp.join(fake, 'masks'), val_fraction=0.25)
    return out


@pytest.fixture(scope='module')
def trained(converted, tiny_bert, tmp_path_factory):
    work = tmp_path_factory.mktemp('work')
    common = ['--work-dir', str(work), '--data-root', converted, '--cfg-options',
              f'model.text_encoder.model_path={tiny_bert}']
    train = run_tool(['tools/train.py', TINY] + common)
    assert train.returncode == 0, train.stderr[-3000:]
    return work, common, train.stdout + train.stderr


def test_training_uses_the_ct_rate_vocabulary(trained):
    work, _, log = trained
    assert (work / 'iter_4.pth').is_file()
    assert 'loss_diagnosis' in log
    # validation reports CT-RATE's findings per volume
    assert 'zeroshot/abn_auc/heart/cardiomegaly' in log
    assert 'zeroshot/abn_f1_weighted' in log and 'zeroshot/abn_accuracy' in log
    saved = (work / osp.basename(TINY)).read_text()
    assert "abnormality_vocab = 'ct_rate'" in saved


def test_zero_shot_test_reports_the_18_labels(trained, tmp_path):
    work, common, _ = trained
    out = tmp_path / 'metrics.json'
    test = run_tool(['tools/test.py', TINY, str(work / 'iter_4.pth'), '--out-metrics', str(out)]
                    + common)
    assert test.returncode == 0, test.stderr[-3000:]
    metrics = json.loads(out.read_text())
    from ctglip.vocabularies import load_abnormality_vocab
    vocab = load_abnormality_vocab('ct_rate')
    scored = {k.split('/', 2)[2] for k in metrics if k.startswith('zeroshot/abn_auc/')
              and k.count('/') == 3}
    labels = {f'{vocab.group_of(n)}/{n}' for n in vocab.names}
    assert scored <= labels and len(scored) >= CT_RATE_LABELS - 4  # a few lack a positive
    for key in ('abn_auc', 'abn_f1_weighted', 'abn_accuracy', 'abn_ppv'):
        assert 0.0 <= metrics[f'zeroshot/{key}'] <= 1.0
    assert metrics['zeroshot/abn_thresholds_val_calibrated'] == 1.0
    assert metrics['zeroshot/abn_num_studies'] == 4  # CT-RATE's validation volumes
    assert metrics['zeroshot/organ_num_rows'] > 0


@pytest.mark.parametrize('name', ['ctglip_mit_ct_rate.py', 'ctglip_nnunet_ct_rate.py',
                                  'ctglip_mit_ct_rate_zeroshot.py'])
def test_ct_rate_configs_build_with_the_ct_rate_vocabulary(name, tiny_bert):
    from ctglip.registry import MODELS
    from ctglip.utils.cli import load_config
    cfg = load_config(osp.join(REPO, 'configs', 'ctglip', name),
                      [f'model.text_encoder.model_path={tiny_bert}', 'model.backbone.arch=tiny'])
    assert cfg.abnormality_vocab == 'ct_rate' and cfg.spacing == (1.0, 1.0, 3.0)
    assert cfg.hu_window == (-1150.0, 350.0)
    assert cfg.model.intensity_skip.window == cfg.hu_window
    metric = cfg.test_evaluator[-1]
    assert metric.level == 'study' and metric.abnormality_vocab == 'ct_rate'
    assert {'f1_weighted', 'accuracy', 'ppv'} <= set(metric.rates)
    model = MODELS.build(cfg.model)
    assert len(model.organ_vocab) == 117 and model.abnormality_vocab.name == 'ct_rate'
    assert model.prompts_file.endswith('ct_rate_zeroshot_prompts.json')
