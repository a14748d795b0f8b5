"""Read CT volumes (NIfTI file or DICOM series folder) and TotalSegmentator organ masks
(multi-label file or per-organ folder) into MONAI MetaTensors, with errors that name the case,
the file and the fix.
"""
import os
import os.path as osp

import numpy as np

from ctglip.datasets.organs import organ_vocabulary, scheme_classes, scheme_to_vocab_lut
from ctglip.datasets.organs import V2_TO_V1_EXCEPTIONS
from ctglip.registry import TRANSFORMS
from ctglip.utils.errors import DataError

NIFTI_SUFFIXES = ('.nii', '.nii.gz')
RAS_LABELS = (('L', 'R'), ('P', 'A'), ('I', 'S'))  # NIfTI world axes: +x right, +y anterior


def _case(case_id):
    return f'case {case_id!r}: ' if case_id is not None else ''


_LOADERS = {}


def _loader(reader):
    """One MONAI ``LoadImage`` per reader (building one instantiates every MONAI reader)."""
    if reader not in _LOADERS:
        import logging
        import warnings

        from monai.transforms import LoadImage

        # MONAI warns on every reader set-up that the optional GPU DICOM decoder is absent.
        logging.getLogger('monai.data.nvimgcodec_pydicom_plugin').setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            _LOADERS[reader] = LoadImage(reader=reader, image_only=True)
    return _LOADERS[reader]


def _first_line(e):
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg.rstrip('.')[:300]


def _load_with_monai(path, reader, case_id, what):
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return _loader(reader)(path)
    except Exception as e:  # noqa: BLE001  any reader failure is a data problem here
        cut = ' (the file is cut off)' if isinstance(e, EOFError) else ''
        raise DataError(f'{_case(case_id)}cannot read {what} {path}: {_first_line(e)}{cut}. '
                        'Fix: check the file is a complete NIfTI file (or a folder holding one '
                        'DICOM series) and re-export it.') from None


def _missing(path, case_id, what):
    return DataError(f'{_case(case_id)}{what} file {path} does not exist. Fix: correct the '
                     f'{what!r} path in the manifest (relative to the dataset folder).')


def _check_shape(shape, path, case_id, what):
    """The 3D shape of a volume (a trailing axis of 1 dropped); DataError for 2D and 4D data."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[-1] == 1:
        shape = shape[:3]
    if len(shape) == 4:
        raise DataError(f'{_case(case_id)}{what} {path} has shape {shape}; a 3D volume is '
                        f'required, this file holds {shape[-1]} volumes. Fix: export a single 3D '
                        'series (split multi-phase or time series into one file per volume).')
    if len(shape) != 3:
        raise DataError(f'{_case(case_id)}{what} {path} has shape {shape}; a 3D volume is '
                        'required. Fix: export a single 3D series.')
    if min(shape) < 2:
        raise DataError(f'{_case(case_id)}{what} {path} has shape {shape}: a 2D slice, not a '
                        'volume. Fix: export the whole series (every slice) into one 3D file.')
    return shape


def _nifti_header(path, case_id, what):
    """``(shape, affine)`` of a NIfTI file from its header alone (no voxels are read)."""
    import nibabel as nib
    try:
        img = nib.load(path)
        shape, affine = tuple(img.shape), np.asarray(img.affine, dtype=float)
    except Exception as e:  # noqa: BLE001  nibabel raises many types for foreign bytes
        detail = _first_line(e).replace(path, osp.basename(path))
        raise DataError(f'{_case(case_id)}cannot read {what} {path}: not a NIfTI file '
                        f'({detail}). Fix: check the file is a complete NIfTI file '
                        '(.nii or .nii.gz) and re-export it.') from None
    return shape, affine


def read_volume(path, case_id=None, what='image'):
    """Read a 3D volume from a NIfTI file or a folder holding one DICOM series.

    Args:
        path: a ``.nii``/``.nii.gz`` file or a DICOM series folder.
        case_id: named in error messages.
        what: which manifest field the path came from, named in error messages.

    Returns:
        MetaTensor: X x Y x Z with its affine (world = RAS mm).
    """
    if not osp.exists(path):
        raise _missing(path, case_id, what)
    if osp.isdir(path):
        _check_dicom_folder(path, case_id, what)
        volume = _load_with_monai(path, 'PydicomReader', case_id, what)
    elif path.endswith(NIFTI_SUFFIXES):
        _check_shape(_nifti_header(path, case_id, what)[0], path, case_id, what)
        volume = _load_with_monai(path, 'NibabelReader', case_id, what)
    else:
        raise DataError(f'{_case(case_id)}{what} {path} is neither a NIfTI file (.nii, .nii.gz) '
                        'nor a DICOM series folder. Fix: convert it, e.g. with dcm2niix.')
    if volume.ndim == 4 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    _check_shape(volume.shape, path, case_id, what)
    return volume


def _check_dicom_folder(path, case_id, what):
    files = sorted(f for f in os.listdir(path) if not f.startswith('.'))
    if not files:
        raise DataError(f'{_case(case_id)}{what} folder {path} is empty; it must hold one '
                        'DICOM series. Fix: copy the series into it, or point the manifest at '
                        'the folder that holds it.')
    _check_single_dicom_series(path, files, case_id, what)


def _check_single_dicom_series(path, files, case_id, what):
    """Refuse folders that mix DICOM series or hold unreadable or cut-off slices.

    Reads headers only (pydicom), plus each file's size against the pixel data its header
    announces (uncompressed transfer syntaxes).
    """
    import pydicom
    series = {}
    for name in files:
        fpath = osp.join(path, name)
        try:
            with open(fpath, 'rb') as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
                remaining = osp.getsize(fpath) - fp.tell()
        except Exception:  # noqa: BLE001
            raise DataError(f'{_case(case_id)}{what} folder {path}: {name} is not a readable '
                            'DICOM file. Fix: remove it or re-export the series.') from None
        expected = _dicom_pixel_bytes(ds)
        if expected and remaining < expected:
            raise DataError(f'{_case(case_id)}{what} folder {path}: {name} is not a readable '
                            f'DICOM file: it is cut off ({max(remaining, 0)} of {expected} bytes '
                            'of pixel data). Fix: copy or re-export the series again.')
        series.setdefault(getattr(ds, 'SeriesInstanceUID', None), []).append(name)
    if len(series) > 1:
        groups = sorted(series.values(), key=len)
        raise DataError(f'{_case(case_id)}{what} folder {path} mixes {len(series)} DICOM series '
                        f'({", ".join(str(len(g)) for g in groups)} files; e.g. {groups[0][0]} '
                        f'is not in the series of {groups[-1][0]}). Fix: put each series in its '
                        'own folder and point the manifest at one.')


def _dicom_pixel_bytes(ds):
    """Bytes of uncompressed pixel data a DICOM header announces (0 when unknown)."""
    try:
        syntax = ds.file_meta.TransferSyntaxUID
        if syntax.is_encapsulated or syntax.is_deflated:
            return 0
        frames = int(getattr(ds, 'NumberOfFrames', 1) or 1)
        return (int(ds.Rows) * int(ds.Columns) * int(getattr(ds, 'SamplesPerPixel', 1))
                * frames * ((int(ds.BitsAllocated) + 7) // 8))
    except (AttributeError, TypeError, ValueError):
        return 0


def _ras_grid(shape, affine):
    """Shape and affine of a voxel grid once reoriented to RAS (as ``_to_ras`` would)."""
    import nibabel as nib
    ornt = nib.io_orientation(affine)
    ras_shape = tuple(int(shape[int(axis)]) for axis in ornt[:, 0])
    return ras_shape, affine @ nib.orientations.inv_ornt_aff(ornt, shape)


def _header_grid(path, case_id, what):
    """``(shape, affine)`` in RAS from headers only; None for a DICOM folder (checked only)."""
    if not osp.exists(path):
        raise _missing(path, case_id, what)
    if osp.isdir(path) and what == 'organ_mask':
        files = sorted(f for f in os.listdir(path) if f.endswith(NIFTI_SUFFIXES))
        if not files:
            raise _empty_organ_folder(path, case_id)
        grids = [(f, _header_grid(osp.join(path, f), case_id, what)) for f in files]
        for fname, grid in grids[1:]:
            if grid[0] != grids[0][1][0]:
                raise DataError(f'{_case(case_id)}organ_mask folder {path}: {fname} has shape '
                                f'{grid[0]}, {grids[0][0]} {grids[0][1][0]}. Fix: every organ '
                                'file must be on the CT voxel grid (rerun TotalSegmentator).')
        return grids[0][1]
    if osp.isdir(path):
        _check_dicom_folder(path, case_id, what)
        return None
    if not path.endswith(NIFTI_SUFFIXES):
        raise DataError(f'{_case(case_id)}{what} {path} is neither a NIfTI file (.nii, .nii.gz) '
                        'nor a DICOM series folder. Fix: convert it, e.g. with dcm2niix.')
    shape, affine = _nifti_header(path, case_id, what)
    return _ras_grid(_check_shape(shape, path, case_id, what), affine)


def check_study_headers(img_path, mask_path, tumor_path=None, case_id=None):
    """Check a study from its file headers alone, without reading voxels.

    Finds what a header shows: missing or foreign files, 2D or 4D images, DICOM folders that
    are empty, mix series or hold unreadable or cut-off slices, and CT/mask shape or affine
    mismatches (NIfTI files, compared in RAS). Voxel faults (NaN, unknown labels, an empty mask,
    a file cut off inside its compressed data) show only when ``LoadCTStudy`` reads the study.

    Raises:
        DataError: naming the case, the file and the fix.
    """
    image = _header_grid(img_path, case_id, 'image')
    for path, what in ((mask_path, 'organ_mask'), (tumor_path, 'tumor_mask')):
        if path:
            grid = _header_grid(path, case_id, what)
            if image is not None and grid is not None:
                _check_grid(image, grid, case_id, what, path)


def _empty_organ_folder(path, case_id):
    return DataError(f'{_case(case_id)}organ_mask folder {path} holds no NIfTI files. Fix: '
                     'expected one binary <organ>.nii.gz per organ (TotalSegmentator output).')


def check_mask_not_empty(mask, path, label_scheme, case_id=None):
    """Raise a DataError when an organ label map (in the model's vocabulary) is all background."""
    if not bool((mask > 0).any()):
        raise DataError(f'{_case(case_id)}organ_mask {path} holds no organ of the model\'s organ '
                        'vocabulary (every voxel is background), so the study cannot be '
                        'grounded. Fix: check that the mask was made from this CT and that '
                        f'label_scheme {label_scheme!r} is right, or leave the study out of the '
                        'manifest.')


def read_organ_mask(path, label_scheme, organ_vocab, case_id=None):
    """Read an organ label map and map its labels into the model's organ vocabulary.

    Args:
        path: a multi-label NIfTI (TotalSegmentator ``--ml``) or a folder of per-organ binary
            NIfTI files named ``<organ>.nii.gz`` (TotalSegmentator's default output).
        label_scheme: ``totalseg_v1``, ``totalseg_v2`` or a JSON class-map path.
        organ_vocab: the model's organ vocabulary (see ``organ_vocabulary``).

    Returns:
        MetaTensor: X x Y x Z int64 in vocabulary indices (0 = background).
    """
    vocab = organ_vocabulary(organ_vocab)
    if osp.isdir(path):
        return _read_organ_folder(path, label_scheme, vocab, case_id)
    mask = read_volume(path, case_id, what='organ_mask')
    labels = np.asarray(mask).astype(np.int64)
    if not np.allclose(labels, np.asarray(mask)):
        raise DataError(f'{_case(case_id)}organ_mask {path} holds non-integer values; a label map '
                        'of integer class indices is required. Fix: save the mask with an '
                        'integer data type (TotalSegmentator --ml output).')
    lut, known = scheme_to_vocab_lut(label_scheme, vocab)
    present = np.unique(labels)
    unknown = [int(v) for v in present if int(v) not in known]
    if unknown:
        raise DataError(f'{_case(case_id)}organ_mask {path} has labels {unknown[:10]} that the '
                        f'label_scheme {label_scheme!r} does not define (max {max(known)}). Fix: '
                        'set the right label_scheme in the manifest (totalseg_v1 has 104 classes, '
                        'totalseg_v2 117) or give a JSON class map.')
    return mask.new_tensor(lut[labels])  # keeps the affine


def _read_organ_folder(path, label_scheme, vocab, case_id):
    index = {name: i + 1 for i, name in enumerate(vocab)}
    scheme_names = set(scheme_classes(label_scheme).values())
    files = sorted(f for f in os.listdir(path) if f.endswith(NIFTI_SUFFIXES))
    if not files:
        raise _empty_organ_folder(path, case_id)
    label_map = None
    for fname in files:
        organ = fname[:-7] if fname.endswith('.nii.gz') else fname[:-4]
        if organ not in scheme_names:
            raise DataError(f'{_case(case_id)}organ_mask folder {path}: {fname} is not an organ '
                            f'of label_scheme {label_scheme!r}. Fix: rename it or set the right '
                            'label_scheme.')
        organ = organ if organ in index else V2_TO_V1_EXCEPTIONS.get(organ, organ)
        binary = read_volume(osp.join(path, fname), case_id, what='organ_mask')
        if label_map is None:
            label_map = binary.new_zeros(binary.shape).long()
        elif tuple(binary.shape) != tuple(label_map.shape):
            raise DataError(f'{_case(case_id)}organ_mask folder {path}: {fname} has shape '
                            f'{tuple(binary.shape)}, others {tuple(label_map.shape)}. Fix: every '
                            'organ file must be on the CT voxel grid (rerun TotalSegmentator).')
        if organ in index:
            label_map[binary > 0] = index[organ]
    return label_map


def check_alignment(image, mask, case_id=None, what='organ_mask', atol_mm=0.5, path=None):
    """Raise DataError unless image and mask share shape and voxel-to-world affine.

    ``path`` (the mask's file) is named in the message when given.
    """
    _check_grid((tuple(image.shape), np.asarray(image.affine)),
                (tuple(mask.shape), np.asarray(mask.affine)), case_id, what, path, atol_mm)


def _check_grid(image, mask, case_id, what, path=None, atol_mm=0.5):
    (image_shape, a), (mask_shape, b) = image, mask
    name = f'{what} {path}' if path else what
    if tuple(image_shape) != tuple(mask_shape):
        raise DataError(f'{_case(case_id)}{name} has shape {tuple(mask_shape)}, which does not '
                        f'match the image shape {tuple(image_shape)}. Fix: the mask must be made '
                        'from this CT (e.g. rerun TotalSegmentator on it).')
    if not np.allclose(a, b, atol=atol_mm):
        raise DataError(f'{_case(case_id)}{name}: its affine does not match the image affine '
                        f'(largest difference {np.abs(a - b).max():.2f} mm). Fix: the mask must '
                        'be in the CT voxel grid; resample it onto the CT (or rerun '
                        'TotalSegmentator on it).')


def _to_ras(volume):
    """X x Y x Z MetaTensor -> the same volume with RAS voxel axes (affine updated)."""
    from monai.transforms import Orientation
    return Orientation(axcodes='RAS', labels=RAS_LABELS)(volume[None])[0]


@TRANSFORMS.register_module()
class LoadCTStudy:
    """Load a study's CT, organ label map (and tumor mask) as channel-first MetaTensors.

    Reads ``img_path``, ``mask_path``, ``label_scheme`` (and ``tumor_path``) of a data info;
    writes ``image`` (1 x X x Y x Z float32 HU), ``organ_label`` (1 x X x Y x Z, vocabulary
    indices) and ``tumor_mask``, all reoriented to RAS. Checks that shapes and affines agree,
    that HU are finite and that the mask holds at least one organ of the vocabulary.

    Args:
        organ_vocab: the model's organ vocabulary.
    """

    def __init__(self, organ_vocab='totalseg_v1'):
        self.organ_vocab = organ_vocab

    def __call__(self, results):
        case_id = results.get('case_id')
        image = read_volume(results['img_path'], case_id, what='image').float()
        if not bool(np.isfinite(np.asarray(image)).all()):
            raise DataError(f'{_case(case_id)}image {results["img_path"]} contains NaN or '
                            'infinite voxels. Fix: re-export the CT; ctglip does not guess values.')
        mask = read_organ_mask(results['mask_path'], results['label_scheme'], self.organ_vocab,
                               case_id)
        # Readers may order voxels differently (a DICOM series vs. its NIfTI mask): compare
        # the two in one canonical (RAS) orientation.
        image, mask = _to_ras(image), _to_ras(mask)
        check_alignment(image, mask, case_id, path=results['mask_path'])
        check_mask_not_empty(mask, results['mask_path'], results['label_scheme'], case_id)
        results['image'] = image[None]
        results['organ_label'] = mask[None]
        if results.get('tumor_path'):
            tumor = _to_ras(read_volume(results['tumor_path'], case_id, what='tumor_mask'))
            check_alignment(image, tumor, case_id, what='tumor_mask', path=results['tumor_path'])
            results['tumor_mask'] = (tumor > 0).long()[None]
        return results

    def __repr__(self):
        return f'{type(self).__name__}(organ_vocab={self.organ_vocab!r})'
