"""Converters of public datasets into ctglip's manifest format (``shared/DESIGN.md``).

Command-line entry points: ``tools/dataset_converters/<dataset>.py``. Commands, layouts and
the TotalSegmentator run that makes the organ masks: ``docs/vocabularies.md``.
"""
from ctglip.datasets.converters.ct_rate import convert_ct_rate
from ctglip.datasets.converters.radgenome import convert_radgenome

__all__ = ['convert_ct_rate', 'convert_radgenome']
