"""A minimal third-party segmentation decoder, registered into ctglip's DECODERS from outside
ctglip: the decoder that comes with ``ExampleConvEncoder3D``."""
import torch.nn as nn

from ctglip.registry import DECODERS


@DECODERS.register_module()
class ExampleLinearDecoder3D(nn.Module):
    """A 1^3 conv from the backbone's single map to the class logits.

    The decoder contract: built with ``in_channels`` and ``in_strides`` (one entry per map the
    backbone returns; here the one map of ``ExampleConvEncoder3D``) and ``num_classes``;
    ``forward`` takes the list of maps and returns logits at the finest map's grid;
    ``out_stride`` says its stride (the segmentor upsamples the logits to the input).
    """

    def __init__(self, in_channels, in_strides, num_classes=2):
        super().__init__()
        self.out_stride = min(in_strides)
        self.classifier = nn.Conv3d(in_channels[0], num_classes, 1)

    def forward(self, feats):
        return self.classifier(feats[0])
