"""A third-party backbone (and its decoder) from projects/ registers through custom_imports and
trains."""
import subprocess
import sys

from conftest import REPO


def test_example_project_trains_one_iteration(tiny_bert, tiny_data, tmp_path):
    work = tmp_path / 'work'
    cmd = [sys.executable, 'tools/train.py', 'projects/example_project/configs/tiny_example.py',
           '--work-dir', str(work), '--data-root', tiny_data, '--cfg-options',
           f'model.text_encoder.model_path={tiny_bert}', 'train_cfg.max_iters=1',
           'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=1']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'iter_1.pth').is_file()
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [1/1]' in log and 'loss_anatomy' in log


def test_example_project_brings_its_decoder(tmp_path):
    """The third-party backbone fine-tunes for tumors with its own decoder from DECODERS."""
    from ctglip.testing.tumor_data import make_tiny_tumor_dataset
    data = make_tiny_tumor_dataset(str(tmp_path / 'tumor'))
    work = tmp_path / 'work'
    cmd = [sys.executable, 'tools/train.py',
           'projects/example_project/configs/tiny_example_segmentor.py', '--work-dir', str(work),
           '--data-root', data, '--cfg-options', 'train_cfg.max_iters=1',
           'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=1']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'iter_1.pth').is_file()
    log = proc.stdout + proc.stderr
    assert 'loss_seg' in log and 'tumor/dice' in log
