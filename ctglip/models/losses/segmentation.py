"""Segmentation losses of fine-tuning: MONAI's, registered in ``LOSSES`` under their names.

``DiceCELoss`` takes ``B x C x D x H x W`` logits and a ``B x 1 x D x H x W`` label map
(``to_onehot_y=True, softmax=True``); ``CTSegmentor`` builds it from ``model.loss``.
"""
import monai.losses as _ml

from ctglip.registry import LOSSES

MONAI_LOSSES = ('DiceCELoss', 'DiceFocalLoss')
for _name in MONAI_LOSSES:
    LOSSES.register_module(name=_name, module=getattr(_ml, _name), force=True)
