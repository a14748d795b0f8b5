"""One config key for the abnormality vocabulary: ``abnormality_vocab``.

A config sets the vocabulary once, at the top level (``configs/_base_/datasets/*.py`` own it:
the vocabulary describes the labels of a dataset)::

    abnormality_vocab = 'ct_rate'

and :func:`apply_abnormality_vocab` hands it to every component of the config whose class takes
an ``abnormality_vocab`` argument: the model (which passes it on to its losses), the datasets
(for their report structurer), the zero-shot metrics. ``ctglip.utils.cli.load_config`` calls it,
so every tool does; a script that reads a config with mmengine's ``Config.fromfile`` calls it
itself. A component that names another vocabulary than the top-level key is a config error.
"""
import inspect

from ctglip.utils.errors import ConfigError

KEY = 'abnormality_vocab'
# config keys that hold components built by the Runner (or by the model from its config)
_SECTIONS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
             'test_evaluator')


def takes_abnormality_vocab(cls):
    """Whether a class (or function) accepts ``abnormality_vocab`` in its constructor."""
    if cls is None:
        return False
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return KEY in params


def _resolve(type_name):
    """The class a config ``type`` names in ctglip's registries, or None."""
    if not isinstance(type_name, str):
        return type_name if callable(type_name) else None
    from ctglip import registry
    for reg in (registry.MODELS, registry.LOSSES, registry.DATASETS, registry.METRICS,
                registry.TRANSFORMS, registry.REPORT_STRUCTURERS):
        if type_name in reg:
            return reg.get(type_name)
    return None


def _same(a, b):
    from ctglip.vocabularies.abnormalities import load_abnormality_vocab
    if a == b:
        return True
    try:
        return load_abnormality_vocab(a) == load_abnormality_vocab(b)
    except ConfigError:
        return False


def apply_abnormality_vocab(cfg):
    """Give the config's ``abnormality_vocab`` to every component that takes one (in place).

    Args:
        cfg (mmengine.Config | dict): a config; nothing happens without the top-level key.

    Returns:
        list[str]: the config paths that received it (``model``, ``val_evaluator.1``, ...).

    Raises:
        ConfigError: a component sets a different vocabulary than the top-level key.
    """
    vocab = cfg.get(KEY) if hasattr(cfg, 'get') else None
    if vocab is None:
        return []
    given = []

    def visit(node, path):
        if isinstance(node, dict):
            if 'type' in node and takes_abnormality_vocab(_resolve(node['type'])):
                own = node.get(KEY)
                if own is None:
                    node[KEY] = vocab
                    given.append(path)
                elif not _same(own, vocab):
                    raise ConfigError(
                        f'{path}.{KEY}={own!r} differs from the top-level {KEY}={vocab!r}. '
                        f'Fix: set the vocabulary only once, as the top-level key {KEY}.')
            for key, value in node.items():
                visit(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}.{i}')

    for section in _SECTIONS:
        if cfg.get(section) is not None:
            visit(cfg[section], section)
    return given
