"""The training step of ctglip models: mmengine's step with a guard against NaN or infinite
losses and gradients. Shared by the model (single process) and its DDP wrapper, which
otherwise runs mmengine's own step and would bypass the guard."""
import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import AmpOptimWrapper

from ctglip.registry import MODEL_WRAPPERS


def guarded_train_step(model, module, data, optim_wrapper):
    """Forward through ``model`` (the module or its DDP wrapper), check, then update.

    Every rank computes the loss over the gathered global batch and DDP averages the
    gradients, so all ranks see the same non-finite value and take the same decision.

    Args:
        model: what to run forward (``module`` itself or its DDP wrapper).
        module: the ctglip model (its preprocessor, ``parse_losses`` and ``nonfinite``).
        data: a batch from the data loader.
        optim_wrapper: the optimizer wrapper.

    Returns:
        dict: the log variables, with ``skipped_batches``.
    """
    with optim_wrapper.optim_context(model):
        data = module.data_preprocessor(data, True)
        losses = model._run_forward(data, mode='loss')
    parsed, log_vars = module.parse_losses(losses)
    bad = [k for k, v in losses.items() if k.startswith('loss') and
           not bool(torch.isfinite(v).all())]
    if bad:
        return module.handle_non_finite(
            f'loss term {bad[0]} = {float(losses[bad[0]].detach())}', optim_wrapper, log_vars)
    if isinstance(optim_wrapper, AmpOptimWrapper):  # its scaler skips inf steps itself
        optim_wrapper.update_params(parsed)
    else:
        optim_wrapper.backward(optim_wrapper.scale_loss(parsed))
        for name, p in module.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return module.handle_non_finite(f'gradient of {name}', optim_wrapper, log_vars)
        if optim_wrapper.should_update():
            optim_wrapper.step()
            optim_wrapper.zero_grad()
    log_vars['skipped_batches'] = float(module.skipped_batches)
    return log_vars


@MODEL_WRAPPERS.register_module()
class CTGLIPDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper whose training step keeps ctglip's non-finite guard."""

    def train_step(self, data, optim_wrapper):
        return guarded_train_step(self, self.module, data, optim_wrapper)
