"""CT appearance of the phantom: tissue classes, Hounsfield units per contrast phase, texture.

Each voxel carries a tissue class (uint8) besides its organ label. Classes 1..104 are the
parenchyma of the TotalSegmentator v1 organ with that label; higher classes are tissues that
organs share or that carry no label (fat, cortical bone, bile, bowel gas, ...). A study draws
a lookup table ``class -> (mean HU, texture amplitude)`` from its contrast phase
(non-contrast, arterial, portal venous), the enhancement strength and per-organ offsets, so
that soft-tissue organs overlap in HU across studies as they do in real CT.
"""
import numpy as np

from ..organs import organ_vocabulary

__all__ = ['TISSUE', 'PHASES', 'tissue_lut', 'smooth_field', 'LABEL']

ORGANS = organ_vocabulary('totalseg_v1')
LABEL = {name: i + 1 for i, name in enumerate(ORGANS)}

_EXTRA = ('fat', 'visceral_fat', 'mediastinal_fat', 'muscle', 'skin', 'cortical_bone',
          'cancellous_bone', 'cartilage', 'csf', 'canal', 'airway', 'gas', 'bowel_fluid', 'stool',
          'oral_contrast', 'bowel_wall', 'gastric_wall', 'gastric_fluid', 'bile', 'gb_wall',
          'urine', 'bladder_wall', 'kidney_medulla', 'renal_sinus', 'collecting_fluid',
          'duct_fluid', 'artery', 'vein', 'emphysema', 'eye', 'couch', 'lung_vessel')
TISSUE = {'air': 0}
TISSUE.update(LABEL)
TISSUE.update({name: 105 + i for i, name in enumerate(_EXTRA)})

PHASES = ('non-contrast', 'arterial', 'portal venous')

# (non-contrast, arterial, portal venous) mean HU and texture amplitude (HU) per class.
_ORGAN_HU = {
    'spleen': ((47, 115, 118), 6), 'kidney_right': ((32, 185, 165), 7),
    'kidney_left': ((32, 185, 165), 7), 'liver': ((58, 72, 108), 6),
    'stomach': ((38, 80, 85), 8), 'aorta': ((45, 320, 165), 4),
    'inferior_vena_cava': ((44, 95, 150), 6), 'portal_vein_and_splenic_vein': ((44, 120, 175), 5),
    'pancreas': ((42, 115, 95), 10), 'adrenal_gland_right': ((28, 62, 70), 8),
    'adrenal_gland_left': ((28, 62, 70), 8), 'esophagus': ((40, 70, 78), 8),
    'trachea': ((-960, -960, -960), 20), 'heart_myocardium': ((45, 110, 100), 6),
    'heart_atrium_left': ((44, 310, 160), 5), 'heart_ventricle_left': ((44, 315, 162), 5),
    'heart_atrium_right': ((44, 280, 158), 8), 'heart_ventricle_right': ((44, 290, 160), 7),
    'pulmonary_artery': ((44, 330, 160), 5), 'brain': ((35, 37, 38), 3),
    'iliac_artery_left': ((45, 310, 160), 4), 'iliac_artery_right': ((45, 310, 160), 4),
    'iliac_vena_left': ((44, 55, 145), 6), 'iliac_vena_right': ((44, 55, 145), 6),
    'small_bowel': ((38, 85, 90), 8), 'duodenum': ((38, 85, 90), 8), 'colon': ((38, 80, 85), 8),
    'urinary_bladder': ((8, 8, 12), 3), 'face': ((35, 45, 55), 30),
}
_MUSCLE = ((50, 55, 62), 7)
_LUNG = ((-855, -850, -850), 22)
_BONE = ((240, 240, 240), 45)  # cancellous core of a bone organ; the cortex is its own class
_EXTRA_HU = {
    'fat': ((-105, -105, -105), 10), 'visceral_fat': ((-95, -95, -93), 14),
    'mediastinal_fat': ((-90, -88, -88), 12), 'muscle': _MUSCLE, 'skin': ((40, 45, 50), 6),
    'cortical_bone': ((1150, 1150, 1150), 110), 'cancellous_bone': ((230, 230, 230), 50),
    'cartilage': ((120, 125, 130), 20), 'csf': ((8, 8, 8), 3), 'canal': ((22, 24, 26), 6),
    'airway': ((-970, -970, -970), 10), 'gas': ((-980, -980, -980), 15),
    'bowel_fluid': ((15, 15, 18), 8), 'stool': ((-60, -60, -60), 110),
    'oral_contrast': ((380, 380, 380), 70), 'bowel_wall': ((38, 85, 90), 8),
    'gastric_wall': ((38, 80, 88), 8), 'gastric_fluid': ((12, 12, 14), 10), 'bile': ((9, 9, 10), 4),
    'gb_wall': ((35, 70, 75), 6), 'urine': ((8, 8, 12), 3), 'bladder_wall': ((38, 70, 75), 6),
    'kidney_medulla': ((30, 95, 155), 8), 'renal_sinus': ((-55, -50, -45), 25),
    'collecting_fluid': ((8, 9, 12), 3), 'duct_fluid': ((10, 10, 12), 3),
    'artery': ((45, 300, 160), 5), 'vein': ((44, 80, 150), 6),
    'emphysema': ((-975, -975, -975), 10), 'eye': ((12, 12, 14), 3),
    'couch': ((-350, -350, -350), 30), 'lung_vessel': ((-250, -200, -220), 80),
}


def _base_table():
    hu = np.zeros((256, 3), np.float32)
    amp = np.zeros(256, np.float32)
    hu[0] = -1000.0
    amp[0] = 5.0
    for name, label in LABEL.items():
        if name in _ORGAN_HU:
            v, a = _ORGAN_HU[name]
        elif name.startswith('lung_'):
            v, a = _LUNG
        elif name.startswith(('gluteus', 'autochthon', 'iliopsoas')):
            v, a = _MUSCLE
        else:  # vertebrae, ribs and the other bones
            v, a = _BONE
        hu[label], amp[label] = v, a
    for name, (v, a) in _EXTRA_HU.items():
        hu[TISSUE[name]], amp[TISSUE[name]] = v, a
    return hu, amp


_HU_TABLE, _AMP_TABLE = _base_table()
_NONENHANCING = {TISSUE[n] for n in (
    'air', 'fat', 'visceral_fat', 'mediastinal_fat', 'cortical_bone', 'cancellous_bone', 'csf',
    'airway', 'gas', 'bowel_fluid', 'stool', 'oral_contrast', 'bile', 'urine', 'collecting_fluid',
    'duct_fluid', 'emphysema', 'eye', 'couch', 'gastric_fluid')}


def tissue_lut(rng, phase, enhancement=1.0):
    """Per-study lookup tables ``(hu, amp)`` over the 256 tissue classes.

    Args:
        rng: the study's random generator (per-organ offsets).
        phase: one of :data:`PHASES`.
        enhancement: contrast strength factor (bolus, cardiac output, timing), 0.7-1.3.

    Returns:
        tuple: float32 arrays ``hu[class]`` (mean HU) and ``amp[class]`` (texture amplitude).
    """
    k = PHASES.index(phase)
    base = _HU_TABLE[:, 0]
    hu = base + (_HU_TABLE[:, k] - base) * enhancement
    offsets = rng.normal(0.0, 6.0, 256).astype(np.float32)
    for c in _NONENHANCING:
        offsets[c] *= 0.3
    hu = hu + offsets + np.float32(rng.normal(0.0, 4.0))  # organ jitter + scanner calibration
    amp = _AMP_TABLE * np.exp(rng.normal(0.0, 0.2, 256)).astype(np.float32)
    return hu.astype(np.float32), amp.astype(np.float32)


def _upsample(a, factor, n, axis, offset):
    """Linear interpolation of ``a`` along ``axis`` to ``n`` samples spaced ``1/factor``."""
    pos = offset + np.arange(n, dtype=np.float32) / factor
    i0 = np.minimum(pos.astype(np.int64), a.shape[axis] - 2)
    w = (pos - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n
    w = w.reshape(shape)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i0 + 1, axis=axis)
    lo *= 1.0 - w
    hi *= w
    lo += hi
    return lo


def smooth_field(rng, shape, spacing, scales=((16.0, 0.8), (8.0, 0.6))):
    """A smooth random texture field of about unit variance mixing several correlation lengths.

    White noise on a grid as fine as the smallest scale (mm), plus coarser noise interpolated
    onto that grid, then one linear interpolation to the volume: cheap, and smooth enough after
    the scanner blur. Scales below one voxel give white noise.

    Args:
        rng: random generator.
        shape: volume shape.
        spacing: voxel size (mm) per axis.
        scales: ``(correlation length in mm, weight)`` pairs.
    """
    fine = min(s for s, _ in scales)
    factors = [max(1.0, fine / sp) for sp in spacing]
    grid = [int(np.ceil((n - 1) / f)) + 2 for n, f in zip(shape, factors)]
    field = np.zeros(grid, np.float32)
    for scale, weight in scales:
        sub = [max(1.0, scale / fine * min(f, 1e9) / f) for f in factors]  # grid steps per sample
        coarse = [int(np.ceil((n - 1) / k)) + 2 for n, k in zip(grid, sub)]
        a = rng.standard_normal(coarse, dtype=np.float32)
        for axis, (n, k) in enumerate(zip(grid, sub)):
            if k > 1.0:
                a = _upsample(a, k, n, axis, rng.uniform(0, 1))
            else:
                a = np.take(a, np.arange(n), axis=axis)
        field += np.float32(weight) * a
    field *= np.float32(1.0 / max(1e-6, float(field.std())))
    for axis, (n, f) in enumerate(zip(shape, factors)):
        if f > 1.0:
            field = _upsample(field, f, n, axis, rng.uniform(0, 1))
        else:
            field = np.take(field, np.arange(n), axis=axis)
    # linear interpolation lowers the variance between grid points; restore about unit std
    field *= np.float32(1.0 / (2.0 / 3.0) ** (0.5 * sum(f > 1.0 for f in factors)))
    return field
