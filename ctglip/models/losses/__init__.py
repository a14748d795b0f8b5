from .base import ContrastiveLoss, ContrastiveTargets, soft_infonce, unique_targets
from .gather import gather_features, gather_objects
from .grounded import AnatomyContrastiveLoss, CLIPLoss, DiagnosisContrastiveLoss
from .segmentation import MONAI_LOSSES  # noqa: F401  (registers DiceCELoss, DiceFocalLoss)

__all__ = ['ContrastiveLoss', 'ContrastiveTargets', 'soft_infonce', 'unique_targets',
           'gather_features', 'gather_objects', 'AnatomyContrastiveLoss',
           'DiagnosisContrastiveLoss', 'CLIPLoss']
