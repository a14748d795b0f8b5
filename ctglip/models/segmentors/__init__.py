"""Fine-tuning models (``CTSegmentor``) and their initialisation from pretraining."""
from ctglip.models.segmentors.ct_segmentor import CTSegmentor, backbone_levels
from ctglip.models.segmentors.pretrained import PretrainedEncoder, load_encoder

__all__ = ['CTSegmentor', 'PretrainedEncoder', 'backbone_levels', 'load_encoder']
