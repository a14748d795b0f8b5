"""Minimal backbones for the abnormality-learning ladder (``tools/analysis_tools/
abnormality_ladder.py``): the input itself, and a few plain convolutions. They show where
between the raw image and the full encoder a finding's signal is lost."""
from torch import nn

from ctglip.registry import BACKBONES


@BACKBONES.register_module()
class IdentityBackbone(nn.Module):
    """The input volume as the grounded map (stride 1, ``in_channels`` channels).

    With an organ pooler this is a fixed, hand-made feature (the organ's mean or maximum
    intensity): the rung of the ladder that a supervised head must fit as well as a direct
    computation of the same numbers.

    Args:
        in_channels (int): channels of the input volume.
    """

    def __init__(self, in_channels=1):
        super().__init__()
        self.out_channels = in_channels
        self.out_stride = 1
        self.size_divisor = 1

    def forward(self, x):
        return x


@BACKBONES.register_module()
class PlainConv3D(nn.Module):
    """``num_layers`` x (conv3d 3^3 - optional InstanceNorm - LeakyReLU), the first strided.

    Args:
        in_channels (int): channels of the input volume.
        channels (int): channels of every layer (and of the grounded map).
        num_layers (int): number of conv layers (>= 1).
        stride (int): stride of the first layer (the grounded map's stride).
        norm (bool): InstanceNorm3d after each conv.
    """

    def __init__(self, in_channels=1, channels=16, num_layers=2, stride=2, norm=False):
        super().__init__()
        layers, prev = [], in_channels
        for i in range(max(1, int(num_layers))):
            layers.append(nn.Conv3d(prev, channels, 3, stride=stride if i == 0 else 1,
                                    padding=1))
            if norm:
                layers.append(nn.InstanceNorm3d(channels, affine=True))
            layers.append(nn.LeakyReLU(0.01, inplace=True))
            prev = channels
        self.net = nn.Sequential(*layers)
        self.out_channels = channels
        self.out_stride = stride
        self.size_divisor = stride

    def forward(self, x):
        return self.net(x)
