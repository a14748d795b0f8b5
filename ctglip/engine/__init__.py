"""Training engine pieces: CPU-capable mixed precision, hooks, and the mmengine fixes."""
from ctglip.utils.compat import apply_all

from .hooks import *  # noqa: F401,F403  (register)
from .layer_decay import LayerDecayOptimWrapperConstructor
from .optim_wrapper import MixedPrecisionOptimWrapper
from .train_step import CTGLIPDistributedDataParallel, guarded_train_step

apply_all()

__all__ = ['LayerDecayOptimWrapperConstructor', 'MixedPrecisionOptimWrapper',
           'CTGLIPDistributedDataParallel', 'guarded_train_step']
