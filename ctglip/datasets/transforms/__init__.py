"""Transforms of ctglip's data pipelines.

ctglip's own transforms (loading, tumor-label selection, organ-aware crop, label-swapping flip,
packing; for fine-tuning: per-organ tumor labels, tumor-aware crop, the recorded affine) plus
the MONAI dictionary transforms that pipelines use, registered under their MONAI
names (``Orientationd``, ``Spacingd``, ``ScaleIntensityRanged``, ``CropForegroundd``, ...).
"""
import monai.transforms as _mt

from ctglip.registry import TRANSFORMS

from .caching import CachedPreprocess
from .loading import LoadCTStudy, read_organ_mask, read_volume
from .processing import (CenterPadCrop, MultiWindowd, OrganBoxCrop, PackCTInputs, RandFlipLR,
                         RandOrganCrop)
from .tumor import RandTumorCrop, RecordAffine, SelectTumorLabels, TumorOrganLabels

MONAI_TRANSFORMS = ('Orientationd', 'Spacingd', 'ScaleIntensityRanged', 'CropForegroundd',
                    'SpatialPadd', 'DivisiblePadd', 'ResizeWithPadOrCropd', 'RandSpatialCropd',
                    'RandScaleIntensityd', 'RandShiftIntensityd', 'RandGaussianNoised',
                    'RandAffined', 'EnsureTyped')
for _name in MONAI_TRANSFORMS:
    TRANSFORMS.register_module(name=_name, module=getattr(_mt, _name), force=True)

__all__ = ['CachedPreprocess', 'LoadCTStudy', 'read_volume', 'read_organ_mask', 'RandOrganCrop',
           'CenterPadCrop', 'OrganBoxCrop', 'RandFlipLR', 'PackCTInputs', 'MultiWindowd',
           'SelectTumorLabels', 'RecordAffine', 'TumorOrganLabels', 'RandTumorCrop',
           'MONAI_TRANSFORMS']
