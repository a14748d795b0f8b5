"""Vocabularies: the organs of the label schemes and the abnormality vocabularies.

Read by datasets, models, losses, metrics and plots alike, so this package sits on the ground
floor and imports nothing else of ctglip but ``ctglip.utils``.

* :mod:`.organs`: TotalSegmentator class schemes (``totalseg_v1``: 104 organs, ``totalseg_v2``:
  117), class-map files, label lookup tables, readable names, left/right swaps.
* :mod:`.abnormalities`: abnormality vocabularies as data (``default.json``: the 16 findings of
  DESIGN.md; ``ct_rate.json``: CT-RATE's 18 chest findings), loaded by name or path with
  :func:`load_abnormality_vocab` and checked against prompt files and dictionaries.

``ORGAN_GROUPS``, ``ABNORMALITIES``, :func:`organ_group` and :func:`all_abnormalities` are the
default vocabulary's tables, for code that is about the default vocabulary only (the phantom
generator, its benchmarks); code that follows the config takes an
:class:`AbnormalityVocabulary` instead.
"""
from ctglip.vocabularies.abnormalities import (AbnormalityVocabulary, default_vocabulary,
                                               load_abnormality_vocab, shipped_vocabularies)
from ctglip.vocabularies.organs import (BUILTIN_SCHEMES, CLASS_MAP_FILE, V2_TO_V1_EXCEPTIONS,
                                        flip_lut, organ_vocabulary, readable_name,
                                        scheme_classes, scheme_to_vocab_lut, swap_side)

_DEFAULT = default_vocabulary()
ORGAN_GROUPS = dict(_DEFAULT.groups)
ABNORMALITIES = dict(_DEFAULT.abnormalities)


def organ_group(organ):
    """The default vocabulary's group of an organ (``kidney_left`` -> ``kidney``), or None."""
    return _DEFAULT.organ_group(organ)


def all_abnormalities():
    """Every abnormality name of the default vocabulary, in a fixed order."""
    return _DEFAULT.names


__all__ = [
    'ABNORMALITIES', 'AbnormalityVocabulary', 'BUILTIN_SCHEMES', 'CLASS_MAP_FILE',
    'ORGAN_GROUPS', 'V2_TO_V1_EXCEPTIONS', 'all_abnormalities', 'default_vocabulary', 'flip_lut',
    'load_abnormality_vocab', 'organ_group', 'organ_vocabulary', 'readable_name',
    'scheme_classes', 'scheme_to_vocab_lut', 'shipped_vocabularies', 'swap_side',
]
