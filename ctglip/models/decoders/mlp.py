"""SegFormer's all-MLP decoder over the levels of a hierarchical transformer (the MiT levels)."""
from torch import nn

from ctglip.models.backbones.mit3d import AllMLPDecoder3d
from ctglip.models.decoders.base import check_feats, check_levels
from ctglip.registry import DECODERS


@DECODERS.register_module()
class SegFormerDecoder3D(nn.Module):
    """All-MLP segmentation decoder (SegFormer) in 3D: every level projected to ``dim`` by a
    1^3 conv, upsampled to the finest level's grid, concatenated, fused (1^3 conv -
    InstanceNorm - GELU), then dropout and a 1^3 conv to the class logits.

    The fusion is MiT3D's own ``AllMLPDecoder3d`` (one implementation); this decoder is a new
    instance of it with a classifier, randomly initialised. Over ``MiT3D(out_indices=(0, 1,
    2, 3, 4))`` it also reads level 4, the backbone's pretrained fused map (the grounded map
    of pretraining), so the fine-tuned model keeps what pretraining aligned with text.

    Args:
        in_channels (Sequence[int]): channels of each level (any order).
        in_strides (Sequence[int]): stride of each level.
        num_classes (int): output channels (2: background and tumor).
        dim (int): the common width the levels are projected to.
        dropout (float): ``Dropout3d`` before the classifier.

    Attributes:
        out_stride (int): the stride of the logits (the finest level's).

    Example:
        >>> dec = SegFormerDecoder3D((8, 16), (2, 4), num_classes=2, dim=8)
        >>> dec([torch.zeros(1, 8, 8, 8, 8), torch.zeros(1, 16, 4, 4, 4)]).shape
        torch.Size([1, 2, 8, 8, 8])
    """

    def __init__(self, in_channels, in_strides, num_classes=2, dim=64, dropout=0.1):
        super().__init__()
        self.in_channels, self.in_strides = check_levels(in_channels, in_strides,
                                                         type(self).__name__)
        # the fusion upsamples to its first map's grid: feed the finest level first
        self.order = sorted(range(len(self.in_strides)), key=lambda i: self.in_strides[i])
        self.out_stride = self.in_strides[self.order[0]]
        self.fuse = AllMLPDecoder3d([self.in_channels[i] for i in self.order], int(dim))
        self.dropout = nn.Dropout3d(dropout) if dropout else nn.Identity()
        self.classifier = nn.Conv3d(int(dim), int(num_classes), 1)

    def forward(self, feats):
        """Fuse the level maps into logits at the finest level's grid."""
        feats = check_feats(feats, self.in_channels, type(self).__name__)
        return self.classifier(self.dropout(self.fuse([feats[i] for i in self.order])))
