"""The one place where ctglip mends mmengine 0.10.7 for the torch and setuptools it runs with.

- torch >= 2.6 loads with ``weights_only=True`` by default; mmengine checkpoints hold the
  message hub, RNG states and config text, so resume and ``load_from`` fail. Local checkpoint
  files are loaded with ``weights_only=False`` (a checkpoint is a pickle: load only files you
  trust, as with any torch checkpoint).
- setuptools >= 81 has no ``pkg_resources``; mmengine's ``is_installed`` and
  ``get_installed_path`` import it (config ``pkg::path`` bases use them). They are replaced by
  ``importlib.metadata`` versions.
- ``AmpOptimWrapper`` refuses the CPU: see ``ctglip.engine.optim_wrapper`` (bf16 autocast).

``apply_setuptools_fix`` is cheap and runs on ``import ctglip``; ``apply_checkpoint_fix``
imports mmengine's runner (slow), so it runs when ctglip's engine or models are imported.
"""
import importlib.metadata
import importlib.util
import os.path as osp

_applied = set()


def _is_installed(package):
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def _get_installed_path(package):
    spec = importlib.util.find_spec(package.replace('-', '_'))
    if spec is None or spec.origin is None:
        raise importlib.metadata.PackageNotFoundError(package)
    return osp.dirname(spec.origin)


def apply_setuptools_fix():
    """Make mmengine's package helpers work without ``pkg_resources``."""
    if 'setuptools' in _applied:
        return
    import mmengine.config.config as mm_config
    import mmengine.utils as mm_utils
    import mmengine.utils.package_utils as mm_package_utils
    for module in (mm_config, mm_utils, mm_package_utils):
        module.is_installed = _is_installed
        module.get_installed_path = _get_installed_path
    _applied.add('setuptools')


def _load_local_checkpoint(filename, map_location):
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)


def apply_checkpoint_fix():
    """Let mmengine resume and ``load_from`` local checkpoints under torch >= 2.6."""
    if 'checkpoint' in _applied:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_local_checkpoint)
    _applied.add('checkpoint')


def apply_all():
    apply_setuptools_fix()
    apply_checkpoint_fix()
