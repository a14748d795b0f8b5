"""What the segmentation decoders share: checking the levels they are given."""
from ctglip.utils.errors import ConfigError


def check_levels(in_channels, in_strides, owner):
    """``in_channels`` and ``in_strides`` as tuples of positive ints of one length.

    Raises:
        ConfigError: empty, of different lengths, or holding a value below 1.
    """
    try:
        channels = tuple(int(c) for c in in_channels)
        strides = tuple(int(s) for s in in_strides)
    except (TypeError, ValueError):
        raise ConfigError(f'{owner}: in_channels and in_strides must be sequences of ints (one '
                          f'per backbone level), got {in_channels!r} and {in_strides!r}.') from None
    if not channels or len(channels) != len(strides) or min(channels + strides) < 1:
        raise ConfigError(f'{owner}: in_channels {channels} and in_strides {strides} must give '
                          'one positive channel count and stride per backbone level. Fix: set '
                          "the backbone's out_indices to the levels the decoder reads.")
    return channels, strides


def check_feats(feats, in_channels, owner):
    """Raise ``ValueError`` unless ``feats`` holds one map per level with its channels."""
    feats = list(feats) if isinstance(feats, (list, tuple)) else [feats]
    got = tuple(int(f.shape[1]) for f in feats)
    if got != tuple(in_channels):
        raise ValueError(f'{owner} expects {len(in_channels)} level maps with channels '
                         f'{tuple(in_channels)}, got {len(got)} with channels {got}; the '
                         "backbone's out_indices and the decoder's in_channels disagree.")
    return feats
