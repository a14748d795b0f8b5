"""U-Net decoder over the levels of a 3D CNN (the nnU-Net backbone's levels)."""
import torch
from torch import nn

from ctglip.models.backbones.nnunet import ConvNormAct3d
from ctglip.models.decoders.base import check_feats, check_levels
from ctglip.registry import DECODERS
from ctglip.utils.errors import ConfigError


@DECODERS.register_module()
class UNetDecoder3D(nn.Module):
    """U-Net decoder: from the coarsest level up, upsample (transposed conv), concatenate the
    next finer level, fuse with ``num_convs`` x (conv3d - InstanceNorm - LeakyReLU), then a
    1^3 conv to the class logits at the finest level's grid.

    Over the nnU-Net backbone (``NNUNetEncoder3D(out_indices=(0, 1, ..., L-1))``) its levels
    are the trunk's own decoder maps (pretrained with the trunk); this decoder is the new,
    randomly initialised part of the segmentation model, as the segmentation head of nnU-Net
    would be.

    Args:
        in_channels (Sequence[int]): channels of each level, finest first.
        in_strides (Sequence[int]): stride of each level (strictly increasing; each a multiple
            of the one before).
        num_classes (int): output channels (2: background and tumor).
        channels (Sequence[int] | None): width of the decoder at each level but the coarsest;
            None uses ``in_channels``.
        num_convs (int): convs per decoder stage.

    Attributes:
        out_stride (int): the stride of the logits (the finest level's).

    Shapes:
        ``[B x in_channels[i] x D/in_strides[i] x ...]`` -> ``B x num_classes x D/s x ...``,
        ``s = in_strides[0]``.

    Example:
        >>> dec = UNetDecoder3D(in_channels=(8, 16), in_strides=(1, 2), num_classes=2)
        >>> dec([torch.zeros(1, 8, 8, 8, 8), torch.zeros(1, 16, 4, 4, 4)]).shape
        torch.Size([1, 2, 8, 8, 8])
    """

    def __init__(self, in_channels, in_strides, num_classes=2, channels=None, num_convs=1):
        super().__init__()
        name = type(self).__name__
        self.in_channels, self.in_strides = check_levels(in_channels, in_strides, name)
        ratios = [b / a for a, b in zip(self.in_strides, self.in_strides[1:])]
        if any(r < 2 or r != int(r) for r in ratios):
            raise ConfigError(f'{name}: in_strides {self.in_strides} must be finest first, each '
                              "an integer multiple (>= 2) of the one before. Fix: list the "
                              "backbone's levels in out_indices from fine to coarse.")
        widths = (tuple(self.in_channels[:-1]) if channels is None
                  else tuple(int(c) for c in channels))
        if len(widths) != len(self.in_channels) - 1:
            raise ConfigError(f'{name}: channels {widths} needs one width per level but the '
                              f'coarsest ({len(self.in_channels) - 1}).')
        self.out_stride = self.in_strides[0]
        self.upsamples = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = self.in_channels[-1]
        for i in range(len(self.in_channels) - 2, -1, -1):
            r = int(ratios[i])
            self.upsamples.append(nn.ConvTranspose3d(prev, widths[i], r, stride=r))
            convs = [ConvNormAct3d(widths[i] + self.in_channels[i], widths[i])]
            convs += [ConvNormAct3d(widths[i], widths[i]) for _ in range(int(num_convs) - 1)]
            self.stages.append(nn.Sequential(*convs))
            prev = widths[i]
        self.classifier = nn.Conv3d(prev, int(num_classes), 1)
        for m in self.modules():  # nnU-Net's He initialisation, as the backbone's
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, feats):
        """Decode the level maps (finest first) into logits at the finest level's grid."""
        feats = check_feats(feats, self.in_channels, type(self).__name__)
        x = feats[-1]
        for up, stage, skip in zip(self.upsamples, self.stages, reversed(feats[:-1])):
            x = stage(torch.cat([up(x), skip], dim=1))
        return self.classifier(x)
