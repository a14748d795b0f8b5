"""Reliability: exact resume after SIGKILL, damaged checkpoints, NaN guards."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO

TINY = 'configs/tests/tiny_ctglip.py'


def train_cmd(work, tiny_data, tiny_bert, max_iters, resume=False):
    cmd = [sys.executable, 'tools/train.py', TINY, '--work-dir', str(work), '--data-root',
           tiny_data] + (['--resume'] if resume else []) + [
        '--cfg-options', f'model.text_encoder.model_path={tiny_bert}',
        f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=10',
        'train_dataloader.num_workers=1', 'train_dataloader.persistent_workers=True',
        'randomness.deterministic=True']
    return cmd


def env():
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def final_state(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return ckpt['state_dict'], ckpt['optimizer']['state']


def test_sigkill_then_resume_gives_bitwise_identical_weights(tiny_data, tiny_bert, tmp_path):
    iters = 16
    straight = tmp_path / 'straight'
    proc = subprocess.run(train_cmd(straight, tiny_data, tiny_bert, iters), cwd=REPO, env=env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / 'killed'
    p = subprocess.Popen(train_cmd(killed, tiny_data, tiny_bert, iters), cwd=REPO, env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / 'iter_4.pth').exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / f'iter_{iters}.pth').exists(), 'the run ended before it was killed'

    proc = subprocess.run(train_cmd(killed, tiny_data, tiny_bert, iters, resume=True), cwd=REPO,
                          env=env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a_weights, a_optim = final_state(straight / f'iter_{iters}.pth')
    b_weights, b_optim = final_state(killed / f'iter_{iters}.pth')
    assert a_weights.keys() == b_weights.keys()
    for key in a_weights:
        assert torch.equal(a_weights[key], b_weights[key]), key
    for i in a_optim:
        for name, value in a_optim[i].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b_optim[i][name]))


def test_truncated_checkpoint_names_itself_and_the_previous_one(tmp_path):
    import ctglip.engine  # noqa: F401
    from mmengine.runner.checkpoint import _load_checkpoint

    from ctglip.utils.errors import CheckpointError
    good, bad = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    torch.save({'state_dict': {'w': torch.ones(1000)}}, bad)
    os.utime(good, (1, 1))
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r'iter_4.pth is truncated or corrupt.*iter_2.pth'):
        _load_checkpoint(str(bad), map_location='cpu')


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    import ctglip.engine  # noqa: F401
    import mmengine.runner.runner as mm_runner
    target = tmp_path / 'iter_1.pth'

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # a crash in the middle of writing

    monkeypatch.setattr(torch, 'save', boom)
    with pytest.raises(KeyboardInterrupt):
        mm_runner.save_checkpoint({'w': 1}, str(target))
    assert not target.exists()  # nothing that looks like a checkpoint was left


def _model(tiny_bert, nonfinite):
    from mmengine.config import Config

    from ctglip.registry import MODELS
    cfg = Config.fromfile(os.path.join(REPO, TINY))
    cfg.model.text_encoder.model_path = tiny_bert
    cfg.model.nonfinite = nonfinite
    return MODELS.build(cfg.model)


def _batch(tiny_data, poison=True):
    from mmengine.config import Config

    from ctglip.datasets import CTReportDataset
    cfg = Config.fromfile(os.path.join(REPO, TINY))
    ds = CTReportDataset(tiny_data, split='train', pipeline=cfg.test_pipeline)
    items = [ds[0], ds[1]]
    inputs = [i['inputs'].clone() for i in items]
    if poison:
        inputs[0][0, 0, 0, 0] = float('nan')
    return dict(inputs=inputs, data_samples=[i['data_samples'] for i in items])


def test_nan_loss_stops_with_iteration_term_and_checkpoint(tiny_bert, tiny_data):
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from ctglip.utils.errors import NonFiniteLossError
    hub = MessageHub.get_instance('nan-test')
    hub.update_info('iter', 41)
    hub.update_info('last_ckpt', 'work/iter_40.pth')
    model = _model(tiny_bert, 'stop')
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(NonFiniteLossError, match=r'loss term loss_\w+ = nan at iteration 42.*'
                                                 r'iter_40.pth'):
        model.train_step(_batch(tiny_data), wrapper)


def test_nan_batch_is_skipped_and_counted(tiny_bert, tiny_data):
    from mmengine.optim import OptimWrapper
    model = _model(tiny_bert, 'skip')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(_batch(tiny_data), wrapper)
    assert log_vars['skipped_batches'] == 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    log_vars = model.train_step(_batch(tiny_data, poison=False), wrapper)
    assert 'loss' in log_vars and log_vars['skipped_batches'] == 1.0


def test_ddp_wrapper_keeps_the_guard(tiny_bert, tiny_data, process_group):
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from ctglip.registry import MODEL_WRAPPERS
    from ctglip.utils.errors import NonFiniteLossError
    MessageHub.get_instance('ddp-test')
    model = _model(tiny_bert, 'stop')
    ddp = MODEL_WRAPPERS.build(dict(type='CTGLIPDistributedDataParallel', module=model))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = ddp.train_step(_batch(tiny_data, poison=False), wrapper)
    assert torch.isfinite(log_vars['loss'])
    with pytest.raises(NonFiniteLossError, match='non-finite loss term'):
        ddp.train_step(_batch(tiny_data), wrapper)
