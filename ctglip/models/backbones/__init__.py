"""3D image encoders for grounded pretraining, registered in ``BACKBONES``."""
from ctglip.models.backbones.mit3d import MIT3D_PRESETS, MiT3D
from ctglip.models.backbones.nnunet import NNUNET_PRESETS, NNUNetEncoder3D

__all__ = ['MIT3D_PRESETS', 'MiT3D', 'NNUNET_PRESETS', 'NNUNetEncoder3D']
