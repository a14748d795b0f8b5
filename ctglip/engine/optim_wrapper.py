"""Mixed precision that works on the CPU as well as on the GPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from ctglip.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(OptimWrapper):
    """``--amp`` for any device: mmengine's ``AmpOptimWrapper`` (fp16 + loss scaling) on CUDA,
    bf16 autocast without loss scaling on the CPU, where ``AmpOptimWrapper`` refuses to run.

    Args:
        dtype: autocast dtype on CUDA (``float16`` or ``bfloat16``); the CPU always uses bf16.
        **kwargs: ``OptimWrapper`` / ``AmpOptimWrapper`` arguments.
    """

    def __new__(cls, *args, dtype=None, **kwargs):
        if torch.cuda.is_available():
            return AmpOptimWrapper(*args, dtype=dtype, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
