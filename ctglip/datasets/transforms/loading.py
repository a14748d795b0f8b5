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


def _load_with_monai(path, reader, case_id, what):
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return _loader(reader)(path)
    except Exception as e:  # noqa: BLE001  any reader failure is a data problem here
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f'{_case(case_id)}cannot read {what} {path}: {msg[:300]}. '
                        'Fix: check the file is a complete NIfTI file (or a folder holding one '
                        'DICOM series) and re-export it.') from None


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
        raise DataError(f'{_case(case_id)}{what} file {path} does not exist. Fix: correct the '
                        f'{what!r} path in the manifest (relative to the dataset folder).')
    if osp.isdir(path):
        files = [f for f in os.listdir(path) if not f.startswith('.')]
        if not files:
            raise DataError(f'{_case(case_id)}{what} folder {path} is empty; it must hold one '
                            'DICOM series.')
        _check_single_dicom_series(path, files, case_id, what)
        volume = _load_with_monai(path, 'PydicomReader', case_id, what)
    elif path.endswith(NIFTI_SUFFIXES):
        volume = _load_with_monai(path, 'NibabelReader', case_id, what)
    else:
        raise DataError(f'{_case(case_id)}{what} {path} is neither a NIfTI file (.nii, .nii.gz) '
                        'nor a DICOM series folder. Fix: convert it, e.g. with dcm2niix.')
    if volume.ndim == 4 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise DataError(f'{_case(case_id)}{what} {path} has shape {tuple(volume.shape)}; a 3D '
                        'volume is required. Fix: export a single 3D series.')
    if min(volume.shape) < 2:
        raise DataError(f'{_case(case_id)}{what} {path} has shape {tuple(volume.shape)}: a 2D '
                        'slice, not a volume.')
    return volume


def _check_single_dicom_series(path, files, case_id, what):
    """Refuse folders that mix DICOM series or hold unreadable slices (pydicom, headers only)."""
    import pydicom
    series = set()
    for name in files:
        fpath = osp.join(path, name)
        try:
            ds = pydicom.dcmread(fpath, stop_before_pixels=True)
        except Exception:  # noqa: BLE001
            raise DataError(f'{_case(case_id)}{what} folder {path}: {name} is not a readable '
                            'DICOM file. Fix: remove it or re-export the series.') from None
        series.add(getattr(ds, 'SeriesInstanceUID', None))
    if len(series) > 1:
        raise DataError(f'{_case(case_id)}{what} folder {path} mixes {len(series)} DICOM series; '
                        'put each series in its own folder and point the manifest at one.')


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
                        'of integer class indices is required.')
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
        raise DataError(f'{_case(case_id)}organ_mask folder {path} holds no NIfTI files; '
                        'expected one binary <organ>.nii.gz per organ.')
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
                            f'{tuple(binary.shape)}, others {tuple(label_map.shape)}.')
        if organ in index:
            label_map[binary > 0] = index[organ]
    return label_map


def check_alignment(image, mask, case_id=None, what='organ_mask', atol_mm=0.5):
    """Raise DataError unless image and mask share shape and voxel-to-world affine."""
    if tuple(image.shape) != tuple(mask.shape):
        raise DataError(f'{_case(case_id)}{what} shape {tuple(mask.shape)} does not match the '
                        f'image shape {tuple(image.shape)}. Fix: the mask must be made from this '
                        'CT (e.g. rerun TotalSegmentator on it).')
    a, b = np.asarray(image.affine), np.asarray(mask.affine)
    if not np.allclose(a, b, atol=atol_mm):
        raise DataError(f'{_case(case_id)}{what} affine does not match the image affine '
                        f'(largest difference {np.abs(a - b).max():.2f} mm). Fix: the mask must '
                        'be in the CT voxel grid; resample it onto the CT.')


def _to_ras(volume):
    """X x Y x Z MetaTensor -> the same volume with RAS voxel axes (affine updated)."""
    from monai.transforms import Orientation
    return Orientation(axcodes='RAS', labels=RAS_LABELS)(volume[None])[0]


@TRANSFORMS.register_module()
class LoadCTStudy:
    """Load a study's CT, organ label map (and tumor mask) as channel-first MetaTensors.

    Reads ``img_path``, ``mask_path``, ``label_scheme`` (and ``tumor_path``) of a data info;
    writes ``image`` (1 x X x Y x Z float32 HU), ``organ_label`` (1 x X x Y x Z, vocabulary
    indices) and ``tumor_mask``, all reoriented to RAS. Checks that shapes and affines agree
    and that HU are finite.

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
        check_alignment(image, mask, case_id)
        results['image'] = image[None]
        results['organ_label'] = mask[None]
        if results.get('tumor_path'):
            tumor = _to_ras(read_volume(results['tumor_path'], case_id, what='tumor_mask'))
            check_alignment(image, tumor, case_id, what='tumor_mask')
            results['tumor_mask'] = (tumor > 0).long()[None]
        return results

    def __repr__(self):
        return f'{type(self).__name__}(organ_vocab={self.organ_vocab!r})'
