"""Tiny inputs for tests and quick trials: a random BERT folder and a small manifest dataset.

Tests and users build them the same way::

    from ctglip.testing import make_tiny_bert, make_tiny_dataset
    bert = make_tiny_bert('/tmp/bert')
    root = make_tiny_dataset('/tmp/data', num_cases=6)
"""
from .data import make_tiny_dataset
from .text import make_tiny_bert

__all__ = ['make_tiny_bert', 'make_tiny_dataset']
