"""What the dataset converters share: CT-RATE volume names and splits, CSV tables with checks
that name the row, organ masks, label tables, the manifest and the counts report.

Every check raises :class:`~ctglip.utils.errors.DataError` in one line that names the file, the
row (the line number of the CSV, counting the header as line 1) and the fix.
"""
import csv
import hashlib
import json
import math
import os
import os.path as osp
import re
from collections import Counter

import numpy as np

from ctglip.utils.errors import DataError

# CT-RATE volume names: <split>_<patient>_<scan letter(s)>_<reconstruction>.nii.gz
VOLUME_NAME = re.compile(r'^(?P<split>train|valid)_(?P<patient>\d+)_(?P<scan>[a-z]+)_'
                         r'(?P<recon>\d+)(?:\.nii(?:\.gz)?)?$')
# CT-RATE's own splits -> the manifest's: its train split gives train (and val, by patient),
# its validation split is the held-out set of CT-CLIP's and fVLM's zero-shot tables
CT_RATE_SPLITS = {'train': 'train', 'valid': 'test'}


def volume_stem(name):
    """``train_1_a_1.nii.gz`` -> ``train_1_a_1``."""
    for suffix in ('.nii.gz', '.nii'):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def parse_volume_name(name, where):
    """``(ct_rate_split, patient_id, study_id)`` of a CT-RATE volume name.

    ``train_12_b_2.nii.gz`` is reconstruction 2 of scan ``b`` of patient ``train_12``; the
    patient id keeps CT-RATE's split prefix (train and validation patients are different
    people with their own numbering).
    """
    m = VOLUME_NAME.match(name.strip())
    if not m:
        raise DataError(f'{where}: volume name {name!r} is not a CT-RATE name '
                        '<train|valid>_<patient>_<scan>_<reconstruction>.nii.gz (e.g. '
                        'train_1_a_1.nii.gz). Fix: correct the name.')
    split, patient = m.group('split'), f'{m.group("split")}_{m.group("patient")}'
    return split, patient, f'{patient}_{m.group("scan")}'


def read_csv(path, required, what):
    """Rows of a CSV file as ``(line number, {column: value})``, checking the header.

    Args:
        path (str): the file.
        required (Sequence[str]): columns that must be present.
        what (str): what the file is, for messages.

    Raises:
        DataError: the file is missing or lacks a column (named, with the columns it has).
    """
    if not osp.isfile(path):
        raise DataError(f'{what} {path} does not exist. Fix: give the right path.')
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f'{what} {path} has no column(s) {missing}; it has {header}. Fix: '
                            'give the file of the right layout (see docs/vocabularies.md).')
        rows = []
        for row in reader:
            # DictReader's line_num counts physical lines, so quoted newlines stay right
            rows.append((reader.line_num, row))
    return rows


def unique_by(rows, column, path, what):
    """``{value of column: (line, row)}``; a value given twice is an error naming both lines."""
    out = {}
    for line, row in rows:
        key = (row.get(column) or '').strip()
        if not key:
            raise DataError(f'{what} {path} line {line}: empty {column}. Fix: fill it in or '
                            'remove the row.')
        if key in out:
            raise DataError(f'{what} {path} line {line}: {column} {key!r} is also on line '
                            f'{out[key][0]}. Fix: keep one row per volume.')
        out[key] = (line, row)
    return out


def read_labels(paths, vocab):
    """CT-RATE's multi-abnormality label tables -> ``{volume: {abnormality, ...}}``.

    The label columns are the vocabulary's ``label_columns`` (CT-RATE's 18 column names).

    Raises:
        DataError: a missing column, a volume listed twice, or a value other than 0/1 (the
            message names the file, the line and the column).
    """
    if not vocab.label_columns:
        raise DataError(f'abnormality vocabulary {vocab.name!r} has no label_columns, so a '
                        'label table cannot be read with it. Fix: use the ct_rate vocabulary or '
                        'add label_columns to yours.')
    labels = {}
    for path in paths:
        rows = read_csv(path, ['VolumeName'] + list(vocab.label_columns), 'label table')
        for volume, (line, row) in unique_by(rows, 'VolumeName', path, 'label table').items():
            if volume in labels:
                raise DataError(f'label table {path} line {line}: VolumeName {volume!r} is also '
                                'in another label table. Fix: keep one row per volume.')
            found = set()
            for column, name in vocab.label_columns.items():
                value = (row[column] or '').strip()
                if value in ('1', '1.0', 'True', 'true'):
                    found.add(name)
                elif value not in ('0', '0.0', 'False', 'false'):
                    raise DataError(f'label table {path} line {line} ({volume}): column '
                                    f'{column!r} is {value!r}, not 0 or 1. Fix: correct the '
                                    'value.')
            labels[volume] = found
    return labels


def index_volumes(folders, suffixes=('.nii.gz', '.nii')):
    """``{file name: path}`` of the NIfTI files under ``folders`` (walked recursively).

    CT-RATE ships corrected copies of some volumes in ``*_fixed`` folders: a name found in a
    ``*_fixed`` folder and elsewhere takes the fixed copy; any other duplicate is an error.
    """
    found = {}
    for folder in folders:
        if not osp.isdir(folder):
            raise DataError(f'volume folder {folder} does not exist. Fix: point --volumes at '
                            "CT-RATE's dataset/train_fixed and dataset/valid_fixed (or train "
                            'and valid) folders.')
        for root, _, files in os.walk(folder):
            for name in files:
                if not name.endswith(suffixes):
                    continue
                path = osp.join(root, name)
                if name in found and found[name] != path:
                    fixed = [p for p in (found[name], path)
                             if any(part.endswith('_fixed') for part in p.split(os.sep))]
                    if len(fixed) != 1:
                        raise DataError(f'volume {name} is found twice: {found[name]} and '
                                        f'{path}. Fix: give only one copy of each volume.')
                    path = fixed[0]
                found[name] = path
    return found


def assign_splits(patients, val_fraction, seed=0):
    """``{patient: manifest split}``: CT-RATE valid -> ``test``; CT-RATE train -> ``train``,
    with a deterministic ``val_fraction`` of its patients (chosen by a hash of the id, at least
    one when there are two or more) moved to ``val``.

    Args:
        patients (Mapping[str, str]): ``{patient: CT-RATE split}``.
    """
    out = {p: CT_RATE_SPLITS[s] for p, s in patients.items()}
    train = sorted((p for p, s in out.items() if s == 'train'),
                   key=lambda p: hashlib.sha1(f'{seed}:{p}'.encode()).hexdigest())
    n_val = math.ceil(val_fraction * len(train)) if val_fraction > 0 and len(train) > 1 else 0
    for p in train[:min(n_val, len(train) - 1)]:
        out[p] = 'val'
    return out


def mask_organs(path, label_scheme):
    """The organs a TotalSegmentator mask holds (a multi-label file or a per-organ folder)."""
    import nibabel as nib

    from ctglip.vocabularies import scheme_classes
    classes = scheme_classes(label_scheme)
    if osp.isdir(path):
        names = set(classes.values())
        present = []
        for fname in sorted(os.listdir(path)):
            organ = volume_stem(fname)
            if organ in names and np.asarray(nib.load(osp.join(path, fname)).dataobj).any():
                present.append(organ)
        return present
    values = np.unique(np.asarray(nib.load(path).dataobj))
    return [classes[int(v)] for v in values if int(v) in classes]


def relative_to(path, root):
    """``path`` relative to ``root`` when it lies inside it, else absolute."""
    path, root = osp.abspath(path), osp.abspath(root)
    return osp.relpath(path, root) if osp.commonpath([path, root]) == root else path


def abnormal_organs(names, vocab, organs):
    """``{organ: [abnormality]}``: each study-level finding on the organs of its group among
    ``organs`` (in vocabulary order); a finding whose group has none of them is returned in the
    second value."""
    out, lost = {}, []
    for name in vocab.names:
        if name not in names:
            continue
        targets = [o for o in vocab.groups[vocab.group_of(name)] if o in organs]
        if not targets:
            lost.append(name)
        for organ in targets:
            out.setdefault(organ, []).append(name)
    return out, lost


class ConversionReport:
    """Counts of a conversion: studies, patients, organs per study, abnormal organs per finding.

    Written to ``<out>/conversion_report.json`` and printed as a table.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.studies = Counter()
        self.patients = {}
        self.organs_per_study = []
        self.abnormal_organs = Counter()
        self.positive_studies = Counter()
        self.unlocated = Counter()
        self.notes = Counter()

    def add(self, row, organs=None, unlocated=()):
        self.studies[row['split']] += 1
        self.patients.setdefault(row['split'], set()).add(row['patient_id'])
        if organs is not None:
            self.organs_per_study.append(len(organs))
        for organ, names in (row.get('abnormalities') or {}).items():
            self.abnormal_organs.update(names)
        self.positive_studies.update({n for names in (row.get('abnormalities') or {}).values()
                                      for n in names})
        self.unlocated.update(unlocated)

    def to_dict(self):
        per_study = np.array(self.organs_per_study or [0])
        return dict(
            dataset=self.dataset, studies=dict(self.studies), total_studies=sum(
                self.studies.values()),
            patients={s: len(p) for s, p in self.patients.items()},
            organs_per_study=dict(mean=float(per_study.mean()), min=int(per_study.min()),
                                  max=int(per_study.max())) if self.organs_per_study else None,
            positive_studies_per_finding=dict(self.positive_studies),
            abnormal_organs_per_finding=dict(self.abnormal_organs),
            findings_without_an_organ_in_the_mask=dict(self.unlocated),
            notes=dict(self.notes))

    def write(self, out_dir, vocab=None):
        data = self.to_dict()
        with open(osp.join(out_dir, 'conversion_report.json'), 'w') as f:
            json.dump(data, f, indent=2)
        lines = [f'{self.dataset} -> {out_dir}/manifest.jsonl',
                 '  studies: ' + ', '.join(f'{s} {n}' for s, n in sorted(self.studies.items()))
                 + f' (total {data["total_studies"]})',
                 '  patients: ' + ', '.join(f'{s} {n}' for s, n in
                                            sorted(data['patients'].items()))]
        if data['organs_per_study']:
            o = data['organs_per_study']
            lines.append(f'  organs per study: mean {o["mean"]:.1f}, min {o["min"]}, '
                         f'max {o["max"]}')
        names = list(vocab.names) if vocab is not None else sorted(self.positive_studies)
        if names:
            lines.append(f'  {"finding":<36}{"studies":>9}{"organs":>9}{"no organ":>10}')
            for name in names:
                lines.append(f'  {name:<36}{self.positive_studies[name]:>9}'
                             f'{self.abnormal_organs[name]:>9}{self.unlocated[name]:>10}')
        for note, n in sorted(self.notes.items()):
            lines.append(f'  {note}: {n}')
        print('\n'.join(lines))
        return data


def write_manifest(out_dir, rows):
    """Write ``manifest.jsonl`` (atomically: a temporary file, then a rename)."""
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'manifest.jsonl')
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + '\n')
    os.replace(tmp, path)
    return path


def check_patients_in_one_split(rows):
    """A patient whose studies landed in two splits is an error (CT-RATE keeps patients in
    one of its splits; a name with the wrong prefix would break that)."""
    seen = {}
    for row in rows:
        first = seen.setdefault(row['patient_id'], (row['split'], row['case_id']))
        if first[0] != row['split']:
            raise DataError(f'patient {row["patient_id"]!r} is in split {first[0]!r} (volume '
                            f'{first[1]}) and {row["split"]!r} (volume {row["case_id"]}). Fix: '
                            "keep CT-RATE's volume names; splits never share a patient.")
