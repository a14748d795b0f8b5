"""What the 3D backbones share: preset lookup and the input-size check."""
import copy

from ctglip.utils.errors import ConfigError


def resolve_arch(arch, presets, required_keys, owner):
    """Turn ``arch`` (a preset name or a dict) into a full architecture dict.

    Args:
        arch (str | dict): a key of ``presets``, or a dict. A dict may name a preset as
            ``base`` and override some of its fields (``dict(base='small', depths=(1, 1, 1, 1))``);
            without ``base`` it must give every key of ``required_keys``.
        presets (dict[str, dict]): the named architectures.
        required_keys (Iterable[str]): the keys a full architecture has.
        owner (str): the class name, for error messages.

    Returns:
        dict: a deep copy, safe to edit.

    Raises:
        ConfigError: unknown preset name, missing or unknown keys.
    """
    required_keys = tuple(required_keys)
    if isinstance(arch, str):
        if arch not in presets:
            raise ConfigError(f'{owner}: arch={arch!r} is not a preset; use one of '
                              f'{sorted(presets)} or a dict with keys {list(required_keys)}.')
        return copy.deepcopy(presets[arch])
    if not isinstance(arch, dict):
        raise ConfigError(f'{owner}: arch must be a preset name ({sorted(presets)}) or a dict, '
                          f'got {type(arch).__name__}.')
    arch = copy.deepcopy(dict(arch))
    base = arch.pop('base', None)
    if base is not None:
        full = resolve_arch(base, presets, required_keys, owner)
        full.update(arch)
        arch = full
    missing = [k for k in required_keys if k not in arch]
    unknown = [k for k in arch if k not in required_keys]
    if missing or unknown:
        raise ConfigError(f'{owner}: arch dict has missing keys {missing} and unknown keys '
                          f'{unknown}; a full arch has exactly {list(required_keys)} '
                          "(or give base='<preset>' and override some).")
    return arch


def check_input(x, size_divisor, owner):
    """Raise ``ValueError`` unless ``x`` is ``B x C x D x H x W`` with D, H, W divisible.

    Args:
        x (Tensor): the input volume batch.
        size_divisor (int): the backbone's total downsampling.
        owner (str): the class name, for error messages.
    """
    if x.dim() != 5:
        raise ValueError(f'{owner} expects a B x C x D x H x W input, got shape '
                         f'{tuple(x.shape)}.')
    spatial = tuple(x.shape[2:])
    if any(s % size_divisor for s in spatial):
        raise ValueError(f'{owner}: input spatial size {spatial} (input shape {tuple(x.shape)}) '
                         f'is not divisible by size_divisor={size_divisor}; pad it, e.g. set the '
                         f'data preprocessor size_divisor={size_divisor}.')
