"""RNGStateHook: a resumed run continues the random streams of the run it resumes."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ctglip.engine.hooks.rng_state import RNGStateHook


class _OnDevice:
    """A saved RNG state as mmengine's resume hands it over on a GPU machine: loaded onto the
    current device, so only ``.cpu()`` gives the byte tensor the setters take."""

    def __init__(self, state):
        self.state = state

    def cpu(self):
        return self.state


def _draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def _saved_then_drawn():
    hook, checkpoint = RNGStateHook(), {}
    hook.before_save_checkpoint(None, checkpoint)
    return hook, checkpoint, _draws()


def test_resume_restores_every_stream():
    hook, checkpoint, expected = _saved_then_drawn()
    _draws()  # the streams move on, as in another process
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train_iter(SimpleNamespace(), 0)
    assert _draws() == expected


def test_resume_takes_states_loaded_onto_the_gpu():
    """mmengine's resume maps the checkpoint to the current device: on a GPU machine the torch
    state arrived as a CUDA tensor and torch.set_rng_state refused it (found on an H200)."""
    hook, checkpoint, expected = _saved_then_drawn()
    states = checkpoint['rng_states']
    states['torch'] = _OnDevice(states['torch'])
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train_iter(SimpleNamespace(), 0)
    assert _draws() == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_resume_on_the_gpu_restores_the_cuda_stream():
    hook, checkpoint = RNGStateHook(), {}
    hook.before_save_checkpoint(None, checkpoint)
    expected = torch.rand(4, device='cuda').tolist()
    states = checkpoint['rng_states']
    states['torch'] = states['torch'].cuda()
    states['cuda'] = [s.cuda() for s in states['cuda']]
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train_iter(SimpleNamespace(), 0)
    assert torch.rand(4, device='cuda').tolist() == expected
