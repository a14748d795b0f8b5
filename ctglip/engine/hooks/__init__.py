"""Hooks of ctglip's training runs."""
from .rng_state import RNGStateHook

__all__ = ['RNGStateHook']
