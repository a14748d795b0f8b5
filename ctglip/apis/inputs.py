"""What to run on: one scan, a folder of scans or a manifest, each with its organ mask.

INPUT forms (``resolve_cases``):

- a NIfTI file (``.nii``, ``.nii.gz``) or a folder holding one DICOM series: one case, its
  mask is ``masks`` (a multi-label NIfTI or a folder of per-organ NIfTI files);
- a folder of cases: every NIfTI file and every DICOM series folder directly inside it is a
  case named after it; ``masks`` is then a folder where the mask of case ``X`` is ``X.nii.gz``,
  ``X.nii`` or a per-organ folder ``X/``;
- a manifest (``manifest.jsonl``, or a folder holding one): fields ``case_id``, ``image`` and
  ``organ_mask`` (relative to the manifest's folder) and optionally ``label_scheme``;
  ``split`` selects lines.

A case without a mask gets one from TotalSegmentator when it is installed
(``make_organ_mask``); otherwise the error gives the command that makes it.
"""
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

from ctglip.utils.errors import DataError

NIFTI_SUFFIXES = ('.nii.gz', '.nii')
MANIFEST = 'manifest.jsonl'


@dataclass
class Case:
    """One scan to run on.

    Attributes:
        case_id: its name (output folder ``<out>/<safe case_id>``).
        image: NIfTI file or DICOM series folder.
        mask: organ mask (multi-label NIfTI or per-organ folder), or None.
        label_scheme: ``auto``, a built-in scheme or a JSON class map path.
        error: set when the case is known to be unusable before it is read (a bad manifest
            line); it is then reported and skipped.
    """
    case_id: str
    image: Optional[str]
    mask: Optional[str] = None
    label_scheme: str = 'auto'
    error: Optional[str] = None
    notes: list = field(default_factory=list)

    @property
    def folder_name(self):
        return safe_name(self.case_id)


def safe_name(case_id):
    """A case id as a file name: characters other than letters, digits, ``.-_`` become ``_``."""
    name = re.sub(r'[^A-Za-z0-9._-]', '_', str(case_id)).strip('.')
    return name or 'case'


def strip_nifti(name):
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def is_nifti(path):
    return osp.isfile(path) and path.endswith(NIFTI_SUFFIXES)


def is_dicom_folder(path):
    """A folder whose first (non-hidden) file is DICOM (``DICM`` at byte 128)."""
    if not osp.isdir(path):
        return False
    for name in sorted(os.listdir(path)):
        full = osp.join(path, name)
        if name.startswith('.') or not osp.isfile(full):
            continue
        with open(full, 'rb') as f:
            head = f.read(132)
        return head[128:132] == b'DICM'
    return False


def resolve_cases(inputs, masks=None, label_scheme='auto', split=None):
    """Turn INPUT (and ``masks``) into a list of ``Case`` (see the module docstring).

    Args:
        inputs: a path, or a list of paths (each a scan, a folder of cases or a manifest).
        masks: the mask of a single scan, a folder of masks for a folder of cases, or a list
            parallel to ``inputs``.
        label_scheme: scheme of the masks (``auto`` detects it); a manifest line's own
            ``label_scheme`` wins.
        split: with a manifest, only lines of this split.

    Returns:
        list[Case]: in input order; cases with duplicate ids carry an ``error``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(p) for p in inputs]
    if masks is None or isinstance(masks, (str, os.PathLike)):
        masks = [masks] * len(inputs) if len(inputs) == 1 or masks is None else None
        if masks is None:
            raise DataError('several inputs with one mask path: give one mask per input (a '
                            'list) or a folder of masks with a folder of cases.')
    masks = [None if m is None else os.fspath(m) for m in masks]
    if len(masks) != len(inputs):
        raise DataError(f'{len(inputs)} inputs but {len(masks)} masks; give one mask per input.')
    cases = []
    for path, mask in zip(inputs, masks):
        cases.extend(_cases_of(path, mask, label_scheme, split))
    seen = set()
    for case in cases:
        key = case.folder_name
        if key in seen and case.error is None:
            case.error = (f'case {case.case_id!r} occurs twice (output folder {key}). Fix: give '
                          'each case its own id.')
        seen.add(key)
    return cases


def _cases_of(path, mask, label_scheme, split):
    if not osp.exists(path):
        raise DataError(f'input {path} does not exist. Fix: give a NIfTI file, a DICOM series '
                        'folder, a folder of cases or a manifest.jsonl.')
    if path.endswith('.jsonl') or (osp.isdir(path) and osp.isfile(osp.join(path, MANIFEST))):
        if mask is not None:
            raise DataError(f'--mask with a manifest ({path}): the manifest names each mask in '
                            '"organ_mask". Fix: leave out --mask.')
        manifest = path if path.endswith('.jsonl') else osp.join(path, MANIFEST)
        return read_manifest(manifest, label_scheme, split)
    if is_nifti(path) or is_dicom_folder(path):
        if mask is not None and not osp.exists(mask):
            raise DataError(f'mask {mask} does not exist. Fix: give the organ mask of {path} '
                            '(TotalSegmentator output), or leave out --mask.')
        name = strip_nifti(osp.basename(osp.normpath(path)))
        return [Case(name, path, mask, label_scheme)]
    if osp.isfile(path):
        raise DataError(f'input {path} is neither a NIfTI file (.nii, .nii.gz), a DICOM series '
                        'folder, a folder of cases nor a manifest (.jsonl). Fix: convert it, e.g. '
                        'with dcm2niix.')
    return _folder_cases(path, mask, label_scheme)


def _folder_cases(folder, masks, label_scheme):
    if masks is not None and not osp.isdir(masks):
        raise DataError(f'input {folder} is a folder of cases, so --mask must be a folder of '
                        f'masks (X.nii.gz for case X), not {masks}.')
    cases, skipped = [], []
    for name in sorted(os.listdir(folder)):
        full = osp.join(folder, name)
        if name.startswith('.'):
            continue
        if is_nifti(full) or is_dicom_folder(full):
            case_id = strip_nifti(name)
            cases.append(Case(case_id, full, _mask_in(masks, case_id), label_scheme))
        elif masks is None or osp.abspath(full) != osp.abspath(masks):
            skipped.append(name)
    if not cases:
        raise DataError(f'input folder {folder} holds no NIfTI file and no DICOM series folder. '
                        'Fix: give a scan, a folder of scans (one NIfTI file or DICOM folder '
                        'per case) or a manifest.jsonl.')
    if skipped:
        cases[0].notes.append(f'{folder}: not cases (neither NIfTI nor DICOM series): '
                              f'{", ".join(skipped[:5])}{" ..." if len(skipped) > 5 else ""}')
    return cases


def _mask_in(folder, case_id):
    if folder is None:
        return None
    for name in (f'{case_id}.nii.gz', f'{case_id}.nii', case_id):
        if osp.exists(osp.join(folder, name)):
            return osp.join(folder, name)
    return None


def read_manifest(manifest, label_scheme='auto', split=None):
    """Cases of a manifest; a bad line becomes a case with an ``error`` (reported, skipped)."""
    from ctglip.datasets.ct_report_dataset import CTReportDataset
    root = osp.dirname(osp.abspath(manifest))
    cases = []
    with open(manifest, 'rb') as f:
        for line_no, raw in enumerate(f, 1):
            try:
                row = CTReportDataset._read_line(raw, manifest, line_no)
            except DataError as e:
                cases.append(Case(f'line_{line_no}', None, error=str(e)))
                continue
            if row is None or (split is not None and row.get('split') != split):
                continue
            case_id = str(row.get('case_id') or f'line_{line_no}')
            if not row.get('image'):
                cases.append(Case(case_id, None, error=f'{manifest} line {line_no}: no "image" '
                                  'field. Fix: give the CT path (relative to the manifest).'))
                continue
            scheme = row.get('label_scheme') or label_scheme
            if isinstance(scheme, str) and scheme.endswith('.json') and not osp.isabs(scheme):
                scheme = osp.join(root, scheme)
            case = Case(case_id, _join(root, row['image']), _join(root, row.get('organ_mask')),
                        scheme)
            for what, path in (('image', case.image), ('organ_mask', case.mask)):
                if path and not osp.exists(path):
                    case.error = (f'{manifest} line {line_no} (case {case_id!r}): {what} file '
                                  f'{path} does not exist. Fix: correct "{what}"; paths are '
                                  'relative to the manifest folder.')
            cases.append(case)
    if not cases:
        raise DataError(f'{manifest} has no cases{f" of split {split!r}" if split else ""}. Fix: '
                        'check the file (one JSON object per line) and --split.')
    return cases


def _join(root, path):
    if not path:
        return None
    return path if osp.isabs(path) else osp.join(root, path)


# -- making masks -------------------------------------------------------------------------------
def totalsegmentator_command():
    """The command that runs TotalSegmentator here, or None when it is not installed."""
    exe = shutil.which('TotalSegmentator')
    if exe:
        return [exe]
    if importlib.util.find_spec('totalsegmentator') is not None:
        return [sys.executable, '-m', 'totalsegmentator.bin.TotalSegmentator']
    return None


def mask_command_hint(image, mask_path):
    """The shell commands that make a mask for ``image`` (for error messages and docs)."""
    return (f'pip install TotalSegmentator && TotalSegmentator -i {image} -o {mask_path} --ml, '
            f'then pass --mask {mask_path}')


def totalsegmentator_scheme():
    """``totalseg_v2`` for TotalSegmentator 2.x, ``totalseg_v1`` for 1.x, else ``auto``."""
    from importlib import metadata
    try:
        major = int(metadata.version('TotalSegmentator').split('.')[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 'auto'
    return 'totalseg_v1' if major < 2 else 'totalseg_v2'


def make_organ_mask(case, out_path, log=print):
    """Run TotalSegmentator (``--ml``: one multi-label NIfTI) for a case without a mask.

    Returns:
        tuple: ``(mask_path, label_scheme)``.

    Raises:
        DataError: TotalSegmentator is not installed (the message holds the command that makes
            the mask) or failed.
    """
    command = totalsegmentator_command()
    if command is None:
        hint = mask_command_hint(case.image, f'{case.folder_name}_organs.nii.gz')
        raise DataError(f'case {case.case_id!r}: no organ mask and TotalSegmentator is not '
                        f'installed. Make the mask with: {hint}')
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    full = command + ['-i', case.image, '-o', out_path, '--ml']
    log(f'case {case.case_id!r}: no --mask: running TotalSegmentator ({" ".join(full)})')
    proc = subprocess.run(full, capture_output=True, text=True)
    if proc.returncode != 0 or not osp.isfile(out_path):
        last = (proc.stderr or proc.stdout or '').strip().splitlines()[-1:] or ['no output']
        raise DataError(f'case {case.case_id!r}: TotalSegmentator failed (exit code '
                        f'{proc.returncode}: {last[0][:200]}). Fix: run it by hand: '
                        f'{" ".join(full)}')
    scheme = totalsegmentator_scheme() if case.label_scheme == 'auto' else case.label_scheme
    return out_path, scheme
