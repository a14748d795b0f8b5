"""Projection heads that map image and text features into the shared embedding space."""
import torch.nn as nn

from ctglip.registry import MODELS
from ctglip.utils.errors import ConfigError


@MODELS.register_module()
class ProjectionHead(nn.Module):
    """``... x C_in -> ... x C_out``: a linear map (default) or a two-layer MLP.

    Args:
        in_channels: input features.
        out_channels: embedding size.
        kind: ``linear`` or ``mlp``.
        norm: ``None`` or ``'layernorm'``: normalise the input features first, so that
            features of different scale (a learned map and raw-intensity statistics) start on
            an equal footing and the projection's learning rate suits them all.
    """

    def __init__(self, in_channels, out_channels=256, kind='linear', norm=None):
        super().__init__()
        if norm not in (None, 'layernorm'):
            raise ConfigError(f"ProjectionHead.norm={norm!r}; use None or 'layernorm'.")
        self.norm = nn.LayerNorm(in_channels) if norm == 'layernorm' else nn.Identity()
        if kind == 'linear':
            self.net = nn.Linear(in_channels, out_channels)
        elif kind == 'mlp':
            self.net = nn.Sequential(nn.Linear(in_channels, in_channels), nn.GELU(),
                                     nn.Linear(in_channels, out_channels))
        else:
            raise ConfigError(f"ProjectionHead.kind={kind!r}; use 'linear' or 'mlp'.")

    def forward(self, x):
        return self.net(self.norm(x))
