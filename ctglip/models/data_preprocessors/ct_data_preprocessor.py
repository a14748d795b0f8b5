"""Batch CT studies: pad volumes and organ label maps to one shape and move them to the device."""
import math

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from ctglip.registry import MODELS


@MODELS.register_module()
class CTDataPreprocessor(BaseDataPreprocessor):
    """Stack ``1 x X x Y x Z`` volumes into ``B x 1 x X x Y x Z``, zero-padding each to the
    largest shape in the batch rounded up to ``size_divisor``; label maps and tumor masks of
    the data samples are padded the same way (a study's precomputed ``organ_cells``, which
    index the unpadded grid, are dropped when its label map is padded). Works for any number
    of spatial dims.

    Args:
        size_divisor: pad spatial sizes to a multiple of this (the backbone's total stride;
            the model sets it from its backbone when left as None).
        pad_value: value for padded image voxels (0 = the bottom of the HU window).
    """

    def __init__(self, size_divisor=None, pad_value=0.0):
        super().__init__()
        self.size_divisor = size_divisor
        self.pad_value = pad_value

    def forward(self, data, training=False):
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, torch.Tensor):
            inputs = list(inputs)
        shapes = torch.tensor([list(x.shape[1:]) for x in inputs])
        target = shapes.max(0).values.tolist()
        if self.size_divisor:
            target = [int(math.ceil(s / self.size_divisor) * self.size_divisor) for s in target]
        batch = torch.stack([_pad_to(x, target, self.pad_value) for x in inputs]).float()
        if samples is not None:
            for sample in samples:
                if 'organ_cells' in sample and list(sample.organ_label.shape) != target:
                    # the loader's organ-cell overlap indexes the unpadded grid: drop it, the
                    # pooler computes the overlap of the padded label map instead
                    del sample.organ_cells
                for key in ('organ_label', 'tumor_mask'):
                    if key in sample:
                        sample.set_data({key: _pad_to(sample.get(key)[None], target, 0)[0]})
        return dict(inputs=batch, data_samples=samples)


def _pad_to(x, target, value):
    """Zero-pad ``C x *spatial`` at the end of each spatial dim to ``target``."""
    pad = []
    for size, want in zip(reversed(x.shape[1:]), reversed(target)):
        pad += [0, want - size]
    return F.pad(x, pad, value=value) if any(pad) else x
