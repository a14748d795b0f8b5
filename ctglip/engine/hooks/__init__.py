"""Hooks of ctglip's training runs."""
from .freeze_encoder import FreezeEncoderHook
from .inference_meta import InferenceMetaHook
from .rng_state import RNGStateHook
from .tumor_predictions import TumorPredictionWriter

__all__ = ['FreezeEncoderHook', 'InferenceMetaHook', 'RNGStateHook', 'TumorPredictionWriter']
