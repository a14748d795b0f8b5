"""The organ vocabulary: TotalSegmentator class schemes, label lookup tables and readable names.

Everything that maps between label indices, organ names and text lives here so that the
dataset, the phantom generator, the report structurer, the model and the metrics agree. The
abnormality vocabulary (organ groups and their findings) is :mod:`.abnormalities`.
"""
import json
import os.path as osp
from functools import lru_cache

from ctglip.utils.errors import ConfigError

CLASS_MAP_FILE = osp.join(osp.dirname(__file__), 'class_maps', 'totalsegmentator.json')
BUILTIN_SCHEMES = ('totalseg_v1', 'totalseg_v2')

# v2 classes with no v1 counterpart of the same name that still belong to a v1 organ.
# Everything else that v2 adds (heart as one structure, pulmonary_vein, skull, sternum, ...)
# has no v1 class and is mapped to background: v2 ``heart`` is not split into v1's five
# chambers, v2 ``pulmonary_vein`` is not v1 ``pulmonary_artery``, and v1 ``face`` never
# occurs in v2 label maps.
V2_TO_V1_EXCEPTIONS = {
    'kidney_cyst_left': 'kidney_left',
    'kidney_cyst_right': 'kidney_right',
    'vertebrae_S1': 'sacrum',
}

# Coarse organs of other label schemes, each holding several v1 organs: TotalSegmentator v2's
# one-piece heart (v1 has the myocardium and four chambers), and the whole lungs of region-level
# masks (RadGenome-ChestCT's lung region). A v1 organ outside an organ vocabulary stands for the
# coarse organ of that vocabulary that holds it (:func:`organs_in`).
COARSE_ORGANS = {
    'heart': ('heart_myocardium', 'heart_atrium_left', 'heart_ventricle_left', 'heart_atrium_right',
              'heart_ventricle_right'),
    'lung': ('lung_upper_lobe_left', 'lung_lower_lobe_left', 'lung_upper_lobe_right',
             'lung_middle_lobe_right', 'lung_lower_lobe_right'),
    'lung_left': ('lung_upper_lobe_left', 'lung_lower_lobe_left'),
    'lung_right': ('lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right'),
}

_READABLE_WORDS = {
    'vertebrae': 'vertebra', 'clavicula': 'clavicle', 'vena': 'vein', 'hip': 'hip bone',
    'autochthon': 'autochthonous back muscle',
}


@lru_cache(maxsize=None)
def _class_maps():
    with open(CLASS_MAP_FILE) as f:
        return json.load(f)


def scheme_classes(scheme):
    """Return ``{label index: organ name}`` for a scheme name or a JSON class-map path."""
    if scheme in BUILTIN_SCHEMES:
        return {int(k): v for k, v in _class_maps()[scheme].items()}
    if isinstance(scheme, str) and scheme.endswith('.json'):
        if not osp.isfile(scheme):
            raise ConfigError(f'label_scheme file {scheme!r} does not exist; give a JSON class '
                              'map {"1": "spleen", ...} or one of ' + ', '.join(BUILTIN_SCHEMES))
        try:
            with open(scheme) as f:
                raw = json.load(f)
            return {int(k): str(v) for k, v in raw.items() if not k.startswith('_')}
        except (ValueError, AttributeError) as e:
            raise ConfigError(f'label_scheme file {scheme!r} is not a JSON object of '
                              f'{{"index": "organ_name"}}: {e}') from None
    raise ConfigError(f'unknown label_scheme {scheme!r}; use one of {", ".join(BUILTIN_SCHEMES)} '
                      'or the path of a JSON class map {"1": "spleen", ...}')


def organ_vocabulary(vocab='totalseg_v1'):
    """The model's organ vocabulary: a tuple of organ names; label ``i + 1`` is ``vocab[i]``.

    Args:
        vocab: a scheme name (``totalseg_v1`` gives the paper's 104 organs), a JSON class map
            path, or an explicit sequence of organ names.
    """
    if isinstance(vocab, (list, tuple)):
        return tuple(vocab)
    classes = scheme_classes(vocab)
    return tuple(classes[i] for i in sorted(classes))


def scheme_to_vocab_lut(scheme, vocab):
    """Lookup table that maps a scheme's label indices to 1-based vocabulary indices.

    Returns:
        tuple: (lut, known) where ``lut[label]`` is the vocabulary index (0 = background or an
        organ outside the vocabulary) and ``known`` is the set of labels the scheme defines.
    """
    import numpy as np
    classes = scheme_classes(scheme)
    vocab = organ_vocabulary(vocab)
    index = {name: i + 1 for i, name in enumerate(vocab)}
    lut = np.zeros(max(classes) + 1, dtype=np.int64)
    for label, name in classes.items():
        name = V2_TO_V1_EXCEPTIONS.get(name, name) if name not in index else name
        lut[label] = index.get(name, 0)
    return lut, set(classes) | {0}


def readable_name(organ):
    """``kidney_left`` -> ``left kidney``; ``lung_upper_lobe_right`` -> ``upper lobe of the right lung``."""
    parts = organ.split('_')
    side = None
    if parts[-1] in ('left', 'right'):
        side = parts.pop()
    elif len(parts) > 2 and parts[1] in ('left', 'right'):  # rib_left_1
        side = parts.pop(1)
    if parts[0] == 'lung' and 'lobe' in parts:
        return f'{" ".join(parts[1:])} of the {side} lung'
    if parts[0] == 'rib':
        n = int(parts[1])
        suffix = {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th')
        return f'{side} {n}{suffix} rib'
    if parts[0] == 'vertebrae':
        return f'{parts[1]} vertebra'
    words = [p if (p == 'vena' and 'cava' in parts) else _READABLE_WORDS.get(p, p)
             for p in parts]
    text = ' '.join(words)
    return f'{side} {text}' if side else text


def swap_side(organ, vocab=None):
    """The mirror organ of a left/right one (``kidney_left`` <-> ``kidney_right``), else itself.

    With ``vocab``, an organ whose mirror is not in it (``lung_middle_lobe_right``) stays itself.
    """
    mirror = organ
    for a, b in (('_left', '_right'), ('_right', '_left')):
        if organ.endswith(a):
            mirror = organ[:-len(a)] + b
            break
        if f'{a}_' in organ:  # rib_left_3
            mirror = organ.replace(f'{a}_', f'{b}_')
            break
    if vocab is not None and mirror not in vocab:
        return organ
    return mirror


def flip_lut(vocab='totalseg_v1'):
    """Vocabulary index permutation that swaps left and right organs (index 0 stays 0)."""
    import numpy as np
    vocab = organ_vocabulary(vocab)
    index = {name: i + 1 for i, name in enumerate(vocab)}
    lut = np.arange(len(vocab) + 1)
    for name, i in index.items():
        lut[i] = index[swap_side(name, index)]
    return lut


def organs_in(organ, vocab):
    """The organs of ``vocab`` that stand for ``organ``: the organ itself when ``vocab`` has it,
    else the coarse organs of ``vocab`` that hold it (``heart_atrium_left`` -> ``heart`` in the
    v2 vocabulary), else none.

    Args:
        organ (str): an organ name (a v1 name, as the report structurer writes).
        vocab (Collection[str]): organ names.

    Returns:
        tuple[str, ...]
    """
    if organ in vocab:
        return (organ,)
    return tuple(c for c, parts in COARSE_ORGANS.items() if organ in parts and c in vocab)
