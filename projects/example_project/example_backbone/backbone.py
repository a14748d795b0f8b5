"""A minimal third-party 3D backbone, registered into ctglip's BACKBONES from outside ctglip."""
import torch.nn as nn

from ctglip.registry import BACKBONES


@BACKBONES.register_module()
class ExampleConvEncoder3D(nn.Module):
    """Two strided 3D convolutions: ``B x 1 x X x Y x Z -> B x C x X/4 x Y/4 x Z/4``.

    The backbone contract: ``out_channels``, ``out_stride`` and ``size_divisor`` attributes
    and a ``forward`` that returns the feature map to pool organs from.
    """

    def __init__(self, channels=16):
        super().__init__()
        self.out_channels = channels
        self.out_stride = self.size_divisor = 4
        self.net = nn.Sequential(
            nn.Conv3d(1, channels, 3, stride=2, padding=1), nn.InstanceNorm3d(channels),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, stride=2, padding=1), nn.InstanceNorm3d(channels),
            nn.LeakyReLU(inplace=True))

    def forward(self, x):
        return self.net(x)
