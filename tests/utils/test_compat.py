"""The mmengine fixes: checkpoints under torch >= 2.6, no pkg_resources, mixed precision on CPU."""
import numpy as np
import torch


def test_local_checkpoints_with_numpy_state_load(tmp_path):
    import ctglip.engine  # noqa: F401  applies the fixes
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': {'seed': np.int64(3), 'rng': np.random.get_state()},
                'state_dict': {'w': torch.ones(2)}}, path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['seed'] == 3 and torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_package_helpers_work_without_pkg_resources():
    import ctglip  # noqa: F401
    from mmengine.config import config as mm_config
    from mmengine.utils import get_installed_path, is_installed
    assert is_installed('ctglip') and is_installed('torch')
    assert not is_installed('surely_not_a_package_xyz')
    assert get_installed_path('ctglip').endswith('ctglip')
    assert mm_config.is_installed is is_installed


def test_mixed_precision_wrapper_uses_bf16_autocast_on_cpu():
    from ctglip.engine import MixedPrecisionOptimWrapper
    model = torch.nn.Linear(4, 4)
    wrapper = MixedPrecisionOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
