"""Checks of a user's scan and organ mask before inference: each raises a ``DataError`` or
returns warnings that name the file and the fix.

What the data pipeline already refuses (missing or foreign files, 2D and 4D images, DICOM
folders that mix series, CT/mask grid or affine mismatch, NaN voxels, labels outside the
scheme, an empty mask) is checked by ``ctglip.datasets.transforms.loading``; this module adds
what a scan from outside the training data gets wrong: not Hounsfield units, a modality other
than CT, a spacing far from training, too few organs, a mask whose label scheme is not the one
given, and left/right mirrored images.
"""
import os
import os.path as osp

import numpy as np

from ctglip.datasets.organs import BUILTIN_SCHEMES, scheme_classes
from ctglip.utils.errors import DataError

MIN_ORGANS = 5  # fewer organs of the vocabulary in a mask: a warning
MIN_ORGAN_VOXELS = 20  # an organ with fewer voxels is a speck, not counted
LATERAL_MARGIN_MM = 10.0  # an organ this far on the wrong side of the midline is on the wrong side
MIRRORED_FRACTION = 0.8  # this share of lateral organs on the wrong side: the image is mirrored
MIDLINE_PREFIXES = ('vertebrae_', 'spinal_cord', 'sacrum', 'trachea', 'urinary_bladder',
                    'prostate', 'brain', 'skull', 'sternum', 'costal_cartilages')
# Organs whose voxels are soft tissue (about 0-100 HU whatever the contrast phase).
SOFT_TISSUE = ('liver', 'spleen', 'kidney_left', 'kidney_right', 'pancreas', 'autochthon_left',
               'autochthon_right', 'iliopsoas_left', 'iliopsoas_right', 'gluteus_maximus_left',
               'gluteus_maximus_right', 'gluteus_medius_left', 'gluteus_medius_right',
               'heart_myocardium', 'heart')
# Single organs that lie on one side.
SIDED_ORGANS = {'liver': 'right', 'spleen': 'left'}
SKIPPABLE = ('hu', 'laterality')
_HU_FIX = ('Fix: give the CT in Hounsfield units as the scanner wrote it (the DICOM series, or '
           'a NIfTI converted from it with dcm2niix), not a windowed, normalised or rescaled '
           'copy; if it is right, pass --skip-check hu.')


def _case(case_id):
    return f'case {case_id!r}: ' if case_id is not None else ''


# -- the scan --------------------------------------------------------------------------------
def check_dicom_modality(folder, case_id=None):
    """A DICOM series folder must hold CT (``Modality`` tag)."""
    import pydicom
    files = sorted(f for f in os.listdir(folder) if not f.startswith('.'))
    if not files:
        return
    path = osp.join(folder, files[0])
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    modality = str(getattr(ds, 'Modality', '') or '').strip()
    if modality and modality.upper() != 'CT':
        raise DataError(f'{_case(case_id)}image {folder}: DICOM tag Modality of {files[0]} is '
                        f'{modality!r}, not CT; ctglip models read CT in Hounsfield units only. '
                        'Fix: give the CT series of the study (Modality CT).')


def check_hounsfield(image, organ_label, vocab, path, case_id=None):
    """Refuse intensities that are not Hounsfield units.

    ``image`` is the CT in HU as read (any grid), ``organ_label`` the organ label map on the
    same grid in vocabulary indices. The median of soft-tissue organs (liver, spleen, kidneys,
    muscles) tells a missing or doubled rescale intercept (about +1000 or -1000 HU off) apart
    from a real scan; the value range tells windowed or normalised copies.

    Returns:
        list[str]: warnings.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    where = f'{_case(case_id)}image {path}'
    if high - low <= 2.0:
        raise DataError(f'{where} holds values in [{low:.3g}, {high:.3g}]: already windowed or '
                        'normalised, not Hounsfield units (a CT spans about -1000 for air to '
                        f'+1000 and more for bone). {_HU_FIX}')
    if low >= 0 and high <= 255:
        raise DataError(f'{where} holds values in [{low:.0f}, {high:.0f}]: an 8-bit picture, not '
                        f'Hounsfield units (air is about -1000). {_HU_FIX}')
    labels = np.asarray(organ_label)
    soft = [i + 1 for i, name in enumerate(vocab) if name in SOFT_TISSUE]
    inside = np.isin(labels, soft) if soft else np.zeros(labels.shape, bool)
    if inside.sum() < 100:
        if low >= 0:
            raise DataError(f'{where} has no voxel below 0 (values {low:.0f} to {high:.0f}); '
                            'air should be about -1000 HU: the rescale intercept was not '
                            f'applied. {_HU_FIX}')
        return []
    median = float(np.median(image[inside]))
    if median > 600:
        raise DataError(f'{where}: soft-tissue organs (liver, spleen, kidneys, muscles) have a '
                        f'median of {median:.0f} HU where about 0-100 is expected: the rescale '
                        'intercept is missing (stored values, air near 0; usually subtract '
                        f'1024). {_HU_FIX}')
    if median < -500:
        raise DataError(f'{where}: soft-tissue organs (liver, spleen, kidneys, muscles) have a '
                        f'median of {median:.0f} HU where about 0-100 is expected: the rescale '
                        'intercept looks applied twice (water near -1024), or the mask is not '
                        f'of this CT. {_HU_FIX}')
    if not -250 <= median <= 400:
        return [f'{where}: soft-tissue organs have a median of {median:.0f} HU, unusual for CT '
                '(about 0-100 expected); check the rescale slope and intercept.']
    return []


def check_spacing(spacing, train_spacing, path, case_id=None):
    """Warn when the scan's voxels are much coarser than training's (the model then sees an
    upsampled, blurred scan) or implausibly fine (a header in cm or um).

    Returns:
        list[str]: warnings.
    """
    spacing = [float(s) for s in spacing]
    where = f'{_case(case_id)}image {path}'
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f'{where} has voxel spacing {spacing} mm; spacings must be positive. '
                        'Fix: re-export the scan with its geometry (e.g. with dcm2niix).')
    shown = ' x '.join(f'{s:.3g}' for s in spacing)
    warnings = []
    if train_spacing:
        coarse = [axis for axis, s, t in zip('xyz', spacing, train_spacing) if s > 1.5 * t]
        if coarse:
            trained = ' x '.join(f'{t:.3g}' for t in train_spacing)
            warnings.append(f'{where} has {shown} mm voxels, coarser along {"".join(coarse)} than '
                            f'the {trained} mm the model was trained at: it is resampled up and '
                            'small findings blur. Use thinner slices (a reconstruction of 1-3 '
                            'mm) if the study has them.')
    if min(spacing) < 0.2:
        warnings.append(f'{where} has {shown} mm voxels, finer than any clinical CT: check '
                        'that the header gives millimetres (not cm or um).')
    return warnings


def check_organ_count(organ_label, vocab, readout_organs, path, case_id=None):
    """Warn when the mask holds few organs of the vocabulary, or none with a read-out.

    Returns:
        list[str]: warnings.
    """
    counts = np.bincount(np.asarray(organ_label).ravel().astype(np.int64),
                         minlength=len(vocab) + 1)
    present = [vocab[i] for i in range(len(vocab)) if counts[i + 1] >= MIN_ORGAN_VOXELS]
    where = f'{_case(case_id)}organ_mask {path}'
    warnings = []
    if len(present) < MIN_ORGANS:
        warnings.append(f'{where} holds only {len(present)} organ(s) of the model\'s vocabulary '
                        f'({", ".join(present) or "none"}); results cover only these. A full '
                        'TotalSegmentator run (task "total", without --roi_subset) labels '
                        'dozens.')
    if readout_organs and not set(present) & set(readout_organs):
        warnings.append(f'{where} holds none of the organs with abnormality prompts '
                        f'({", ".join(sorted(readout_organs))}): no abnormality read-out.')
    return warnings


# -- left and right --------------------------------------------------------------------------
def label_centroids(labels, affine, min_voxels=MIN_ORGAN_VOXELS):
    """``{label: (voxels, world x in RAS mm)}`` of the labels of an integer label map."""
    labels = np.asarray(labels).astype(np.int64, copy=False)
    flat = labels.ravel()
    counts = np.bincount(flat)
    out = {}
    keep = np.nonzero(counts >= min_voxels)[0]
    keep = keep[keep > 0]
    if not len(keep):
        return out
    index = np.indices(labels.shape, dtype=np.float64).reshape(3, -1)
    means = [np.bincount(flat, weights=index[d]) for d in range(3)]
    affine = np.asarray(affine, dtype=float)
    for label in keep:
        voxel = np.array([means[d][label] / counts[label] for d in range(3)] + [1.0])
        out[int(label)] = (int(counts[label]), float((affine @ voxel)[0]))
    return out


def laterality(centroids, names):
    """Which sided organs lie on the wrong side of the body's midline.

    Args:
        centroids: ``{label: (voxels, x)}`` (``label_centroids``).
        names: ``{label: organ name}``.

    Returns:
        tuple: ``(checked, wrong)``: the sided organs present and those more than
        ``LATERAL_MARGIN_MM`` on the wrong side (RAS: +x is the patient's right).
    """
    by_name = {}
    for label, (count, x) in centroids.items():
        name = names.get(label)
        if name:
            by_name[name] = x
    midline = [x for n, x in by_name.items() if n.startswith(MIDLINE_PREFIXES)]
    if midline:
        centre = float(np.median(midline))
    else:
        pairs = [(x + by_name[n.replace('_left', '_right')]) / 2 for n, x in by_name.items()
                 if '_left' in n and n.replace('_left', '_right') in by_name]
        if not pairs:
            return [], []
        centre = float(np.mean(pairs))
    checked, wrong = [], []
    for name, x in sorted(by_name.items()):
        side = _side(name)
        if side is None:
            continue
        checked.append(name)
        if (side == 'right' and x < centre - LATERAL_MARGIN_MM) or \
                (side == 'left' and x > centre + LATERAL_MARGIN_MM):
            wrong.append(name)
    return checked, wrong


def _side(name):
    if name in SIDED_ORGANS:
        return SIDED_ORGANS[name]
    for side in ('left', 'right'):
        if name.endswith(f'_{side}') or f'_{side}_' in name:
            return side
    return None


def mirrored_error(path, checked, wrong, case_id=None):
    return DataError(
        f'{_case(case_id)}organ_mask {path}: {len(wrong)} of {len(checked)} left/right organs lie '
        f'on the other side of the body ({", ".join(wrong[:4])}, ...) in the image\'s world '
        'coordinates: the image and mask are mirrored left-right (a wrong affine or a flipped '
        'export). Fix: convert the CT again from its DICOM series (e.g. dcm2niix) and make the '
        'mask from that file; if the anatomy truly is mirrored (situs inversus), pass '
        '--skip-check laterality.')


def check_laterality(label_map, affine, names, path, case_id=None):
    """Refuse a mirrored image (most sided organs on the wrong side); warn for a few.

    Returns:
        list[str]: warnings.
    """
    checked, wrong = laterality(label_centroids(label_map, affine), names)
    if len(checked) >= 3 and len(wrong) >= MIRRORED_FRACTION * len(checked):
        raise mirrored_error(path, checked, wrong, case_id)
    if wrong:
        return [f'{_case(case_id)}organ_mask {path}: {", ".join(wrong)} lie(s) on the other side '
                'of the body than the name says; check the mask and the label scheme.']
    return []


# -- the label scheme ------------------------------------------------------------------------
def read_mask_labels(path, case_id=None):
    """Integer labels and RAS affine of a multi-label NIfTI mask (header and voxels)."""
    import nibabel as nib
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # noqa: BLE001  nibabel raises many types for foreign bytes
        raise DataError(f'{_case(case_id)}cannot read organ_mask {path}: {str(e)[:200]}. Fix: '
                        'give the multi-label NIfTI of TotalSegmentator (--ml).') from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    labels = data.astype(np.int64)
    if not np.array_equal(labels, data):
        raise DataError(f'{_case(case_id)}organ_mask {path} holds non-integer values; a label map '
                        'of integer class indices is required. Fix: save the mask with an '
                        'integer data type (TotalSegmentator --ml output).')
    return labels, img.affine


def resolve_label_scheme(mask_path, scheme='auto', case_id=None, skip=()):
    """The label scheme of a mask, checked against its values and the side of its organs.

    ``auto`` picks the built-in scheme (``totalseg_v1`` or ``totalseg_v2``) that defines every
    value of the mask and puts its left and right organs on their sides; a given scheme must
    do the same, and when another built-in one fits instead, the error names it.

    Args:
        mask_path: a multi-label NIfTI, or a folder of per-organ files (named by organ: only
            ``auto`` is resolved, to the scheme that has every name).
        scheme: ``auto``, a built-in scheme name or a JSON class map path.
        skip: check names to skip (``laterality``).

    Returns:
        tuple: ``(scheme, warnings)``.
    """
    if osp.isdir(mask_path):
        return _folder_scheme(mask_path, scheme, case_id), []
    labels, affine = read_mask_labels(mask_path, case_id)
    present = {int(v) for v in np.unique(labels) if v > 0}
    where = f'{_case(case_id)}organ_mask {mask_path}'
    fits = [s for s in BUILTIN_SCHEMES if present <= set(scheme_classes(s))]
    check_sides = 'laterality' not in skip
    centroids = label_centroids(labels, affine) if check_sides else {}
    sides = {s: laterality(centroids, scheme_classes(s)) for s in fits}
    if scheme == 'auto':
        if not fits:
            raise DataError(f'{where} has labels up to {max(present)}, more than any built-in '
                            f'label scheme defines ({", ".join(BUILTIN_SCHEMES)}). Fix: pass '
                            '--label-scheme CLASS_MAP.json ({"1": "spleen", ...}).')
        named = {s: tuple(scheme_classes(s)[v] for v in sorted(present)) for s in fits}
        if len(set(named.values())) == 1:
            scheme = fits[-1]  # every candidate names these labels alike
        else:
            fewest = min(len(sides[s][1]) for s in fits)
            best = [s for s in fits if len(sides[s][1]) == fewest]
            if len(best) > 1 or not check_sides:
                raise DataError(f'{where}: its labels fit both {" and ".join(fits)} and the '
                                'organs do not tell which. Fix: pass --label-scheme '
                                'totalseg_v2 for TotalSegmentator 2.x masks, totalseg_v1 for 1.x.')
            scheme = best[0]
    else:
        classes = scheme_classes(scheme)  # ConfigError for an unknown name or file
        undefined = sorted(present - set(classes))
        if undefined:
            other = [s for s in fits if s != scheme]
            fix = (f'pass --label-scheme {other[0]}' if other else
                   'pass --label-scheme with the scheme the mask was made with (a JSON class '
                   'map {"1": "spleen", ...} for other tools)')
            raise DataError(f'{where} has labels {undefined[:8]} that label_scheme {scheme!r} '
                            f'does not define (it has {len(classes)} classes). Fix: {fix}.')
        if check_sides:
            checked, wrong = sides.get(scheme) or laterality(centroids, classes)
            better = [s for s in fits if s != scheme and sides[s][0] and not sides[s][1]]
            if len(wrong) >= 2 and better:
                raise DataError(f'{where}: read as {scheme!r}, {len(wrong)} of its left/right '
                                f'organs lie on the wrong side ({", ".join(wrong[:4])}); read as '
                                f'{better[0]!r}, all are on their side. Fix: pass --label-scheme '
                                f'{better[0]} (the mask was made with that scheme).')
    if not check_sides:
        return scheme, []
    names = scheme_classes(scheme)
    checked, wrong = sides.get(scheme) or laterality(centroids, names)
    if len(checked) >= 3 and len(wrong) >= MIRRORED_FRACTION * len(checked):
        raise mirrored_error(mask_path, checked, wrong, case_id)
    if wrong:
        return scheme, [f'{where}: {", ".join(wrong)} lie(s) on the other side of the body than '
                        f'label_scheme {scheme!r} says; check the mask.']
    return scheme, []


def _folder_scheme(path, scheme, case_id):
    if scheme != 'auto':
        return scheme
    names = {f.split('.nii')[0] for f in os.listdir(path) if f.endswith(('.nii', '.nii.gz'))}
    for candidate in reversed(BUILTIN_SCHEMES):  # newest TotalSegmentator first
        if names <= set(scheme_classes(candidate).values()):
            return candidate
    unknown = sorted(names - set(scheme_classes(BUILTIN_SCHEMES[-1]).values()))
    raise DataError(f'{_case(case_id)}organ_mask folder {path}: {", ".join(unknown[:5])} are not '
                    f'organs of {" or ".join(BUILTIN_SCHEMES)}. Fix: pass --label-scheme '
                    'CLASS_MAP.json naming them, or remove those files.')
