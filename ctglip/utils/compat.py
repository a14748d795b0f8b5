"""The one place where ctglip mends mmengine 0.10.7 for the torch and setuptools it runs with.

- torch >= 2.6 loads with ``weights_only=True`` by default; mmengine checkpoints hold the
  message hub, RNG states and config text, so resume and ``load_from`` fail. Local checkpoint
  files are loaded with ``weights_only=False`` (a checkpoint is a pickle: load only files you
  trust, as with any torch checkpoint).
- setuptools >= 81 has no ``pkg_resources``; mmengine's ``is_installed`` and
  ``get_installed_path`` import it (config ``pkg::path`` bases use them). They are replaced by
  ``importlib.metadata`` versions.
- ``AmpOptimWrapper`` refuses the CPU: see ``ctglip.engine.optim_wrapper`` (bf16 autocast).
- Checkpoints are written in place, so a crash mid-write leaves a truncated file that looks
  valid by name. Local checkpoints are written to a temporary file, fsynced and renamed, so
  ``iter_N.pth`` either is complete or does not exist (``last_checkpoint`` is written by
  mmengine only after that); a truncated or corrupt file gives an error naming it and the
  newest other checkpoint beside it.

``apply_setuptools_fix`` is cheap and runs on ``import ctglip``; ``apply_checkpoint_fix``
imports mmengine's runner (slow), so it runs when ctglip's engine or models are imported.
"""
import importlib.metadata
import importlib.util
import os
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

    from ctglip.utils.errors import CheckpointError
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint {filename} does not exist.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001  any unpickling failure means a damaged file
        other = newest_other_checkpoint(filename)
        hint = (f'the newest other checkpoint is {other}: use it with --cfg-options '
                f'load_from={other} resume=True' if other else 'no other checkpoint is there')
        raise CheckpointError(f'checkpoint {filename} is truncated or corrupt '
                              f'({type(e).__name__}: {str(e).splitlines()[0][:120]}); {hint}.'
                              ) from None


def newest_other_checkpoint(filename):
    """The most recent ``*.pth`` beside ``filename`` (by modification time), or None."""
    import glob
    others = [p for p in glob.glob(osp.join(osp.dirname(osp.abspath(filename)), '*.pth'))
              if osp.abspath(p) != osp.abspath(filename)]
    return max(others, key=osp.getmtime) if others else None


def _atomic_save_checkpoint(original):
    def save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
        if '://' in str(filename) or file_client_args or backend_args:
            return original(checkpoint, filename, file_client_args=file_client_args,
                            backend_args=backend_args)
        import torch
        filename = str(filename)
        os.makedirs(osp.dirname(osp.abspath(filename)), exist_ok=True)
        tmp = f'{filename}.{os.getpid()}.tmp'
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
        dir_fd = os.open(osp.dirname(osp.abspath(filename)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    save_checkpoint.__wrapped__ = original
    return save_checkpoint


def apply_checkpoint_fix():
    """Let mmengine resume and ``load_from`` local checkpoints under torch >= 2.6."""
    if 'checkpoint' in _applied:
        return
    import mmengine.runner.runner as mm_runner
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_local_checkpoint)
    mm_runner.save_checkpoint = _atomic_save_checkpoint(mm_runner.save_checkpoint)
    _applied.add('checkpoint')


def apply_all():
    apply_setuptools_fix()
    apply_checkpoint_fix()
