"""Tumor fine-tuning end to end: pretrain (tiny), fine-tune from the pretrained encoder, test
with tools/test.py --out-dir; MSD and KiTS layouts; the one-line errors of initialisation."""
import json
import os.path as osp
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO
from ctglip.testing.tumor_data import make_tiny_tumor_dataset
from ctglip.testing.tumor_layouts import make_tiny_kits, make_tiny_msd
from ctglip.utils.cli import run_cli

sys.path.insert(0, REPO)
from tools import test as test_tool  # noqa: E402
from tools import train  # noqa: E402

FINETUNE = 'configs/tests/tiny_finetune_ctglip.py'
SCRATCH = 'configs/tests/tiny_finetune_scratch.py'


def run_tool(args):
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith('error:')]


@pytest.fixture
def fast_config_dump(monkeypatch):
    """The Runner formats the config with yapf (seconds per run); plain text is enough here."""
    import mmengine.config.config as config_module
    monkeypatch.setattr(config_module, 'FormatCode', lambda text, **kwargs: (text, None))


@pytest.fixture(scope='module')
def tumor_data(tmp_path_factory):
    return make_tiny_tumor_dataset(str(tmp_path_factory.mktemp('tumor') / 'tiny_tumor'))


@pytest.fixture(scope='module')
def pretrained(tiny_bert, tiny_data, tmp_path_factory):
    """A tiny CT-GLIP pretraining run (one iteration): its work dir."""
    work = tmp_path_factory.mktemp('pretrain') / 'tiny_ctglip'
    proc = run_tool(['tools/train.py', 'configs/tests/tiny_ctglip.py', '--work-dir', str(work),
                     '--data-root', tiny_data, '--cfg-options',
                     f'model.text_encoder.model_path={tiny_bert}', 'train_cfg.max_iters=1',
                     'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


@pytest.fixture(scope='module')
def finetuned(pretrained, tumor_data, tmp_path_factory):
    """Fine-tune 2 iterations from the pretrained encoder, then test with --out-dir."""
    work = tmp_path_factory.mktemp('finetune') / 'work'
    common = ['--work-dir', str(work), '--data-root', tumor_data]
    proc = run_tool(['tools/train.py', FINETUNE] + common + [
        '--cfg-options', f'model.backbone.init_cfg.checkpoint={pretrained}/last_checkpoint',
        'train_cfg.max_iters=2'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    ckpt = (work / 'last_checkpoint').read_text().strip()
    metrics, out = work / 'metrics.json', work / 'predictions'
    test = run_tool(['tools/test.py', FINETUNE, ckpt, '--out-metrics', str(metrics),
                     '--out-dir', str(out)] + common)
    assert test.returncode == 0, test.stderr[-3000:]
    return log, json.loads(metrics.read_text()), out, test.stdout + test.stderr


def test_finetune_loads_the_pretrained_encoder(finetuned, pretrained):
    log = finetuned[0]
    ckpt = (pretrained / 'last_checkpoint').read_text().strip()
    assert f'encoder initialised from {ckpt}' in log
    assert 'loss_seg' in log


def test_test_tool_runs_the_tumor_benchmark(finetuned):
    _, metrics, _, log = finetuned
    for key in ('tumor/auc', 'tumor/auc/liver', 'tumor/dice', 'tumor/dice/liver'):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics['tumor/auc_num_studies'] == 2 and metrics['tumor/dice_num_studies'] == 2
    assert not any(k.startswith('zeroshot/') for k in metrics)
    assert 'abnormality thresholds' not in log  # the zero-shot calibration is skipped
    assert metrics['_run']['config'] == FINETUNE


def test_out_dir_masks_lie_on_the_input_grid(finetuned, tumor_data):
    out = finetuned[2]
    assert sorted(p.name for p in out.iterdir()) == ['tiny_003', 'tiny_007']  # the test split
    for case in ('tiny_003', 'tiny_007'):
        mask = nib.load(str(out / case / 'tumor_mask.nii.gz'))
        ct = nib.load(osp.join(tumor_data, 'images', f'{case}.nii.gz'))
        assert mask.shape == ct.shape and np.allclose(mask.affine, ct.affine)
        assert set(np.unique(np.asarray(mask.dataobj)).tolist()) <= {0, 1}
        record = json.loads((out / case / 'tumor_probabilities.json').read_text())
        assert set(record['tumor_probability']) == set(record['tumor_labels'])
        assert all(0 <= p <= 1 for p in record['tumor_probability'].values())
    assert json.loads((out / 'tiny_003' / 'tumor_probabilities.json').read_text())[
        'tumor_labels']['liver'] == 1


def test_missing_pretraining_checkpoint_names_the_command(tumor_data, tmp_path, capsys,
                                                          fast_config_dump):
    argv = [FINETUNE, '--work-dir', str(tmp_path / 'w'), '--data-root', tumor_data,
            '--cfg-options', f'model.backbone.init_cfg.checkpoint={tmp_path}/none/last_checkpoint',
            'experiment_name=missing_ckpt']
    assert run_cli(train.main, argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert 'does not exist' in lines[0]
    assert 'python tools/train.py configs/tests/tiny_ctglip.py' in lines[0]
    assert not list((tmp_path / 'w').rglob('*.pth'))


def test_checkpoint_of_another_backbone_fails_in_one_line(pretrained, tumor_data, tmp_path,
                                                          capsys, fast_config_dump):
    # a config of another backbone (the nnU-Net's keys, not the MiT's) on the MiT checkpoint
    other = tmp_path / 'tiny_finetune_nnunet.py'
    other.write_text(f"_base_ = ['{osp.join(REPO, FINETUNE)}']\n"
                     "model = dict(backbone=dict(_delete_=True, type='NNUNetEncoder3D', "
                     "arch='tiny', out_indices=(0, 1, 2), init_cfg=dict(type="
                     f"'PretrainedEncoder', prefix='backbone.', checkpoint='{pretrained}')),\n"
                     "             decoder=dict(_delete_=True, type='UNetDecoder3D'))\n")
    argv = [str(other), '--work-dir', str(tmp_path / 'w'), '--data-root', tumor_data,
            '--cfg-options', 'experiment_name=mismatch']
    assert run_cli(train.main, argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert ('first mismatched key backbone.encoder.0.0.0.weight: model (8, 1, 3, 3, 3), '
            'checkpoint absent') in lines[0]


def test_out_dir_refuses_a_zero_shot_model(pretrained, tiny_data, tiny_bert, tmp_path, capsys,
                                           fast_config_dump):
    ckpt = (pretrained / 'last_checkpoint').read_text().strip()
    argv = ['configs/tests/tiny_ctglip.py', ckpt, '--work-dir', str(tmp_path / 'w'),
            '--data-root', tiny_data, '--out-dir', str(tmp_path / 'pred'),
            '--no-val-calibration', '--cfg-options',
            f'model.text_encoder.model_path={tiny_bert}', 'experiment_name=zs_out_dir']
    assert run_cli(test_tool.main, argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and 'gives none' in lines[0]


# -- the MSD and KiTS layouts ------------------------------------------------------------------
def tiny_layout_config(leaf, path):
    """The leaf config with a tiny nnU-Net (scratch), 1 mm voxels (the tiny layouts' own) and
    16^3 crops, 2 iterations, written to ``path``."""
    from mmengine.config import Config
    cfg = Config.fromfile(leaf)
    crop = (16, 16, 16)

    def tiny(pipeline):
        for step in pipeline:
            if step['type'] == 'CachedPreprocess':
                for t in step['transforms']:
                    if t['type'] == 'Spacingd':
                        t['pixdim'] = (1.0, 1.0, 1.0)
            if step['type'] == 'RandTumorCrop':
                step['spatial_size'] = crop
        return pipeline
    cfg.model.backbone = dict(type='NNUNetEncoder3D', arch='tiny', out_indices=(0, 1, 2))
    cfg.model.roi_size, cfg.model.sw_overlap = crop, 0.0
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.num_workers, loader.persistent_workers = 0, False
        tiny(loader.dataset.pipeline)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=2)]
    cfg.dump(str(path))
    return str(path)


@pytest.mark.parametrize('layout', ['msd-liver', 'msd-pancreas', 'kits'])
def test_msd_and_kits_layouts_fine_tune(layout, tmp_path):
    if layout == 'kits':
        root = make_tiny_kits(str(tmp_path / 'kits'), num_cases=5)
    else:
        organ = layout.split('-')[1]
        root = make_tiny_msd(str(tmp_path / f'Task_{organ}'), task_organ=organ, num_cases=5)
    leaf = osp.join(REPO, 'configs', 'finetune', f'ctglip_nnunet_{layout}.py')
    config = tiny_layout_config(leaf, tmp_path / 'tiny_layout.py')  # scratch: no init_cfg
    work = tmp_path / 'work'
    common = ['--work-dir', str(work), '--data-root', root]
    proc = run_tool(['tools/train.py', config] + common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'tumor/dice' in proc.stdout + proc.stderr  # validated at the end
    ckpt = (work / 'last_checkpoint').read_text().strip()
    metrics = tmp_path / 'metrics.json'
    test = run_tool(['tools/test.py', config, ckpt, '--out-metrics', str(metrics),
                     '--out-dir', str(tmp_path / 'pred')] + common)
    assert test.returncode == 0, test.stderr[-3000:]
    values = json.loads(metrics.read_text())
    assert values['tumor/dice_num_studies'] == 1 and 0 <= values['tumor/dice'] <= 1
    (case,) = list((tmp_path / 'pred').iterdir())
    assert nib.load(str(case / 'tumor_mask.nii.gz')).shape == (16, 16, 16)


def test_finetune_probe_reports_a_learning_curve(tumor_data, tmp_path):
    """tools/analysis_tools/finetune_probe.py: one row per report, each with the loss and
    probabilities and an organ AUC in range (its learning results are in docs/finetuning.md,
    measured on the phantom tumor set)."""
    out = tmp_path / 'curve.json'
    proc = run_tool(['tools/analysis_tools/finetune_probe.py', SCRATCH, '--data-root',
                     tumor_data, '--iters', '6', '--every', '3', '--window', '3',
                     '--add-hu', '2000', '--lr', '1e-2', '--json', str(out), '--cfg-options',
                     'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                     'train_dataloader.batch_size=4'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    curve = json.loads(out.read_text())['curve']
    assert [row['step'] for row in curve] == [3, 6]
    for row in curve:
        assert np.isfinite(row['loss'])
        assert all(0.0 <= row[k] <= 1.0 for k in ('p_tumor', 'p_bg', 'recall', 'organ_auc'))
    assert 'organ AUC' in proc.stdout


def test_finetune_probe_refuses_a_zero_shot_config(tmp_path):
    proc = run_tool(['tools/analysis_tools/finetune_probe.py', 'configs/tests/tiny_ctglip.py',
                     '--iters', '1'])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith('error:') and 'CTSegmentor' in proc.stderr
