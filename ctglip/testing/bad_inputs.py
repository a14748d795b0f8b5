"""A corpus of bad inputs: small manifest datasets with exactly one study broken in one way.

Every command-line tool that reads scans must turn each kind into a clear one-line error (or,
where it offers ``--skip-invalid``/``skip_invalid``, a counted skip), never a traceback from
deep inside and never a partial output file. ``tests/test_bad_input_corpus.py`` pushes the
corpus through the dataset loader, ``tools/train.py`` and ``tools/structure_reports.py``; add
a new tool that reads scans to that test::

    from ctglip.testing import BAD_INPUT_KINDS, make_bad_dataset
    for kind, spec in BAD_INPUT_KINDS.items():
        root = make_bad_dataset(kind, f'/tmp/bad/{kind}')
        ...  # run the tool on root; expect an error containing spec.message

The broken study is always ``BROKEN_CASE`` (a ``train`` study on manifest line 1), except for
the kinds whose fault is between two lines (``duplicate_case_id``, ``patient_in_two_splits``).
"""
import json
import os
import os.path as osp
import shutil
from collections import namedtuple

import numpy as np

BROKEN_CASE = 'tiny_000'
NUM_CASES = 8

BadInputKind = namedtuple('BadInputKind', 'description message level file')
BadInputKind.__doc__ = """One kind of bad input.

Fields:
    description: one line saying what is broken.
    message: a fragment of the one-line error message.
    level: where a loader can find it, which decides what ``skip_invalid`` does with it:
        ``manifest`` (the manifest line itself: skipped and counted when the dataset is built),
        ``header`` (file headers: skipped and counted when the dataset is built),
        ``voxels`` (only when the voxels are read: skipped and counted while training, an
        error in validation and test) or ``dataset`` (between lines: always an error).
    file: the file (relative to the dataset folder) that the error message names.
"""
MANIFEST = 'manifest.jsonl'
IMAGE = f'images/{BROKEN_CASE}.nii.gz'
MASK = f'masks/{BROKEN_CASE}.nii.gz'
DICOM = f'dicom/{BROKEN_CASE}'
_K = BadInputKind

BAD_INPUT_KINDS = {
    # -- NIfTI files and their voxels ---------------------------------------------------------
    'truncated_nifti': _K('the CT .nii.gz is cut off half way (an interrupted copy)',
                          'cannot read image', 'voxels', IMAGE),
    'not_nifti': _K('the CT file is named .nii.gz but holds other bytes (an HTML error page)',
                    'not a NIfTI file', 'header', IMAGE),
    'image_2d': _K('the CT is a 2D image (X x Y)', 'a 3D volume is required', 'header', IMAGE),
    'image_single_slice': _K('the CT is one slice stored as X x Y x 1', 'a 2D slice', 'header',
                             IMAGE),
    'image_4d': _K('the CT is 4D with two volumes (X x Y x Z x 2)', 'holds 2 volumes', 'header',
                   IMAGE),
    'nan_voxels': _K('the CT holds a NaN voxel', 'NaN', 'voxels', IMAGE),
    'missing_image_file': _K('the manifest names a CT file that does not exist',
                             'does not exist', 'manifest', IMAGE),
    'mask_shape_mismatch': _K('the organ mask has another shape than the CT',
                              'does not match the image shape', 'header', MASK),
    'mask_affine_mismatch': _K('the organ mask has the CT shape but is shifted by 40 mm',
                               'affine does not match', 'header', MASK),
    'mask_unknown_labels': _K('the organ mask holds label 200, outside the totalseg_v1 scheme',
                              'does not define', 'voxels', MASK),
    'mask_empty': _K('the organ mask is all background (nothing to ground)', 'no organ',
                     'voxels', MASK),
    # -- manifest lines -----------------------------------------------------------------------
    'empty_report': _K('a study with an empty report and no findings', 'empty report',
                       'manifest', MANIFEST),
    'non_utf8_report': _K('a manifest line whose report holds bytes that are not UTF-8',
                          'not UTF-8', 'manifest', MANIFEST),
    'missing_field': _K('a manifest line without "organ_mask"', 'missing field', 'manifest',
                        MANIFEST),
    'invalid_json_line': _K('a manifest line that is not JSON (cut off)', 'not valid JSON',
                            'manifest', MANIFEST),
    'duplicate_case_id': _K('two manifest lines with one case_id', 'occurs twice', 'dataset',
                            MANIFEST),
    'patient_in_two_splits': _K('one patient in both train and val', 'is in both', 'dataset',
                                MANIFEST),
    # -- DICOM series folders -----------------------------------------------------------------
    'dicom_unreadable_slice': _K('a DICOM series with one slice file cut off',
                                 'is not a readable DICOM', 'header', DICOM),
    'dicom_mixed_series': _K('a DICOM folder holding a slice of another series',
                             'mixes 2 DICOM series', 'header', DICOM),
    'dicom_empty_folder': _K('the CT is an empty folder', 'is empty', 'header', DICOM),
}

BadReportKind = namedtuple('BadReportKind', 'description message')
#: Kinds of bad ``tools/structure_reports.py`` input (lines ``{"case_id", "report"}``); the
#: broken line is always line 2 of 4.
BAD_REPORT_KINDS = {
    'empty_report': BadReportKind('a line whose "report" is empty', '"report" is empty'),
    'non_utf8_report': BadReportKind('a line whose report holds bytes that are not UTF-8',
                                     'not valid UTF-8'),
    'missing_field': BadReportKind('a line without "report"', 'missing field "report"'),
    'duplicate_case_id': BadReportKind('two lines with one case_id', 'duplicate case_id'),
}


def make_bad_dataset(kind, root, base=None):
    """Write a valid tiny manifest dataset to ``root`` and break one study as ``kind`` says.

    Args:
        kind: a key of ``BAD_INPUT_KINDS``.
        root: the folder to write (created; must not hold a dataset yet).
        base: a valid dataset made by ``make_tiny_dataset(..., num_cases=8)`` to copy instead
            of generating one (faster when building many kinds).

    Returns:
        str: ``root``.
    """
    if kind not in BAD_INPUT_KINDS:
        raise KeyError(f'unknown bad-input kind {kind!r}; known: {", ".join(BAD_INPUT_KINDS)}')
    if base is not None:
        shutil.copytree(base, root, ignore=shutil.ignore_patterns('.cache'))
    else:
        from .data import make_tiny_dataset
        make_tiny_dataset(root, num_cases=NUM_CASES)
    _BREAK[kind](root)
    return root


def make_bad_reports_jsonl(kind, path):
    """Write ``tools/structure_reports.py`` input (4 lines) with line 2 broken as ``kind`` says.

    Args:
        kind: a key of ``BAD_REPORT_KINDS``.
        path: the ``.jsonl`` file to write.

    Returns:
        str: ``path``.
    """
    from .data import NORMAL
    if kind not in BAD_REPORT_KINDS:
        raise KeyError(f'unknown bad-report kind {kind!r}; known: {", ".join(BAD_REPORT_KINDS)}')
    report = 'FINDINGS: ' + ' '.join(NORMAL.values())
    lines = [json.dumps(dict(case_id=f'r{i}', report=report)).encode() for i in range(4)]
    if kind == 'empty_report':
        lines[1] = json.dumps(dict(case_id='r1', report='  ')).encode()
    elif kind == 'non_utf8_report':
        lines[1] = b'{"case_id": "r1", "report": "FINDINGS: liver \xe9\xff normal."}'
    elif kind == 'missing_field':
        lines[1] = json.dumps(dict(case_id='r1', text=report)).encode()
    elif kind == 'duplicate_case_id':
        lines[1] = json.dumps(dict(case_id='r0', report=report)).encode()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'\n'.join(lines) + b'\n')
    return path


# -- helpers ----------------------------------------------------------------------------------
def _manifest(root):
    return osp.join(root, 'manifest.jsonl')


def _rows(root):
    with open(_manifest(root), 'rb') as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_rows(root, rows):
    """Rows are dicts (written as JSON) or bytes (written as they are)."""
    with open(_manifest(root), 'wb') as f:
        for row in rows:
            f.write((row if isinstance(row, bytes) else json.dumps(row).encode()) + b'\n')


def _edit_row(root, case_id, **fields):
    rows = _rows(root)
    for row in rows:
        if row['case_id'] == case_id:
            row.update(fields)
            for key in [k for k, v in fields.items() if v is _DROP]:
                del row[key]
    _write_rows(root, rows)


_DROP = object()


def _image(root):
    return osp.join(root, 'images', f'{BROKEN_CASE}.nii.gz')


def _mask(root):
    return osp.join(root, 'masks', f'{BROKEN_CASE}.nii.gz')


def _load(path):
    import nibabel as nib
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def _save(path, data, affine):
    import nibabel as nib
    nib.save(nib.Nifti1Image(data, affine), path)


# -- the kinds ----------------------------------------------------------------------------------
def _truncated_nifti(root):
    path = _image(root)
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


def _not_nifti(root):
    with open(_image(root), 'wb') as f:
        f.write(b'<html><body>502 Bad Gateway</body></html>\n')


def _image_2d(root):
    data, affine = _load(_image(root))
    _save(_image(root), data[:, :, data.shape[2] // 2], affine)


def _image_single_slice(root):
    data, affine = _load(_image(root))
    _save(_image(root), data[:, :, data.shape[2] // 2:data.shape[2] // 2 + 1], affine)


def _image_4d(root):
    data, affine = _load(_image(root))
    _save(_image(root), np.stack([data, data], -1), affine)


def _nan_voxels(root):
    data, affine = _load(_image(root))
    data = data.astype(np.float32)
    data[1, 2, 3] = np.nan
    _save(_image(root), data, affine)


def _missing_image_file(root):
    os.remove(_image(root))


def _mask_shape_mismatch(root):
    data, affine = _load(_mask(root))
    _save(_mask(root), np.ascontiguousarray(data[::2, ::2, ::2]), affine)


def _mask_affine_mismatch(root):
    data, affine = _load(_mask(root))
    affine = affine.copy()
    affine[:3, 3] += 40.0
    _save(_mask(root), data, affine)


def _mask_unknown_labels(root):
    data, affine = _load(_mask(root))
    data = data.copy()
    data[0, 0, 0] = 200
    _save(_mask(root), data, affine)


def _mask_empty(root):
    data, affine = _load(_mask(root))
    _save(_mask(root), np.zeros_like(data), affine)


def _empty_report(root):
    _edit_row(root, BROKEN_CASE, report='', findings=_DROP)


def _non_utf8_report(root):
    rows = _rows(root)
    rows[0] = json.dumps(dict(rows[0], report='FINDINGS: liver @@ normal.')).encode().replace(
        b'@@', b'\xe9\xff')
    _write_rows(root, rows)


def _missing_field(root):
    _edit_row(root, BROKEN_CASE, organ_mask=_DROP)


def _invalid_json_line(root):
    rows = _rows(root)
    rows[0] = json.dumps(rows[0]).encode()[:60]
    _write_rows(root, rows)


def _duplicate_case_id(root):
    rows = _rows(root)
    rows[1]['case_id'] = rows[0]['case_id']
    _write_rows(root, rows)


def _patient_in_two_splits(root):
    rows = _rows(root)
    other = next(r for r in rows if r['split'] != rows[0]['split'])
    other['patient_id'] = rows[0]['patient_id']
    _write_rows(root, rows)


def write_dicom_series(volume, affine, folder, series_uid=None, study_uid=None):
    """Write a 3D int16 volume (NIfTI voxel order and RAS affine) as a DICOM CT series.

    One file per slice along the third axis; the geometry (LPS position, orientation, spacing)
    is the NIfTI affine's, so a mask saved with ``affine`` lies on the series' voxel grid.

    Returns:
        list: the written file paths.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    os.makedirs(folder, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    lps = np.diag([-1.0, -1.0, 1.0])
    axes = lps @ affine[:3, :3]  # world (LPS) step of each voxel axis
    spacing = np.linalg.norm(axes, axis=0)
    row_dir, col_dir = axes[:, 0] / spacing[0], axes[:, 1] / spacing[1]
    paths = []
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = osp.join(folder, f'slice_{k:04d}.dcm')
        ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality, ds.PatientID, ds.PatientName = 'CT', 'corpus', 'corpus'
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        position = lps @ (affine[:3, :3] @ np.array([0.0, 0.0, k]) + affine[:3, 3])
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row_dir, col_dir])]
        # PixelSpacing is (between rows, between columns) = (col_dir step, row_dir step)
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].T.astype('<i2')).tobytes()
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def _as_dicom_study(root):
    """Replace the broken case's NIfTI CT by the same CT as a DICOM series folder."""
    data, affine = _load(_image(root))
    folder = osp.join(root, 'dicom', BROKEN_CASE)
    paths = write_dicom_series(data, affine, folder)
    os.remove(_image(root))
    _edit_row(root, BROKEN_CASE, image=f'dicom/{BROKEN_CASE}')
    return folder, paths


def _dicom_unreadable_slice(root):
    _, paths = _as_dicom_study(root)
    path = paths[len(paths) // 2]
    with open(path, 'r+b') as f:
        f.truncate(osp.getsize(path) // 2)


def _dicom_mixed_series(root):
    import pydicom
    from pydicom.uid import generate_uid
    folder, paths = _as_dicom_study(root)
    ds = pydicom.dcmread(paths[-1])
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesNumber = 2
    pydicom.dcmwrite(osp.join(folder, 'other_series.dcm'), ds, enforce_file_format=True)


def _dicom_empty_folder(root):
    folder, paths = _as_dicom_study(root)
    for path in paths:
        os.remove(path)


def _dicom_valid(root):
    """Not a bad kind: the broken case as a valid DICOM series (a control for the DICOM kinds)."""
    _as_dicom_study(root)


_BREAK = {kind: globals()[f'_{kind}'] for kind in BAD_INPUT_KINDS}


def make_dicom_control_dataset(root, base=None):
    """The tiny dataset with ``BROKEN_CASE`` as a valid DICOM series: the DICOM kinds' control.

    Returns:
        str: ``root``.
    """
    if base is not None:
        shutil.copytree(base, root, ignore=shutil.ignore_patterns('.cache'))
    else:
        from .data import make_tiny_dataset
        make_tiny_dataset(root, num_cases=NUM_CASES)
    _dicom_valid(root)
    return root


# -- tumor fine-tuning ----------------------------------------------------------------------------
TUMOR_MASK = f'tumor_masks/{BROKEN_CASE}.nii.gz'
#: Kinds that only a fine-tune split refuses: a dataset of tumor fine-tuning
#: (``TumorManifestDataset``) needs a tumor mask for every study, on the CT grid, holding only
#: the values of its label map. They break ``BROKEN_CASE`` of the tiny tumor dataset
#: (``ctglip.testing.tumor_data.make_tiny_tumor_dataset`` with a mask for every study);
#: ``tests/test_bad_input_corpus.py`` pushes them through the dataset and ``tools/train.py``
#: with ``configs/tests/tiny_finetune_scratch.py``. (Pretraining reads a tumor mask only where
#: the manifest names one, so these are no faults there.)
BAD_TUMOR_KINDS = {
    'tumor_mask_missing': _K('a study of a fine-tune split without "tumor_mask"',
                             'no "tumor_mask"', 'manifest', MANIFEST),
    'tumor_mask_shape_mismatch': _K('the tumor mask has another shape than the CT',
                                    'does not match the image shape', 'header', TUMOR_MASK),
    'tumor_mask_unknown_labels': _K('the tumor mask holds value 7, outside its label map '
                                    '(0 background, 1 tumor)', 'outside its label map',
                                    'voxels', TUMOR_MASK),
}


def make_bad_tumor_dataset(kind, root, base=None):
    """Write the tiny tumor dataset (a tumor mask for every study) to ``root`` and break
    ``BROKEN_CASE`` as ``kind`` says.

    Args:
        kind: a key of ``BAD_TUMOR_KINDS``.
        root: the folder to write (created; must not hold a dataset yet).
        base: a valid dataset made by ``make_tiny_tumor_dataset(...,
            masks_for_tumor_free=True)`` to copy instead of generating one.

    Returns:
        str: ``root``.
    """
    if kind not in BAD_TUMOR_KINDS:
        raise KeyError(f'unknown bad tumor kind {kind!r}; known: {", ".join(BAD_TUMOR_KINDS)}')
    if base is not None:
        shutil.copytree(base, root, ignore=shutil.ignore_patterns('.cache'))
    else:
        from .tumor_data import make_tiny_tumor_dataset
        make_tiny_tumor_dataset(root, num_cases=NUM_CASES, masks_for_tumor_free=True)
    path = osp.join(root, TUMOR_MASK)
    if kind == 'tumor_mask_missing':
        _edit_row(root, BROKEN_CASE, tumor_mask=_DROP)
        os.remove(path)
    elif kind == 'tumor_mask_shape_mismatch':
        data, affine = _load(path)
        _save(path, np.ascontiguousarray(data[::2, ::2, ::2]), affine)
    else:
        data, affine = _load(path)
        data = data.copy()
        data[0, 0, 0] = 7
        _save(path, data, affine)
    return root
