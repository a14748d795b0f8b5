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
    """

    def __init__(self, in_channels, out_channels=256, kind='linear'):
        super().__init__()
        if kind == 'linear':
            self.net = nn.Linear(in_channels, out_channels)
        elif kind == 'mlp':
            self.net = nn.Sequential(nn.Linear(in_channels, in_channels), nn.GELU(),
                                     nn.Linear(in_channels, out_channels))
        else:
            raise ConfigError(f"ProjectionHead.kind={kind!r}; use 'linear' or 'mlp'.")

    def forward(self, x):
        return self.net(x)
