"""Moved to :mod:`ctglip.vocabularies` (the organ and abnormality vocabularies are read by
models, losses, metrics and plots, not only by datasets). This module re-exports it so that
``from ctglip.datasets.organs import ...`` keeps working."""
from ctglip.vocabularies import (ABNORMALITIES, BUILTIN_SCHEMES, CLASS_MAP_FILE,  # noqa: F401
                                 ORGAN_GROUPS, V2_TO_V1_EXCEPTIONS, all_abnormalities, flip_lut,
                                 organ_group, organ_vocabulary, readable_name, scheme_classes,
                                 scheme_to_vocab_lut, swap_side)
from ctglip.vocabularies.organs import _class_maps, _READABLE_WORDS  # noqa: F401
