"""Segmentation decoders over a backbone's levels, registered in ``DECODERS``.

The decoder contract: built with ``in_channels`` and ``in_strides`` (one entry per level the
backbone returns, in the backbone's ``out_indices`` order) and ``num_classes``; ``forward``
takes the list of level maps and returns ``B x num_classes x d x h x w`` logits at the grid of
its finest level; ``out_stride`` is that level's stride (the segmentor upsamples the logits to
the input size). A third-party backbone brings its decoder the same way it brings itself:
``@DECODERS.register_module()`` in a module of ``projects/`` named in ``custom_imports``.
"""
from ctglip.models.decoders.mlp import SegFormerDecoder3D
from ctglip.models.decoders.unet import UNetDecoder3D

__all__ = ['SegFormerDecoder3D', 'UNetDecoder3D']
