"""Tiny inputs for tests and quick trials: a random BERT folder, a small manifest dataset, and
the bad-input corpus that every tool reading scans must pass (``bad_inputs``).

Tests and users build them the same way::

    from ctglip.testing import make_tiny_bert, make_tiny_dataset
    bert = make_tiny_bert('/tmp/bert')
    root = make_tiny_dataset('/tmp/data', num_cases=6)
"""
from .bad_inputs import (BAD_INPUT_KINDS, BAD_REPORT_KINDS, BAD_TUMOR_KINDS, make_bad_dataset,
                         make_bad_reports_jsonl, make_bad_tumor_dataset)
from .data import make_tiny_dataset
from .text import make_tiny_bert
from .tumor_data import make_tiny_tumor_dataset

__all__ = ['make_tiny_bert', 'make_tiny_dataset', 'make_bad_dataset', 'make_bad_reports_jsonl',
           'BAD_INPUT_KINDS', 'BAD_REPORT_KINDS', 'BAD_TUMOR_KINDS', 'make_bad_tumor_dataset',
           'make_tiny_tumor_dataset']
