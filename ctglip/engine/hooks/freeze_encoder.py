"""Frozen-encoder warm-up of fine-tuning: train the new decoder first, then everything."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ctglip.registry import HOOKS
from ctglip.utils.errors import ConfigError


@HOOKS.register_module()
class FreezeEncoderHook(Hook):
    """Keep ``model.<module>`` (the pretrained backbone) frozen for the first ``iters`` training
    iterations, so that the randomly initialised decoder does not send large gradients into
    pretrained weights; then train the whole model.

    Frozen parameters get no gradient (``requires_grad=False``), so the optimizer leaves them
    alone (AdamW skips parameters without gradient, weight decay included) and the backward
    pass skips the encoder (faster warm-up). A resumed run freezes or not by its iteration.
    With DDP the wrapper must allow unused parameters
    (``model_wrapper_cfg=dict(find_unused_parameters=True)``).

    Args:
        iters (int): warm-up length in iterations (0: never frozen).
        module (str): the attribute of the model to freeze.

    Example:
        >>> custom_hooks = [dict(type='RNGStateHook'), dict(type='FreezeEncoderHook', iters=50)]
    """

    priority = 'NORMAL'

    def __init__(self, iters, module='backbone'):
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
            raise ConfigError(f'FreezeEncoderHook iters must be an integer >= 0, got {iters!r}.')
        self.iters = iters
        self.module = module
        self._frozen = None

    def _target(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        target = getattr(model, self.module, None)
        if target is None:
            raise ConfigError(f'FreezeEncoderHook: the model {type(model).__name__} has no '
                              f'{self.module!r} to freeze. Fix: set module= to its encoder.')
        return target

    def before_train(self, runner):
        if self.iters and is_model_wrapper(runner.model) and not getattr(
                runner.model, 'find_unused_parameters', True):
            raise ConfigError('FreezeEncoderHook under DDP needs '
                              'model_wrapper_cfg.find_unused_parameters=True (frozen parameters '
                              'get no gradient).')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        frozen = runner.iter < self.iters
        if frozen == self._frozen:
            return
        for param in self._target(runner).parameters():
            param.requires_grad_(not frozen)
        self._frozen = frozen
        print_log(f'{self.module} {"frozen" if frozen else "unfrozen"} at iteration '
                  f'{runner.iter + 1} (warm-up of {self.iters} iterations)', logger='current')
