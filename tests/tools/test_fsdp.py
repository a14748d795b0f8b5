"""FSDP through mmengine's FlexibleRunner (configs/_base_/strategies/fsdp.py): the example
config builds; the tiny config trains 4 iterations on 2 CPU processes (gloo) with it; the
full checkpoint it writes is tested by the default (DDP) runner; DDP stays the default."""
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO

TINY = 'configs/tests/tiny_ctglip.py'
FSDP = 'configs/_base_/strategies/fsdp.py'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_fsdp_config_selects_the_flexible_runner():
    from ctglip.utils.cli import load_config
    sys.path.insert(0, REPO)
    cfg = load_config(osp.join(REPO, 'configs/ctglip/ctglip_mit_104organ_fsdp.py'))
    main = load_config(osp.join(REPO, 'configs/ctglip/ctglip_mit_104organ.py'))
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == 'FSDPStrategy'
    assert cfg.strategy.model_wrapper.type == 'ctglip.CTGLIPFullyShardedDataParallel'
    assert cfg.model == main.model and cfg.train_dataloader == main.train_dataloader
    assert 'runner_type' not in main  # DDP (mmengine's Runner) stays the default
    from mmengine.registry import MODEL_WRAPPERS
    assert MODEL_WRAPPERS.get('ctglip.CTGLIPFullyShardedDataParallel') is not None


@pytest.fixture(scope='module')
def fsdp_run(tiny_bert, tiny_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('fsdp')
    config = tmp / 'tiny_fsdp.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = [{osp.join(REPO, TINY)!r}, {osp.join(REPO, FSDP)!r}]
        '''))
    work = tmp / 'work'
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(work),
         '--data-root', tiny_data, '--cfg-options', f'model.text_encoder.model_path={tiny_bert}',
         'env_cfg.dist_cfg.backend=gloo', 'strategy.model_wrapper.device_id=cpu'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return work, proc


def test_two_fsdp_ranks_train_on_the_cpu(fsdp_run):
    work, proc = fsdp_run
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Iter(train) [4/4]' in log and 'zeroshot/organ_top1' in log
    assert (work / 'iter_4.pth').is_file()
    # a full state dict on rank 0: plain parameter names, the temperature kept whole
    state = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    assert 'logit_scale' in state and state['logit_scale'].dim() == 0
    assert not any('_fsdp' in k or 'flat_param' in k for k in state)
    assert not any(k.startswith('text_encoder.model.') for k in state)  # frozen: not saved


def test_fsdp_checkpoint_is_tested_by_the_default_runner(fsdp_run, tiny_bert, tiny_data,
                                                         tmp_path):
    work, proc = fsdp_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = tmp_path / 'metrics.json'
    test = subprocess.run(
        [sys.executable, 'tools/test.py', TINY, str(work / 'iter_4.pth'), '--work-dir',
         str(tmp_path / 'test'), '--data-root', tiny_data, '--out-metrics', str(out),
         '--cfg-options', f'model.text_encoder.model_path={tiny_bert}'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    assert out.is_file()


def test_nonfinite_gradient_check_names_the_parameter():
    from ctglip.engine.train_step import nonfinite_gradient
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model(torch.ones(1, 3)).sum().backward()
    assert nonfinite_gradient(model) is None
    model[1].weight.grad[0, 1] = float('nan')
    assert nonfinite_gradient(model) == '1.weight'
    model[1].weight.grad[0, 1] = float('inf')
    assert nonfinite_gradient(model) == '1.weight'
    model[1].weight.grad.fill_(1e30)  # large but finite: no overflow of a 2-norm
    assert nonfinite_gradient(model) is None
    assert nonfinite_gradient(torch.nn.Linear(2, 2)) is None  # no gradients yet
