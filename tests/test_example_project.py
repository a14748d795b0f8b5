"""A third-party backbone from projects/ registers through custom_imports and trains."""
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
