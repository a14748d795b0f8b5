"""3D image encoders for grounded pretraining, registered in ``BACKBONES``."""
from ctglip.models.backbones.mit3d import MIT3D_PRESETS, MiT3D
from ctglip.models.backbones.nnunet import NNUNET_PRESETS, NNUNetEncoder3D
from ctglip.models.backbones.simple import IdentityBackbone, PlainConv3D

__all__ = ['IdentityBackbone', 'MIT3D_PRESETS', 'MiT3D', 'NNUNET_PRESETS', 'NNUNetEncoder3D',
           'PlainConv3D']
