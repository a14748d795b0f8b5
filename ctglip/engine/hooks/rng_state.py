"""Save the random number generators with each checkpoint and restore them on resume."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from ctglip.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Exact resume: store python, numpy and torch (CPU and CUDA) generator states in each
    checkpoint; after ``--resume`` restore them right before the first resumed iteration.

    mmengine replays the data loader to the resumed position (workers are re-seeded and
    redo the same augmentations), so restoring only after that replay gives the main process
    the same random state as the uninterrupted run at that iteration.
    """
    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_states'] = dict(
            python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)

    def after_load_checkpoint(self, runner, checkpoint):
        self._pending = checkpoint.get('rng_states')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._pending is None:
            return
        states, self._pending = self._pending, None
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        # a checkpoint loaded onto the GPU (mmengine's resume maps to the current device)
        # holds the states as CUDA tensors; the setters take CPU byte tensors
        torch.set_rng_state(states['torch'].cpu())
        if states.get('cuda') is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in states['cuda']])
