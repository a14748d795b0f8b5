"""Models: the CT-GLIP model and its registered parts (backbones, poolers, text encoders,
losses, projection heads, data preprocessor), and the fine-tuning segmentor with its decoders."""
from ctglip.utils.compat import apply_checkpoint_fix

from . import backbones, heads, losses, poolers, text_encoders  # noqa: F401  (register)
from . import decoders, segmentors  # noqa: F401  (register)
from .ctglip import CTGLIP
from .data_preprocessors import CTDataPreprocessor
from .segmentors import CTSegmentor

apply_checkpoint_fix()

__all__ = ['CTGLIP', 'CTDataPreprocessor', 'CTSegmentor']
