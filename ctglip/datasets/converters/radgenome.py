"""RadGenome-ChestCT (Zhang et al. 2024) -> a ctglip manifest folder with organ-level findings.

RadGenome-ChestCT grounds the sentences of CT-RATE's reports in regions of the volume. Its
layout (the Hugging Face download, ``RadGenome/RadGenome-ChestCT``)::

    radgenome_files/train_region_report.csv        Volumename, Anatomy, Sentence
    radgenome_files/validation_region_report.csv   (one row per region sentence; an empty
                                                    Anatomy holds the whole findings text)
    train_region_mask/seg_train_1_a_1/lung.nii.gz  one binary mask per region: abdomen, bone,
    valid_region_mask/seg_valid_1_a_1/heart.nii.gz breast, esophagus, heart, lung, mediastinum,
                                                    pleura, thyroid, trachea and bronchie

The volumes are CT-RATE's (the same ``train_1/train_1_a/train_1_a_1.nii.gz`` tree; the masks
are on the voxel grid of the volumes they were made on, which the converter checks). Each
volume becomes one manifest line whose ``findings`` are its region sentences keyed by organ,
whose ``organ_mask`` is the region masks merged into one label map (``organ_masks/<case>.nii.gz``
with the class map ``radgenome_regions.json``, the ``label_scheme`` of every line), and whose
``abnormalities`` (when CT-RATE's label tables are given) are the positive labels on the
regions of each finding's group in the ``ct_rate`` vocabulary.
"""
import json
import os
import os.path as osp

import numpy as np

from ctglip.datasets.converters.common import (ConversionReport, abnormal_organs,
                                               assign_splits, check_patients_in_one_split,
                                               index_volumes, parse_volume_name, read_csv,
                                               read_labels, relative_to, volume_stem,
                                               write_manifest)
from ctglip.utils.errors import DataError
from ctglip.vocabularies import load_abnormality_vocab

# RadGenome region -> ctglip organ name and label value. A voxel in two region masks takes the
# region that comes later here (smaller structures after the large ones that overlap them).
REGIONS = {
    'abdomen': 'abdomen', 'bone': 'bone', 'breast': 'breast', 'lung': 'lung',
    'pleura': 'pleura', 'mediastinum': 'mediastinum', 'heart': 'heart',
    'esophagus': 'esophagus', 'trachea and bronchie': 'trachea', 'thyroid': 'thyroid_gland',
}
CLASS_MAP = 'radgenome_regions.json'
# Anatomy values that hold report text but no region
REPORT_LEVEL = ('', 'whole', 'whole scan', 'others', 'other')
REPORT_COLUMNS = ('Volumename', 'Anatomy', 'Sentence')


def region_of(anatomy, where):
    """The RadGenome region of an ``Anatomy`` value (``lung/left lung`` -> ``lung``), None for
    report-level text."""
    head = (anatomy or '').strip().split('/')[0].strip().lower()
    if head in REPORT_LEVEL or head == 'nan':
        return None
    if head not in REGIONS:
        raise DataError(f'{where}: Anatomy {anatomy!r} is not a RadGenome region '
                        f'({", ".join(REGIONS)}). Fix: correct the value.')
    return head


def class_map():
    """``{"1": organ, ...}`` of the merged label maps."""
    return {str(i): organ for i, organ in enumerate(REGIONS.values(), 1)}


def merge_region_masks(folder, out_path, where):
    """Merge ``<folder>/<region>.nii.gz`` binary masks into one label map at ``out_path``.

    Returns:
        list[str]: the organs with at least one voxel.
    """
    import nibabel as nib
    label, affine, present = None, None, []
    for value, (region, organ) in enumerate(REGIONS.items(), 1):
        path = osp.join(folder, f'{region}.nii.gz')
        if not osp.isfile(path):
            continue
        img = nib.load(path)
        data = np.asarray(img.dataobj) > 0
        if label is None:
            label, affine = np.zeros(data.shape, np.uint8), img.affine
        elif data.shape != label.shape:
            raise DataError(f'{where}: region mask {path} has shape {data.shape}, the other '
                            f'regions {label.shape}. Fix: the region masks of a volume must '
                            'share one voxel grid.')
        if data.any():
            label[data] = value
            present.append(organ)
    if label is None:
        raise DataError(f'{where}: mask folder {folder} holds none of the region masks '
                        f'{", ".join(f"{r}.nii.gz" for r in REGIONS)}. Fix: point --masks at '
                        "RadGenome's train_region_mask / valid_region_mask folders.")
    os.makedirs(osp.dirname(out_path), exist_ok=True)
    nib.save(nib.Nifti1Image(label, affine), out_path)
    return present


def convert_radgenome(out_dir, region_reports, volumes, masks, labels=(), val_fraction=0.05,
                      abnormality_vocab='ct_rate', skip_missing=False):
    """Write ``<out_dir>/manifest.jsonl``, the merged label maps, the class map and
    ``conversion_report.json`` for RadGenome-ChestCT.

    Args:
        out_dir (str): the manifest folder.
        region_reports (Sequence[str]): the region report CSV files (``Volumename``,
            ``Anatomy``, ``Sentence``).
        volumes (Sequence[str]): folders holding CT-RATE's volumes (searched recursively).
        masks (Sequence[str]): folders holding ``seg_<volume>/`` region mask folders.
        labels (Sequence[str]): CT-RATE's multi-abnormality label CSV files (optional).
        val_fraction (float): share of CT-RATE's train patients that go to ``val``.
        abnormality_vocab: the vocabulary that maps label columns to organ groups.
        skip_missing (bool): skip (and count) volumes without a file or masks instead of
            stopping at the first.

    Returns:
        dict: the counts report.
    """
    vocab = load_abnormality_vocab(abnormality_vocab)
    mask_dirs = {}
    for folder in masks:
        if not osp.isdir(folder):
            raise DataError(f'mask folder {folder} does not exist. Fix: point --masks at '
                            "RadGenome's train_region_mask and valid_region_mask folders.")
        for name in os.listdir(folder):
            if name.startswith('seg_') and osp.isdir(osp.join(folder, name)):
                mask_dirs[name[4:]] = osp.join(folder, name)
    report = ConversionReport('RadGenome-ChestCT')
    findings, whole, first_line = {}, {}, {}
    for path in region_reports:
        for line, row in read_csv(path, REPORT_COLUMNS, 'region report table'):
            where = f'region report table {path} line {line}'
            volume = (row['Volumename'] or '').strip()
            if not volume:
                raise DataError(f'{where}: empty Volumename. Fix: fill it in or remove the row.')
            parse_volume_name(volume, where)
            sentence = ' '.join((row['Sentence'] or '').split())
            if not sentence or sentence.lower() == 'nan':
                report.notes['skipped: empty sentence rows'] += 1
                continue
            region = region_of(row['Anatomy'], where)
            first_line.setdefault(volume, where)
            if region is None:
                whole.setdefault(volume, []).append(sentence)
                continue
            texts = findings.setdefault(volume, {}).setdefault(REGIONS[region], [])
            if sentence not in texts:
                texts.append(sentence)
    label_sets = read_labels(labels, vocab) if labels else None
    files = index_volumes(volumes)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, CLASS_MAP), 'w') as f:
        json.dump(dict(class_map(), _about='RadGenome-ChestCT regions merged into one label '
                       'map by ctglip.datasets.converters.radgenome (later regions win '
                       'overlapping voxels)'), f, indent=2)
    patients, studies = {}, []
    for volume in sorted(first_line):
        where = first_line[volume]
        split, patient, _ = parse_volume_name(volume, where)
        name = volume if volume.endswith(('.nii.gz', '.nii')) else f'{volume}.nii.gz'
        stem = volume_stem(name)
        problem = None
        if name not in files:
            problem = ('volume file missing', f'{where}: volume {name} is not under '
                       f'{", ".join(volumes)}. Fix: download it, or pass --skip-missing.')
        elif stem not in mask_dirs:
            problem = ('region masks missing', f'{where}: no region mask folder seg_{stem} in '
                       f'{", ".join(masks)}. Fix: give the mask folder, or pass --skip-missing.')
        elif not findings.get(volume):
            problem = ('no region sentence', f'{where}: volume {volume} has no sentence with a '
                       'region. Fix: check the Anatomy column, or pass --skip-missing.')
        elif label_sets is not None and volume not in label_sets:
            problem = ('labels missing', f'{where}: volume {volume} has no row in the label '
                       'tables. Fix: give every label table, or pass --skip-missing.')
        if problem:
            if not skip_missing:
                raise DataError(problem[1])
            report.notes[f'skipped: {problem[0]}'] += 1
            continue
        patients.setdefault(patient, split)
        studies.append((volume, stem, patient))
    if not studies:
        raise DataError('no RadGenome-ChestCT volume could be converted. Fix: check the paths.')
    split_of = assign_splits(patients, val_fraction)
    rows = []
    from ctglip.datasets.transforms.loading import check_study_headers
    for volume, stem, patient in studies:
        where = first_line[volume]
        image = files[volume if volume.endswith(('.nii.gz', '.nii')) else f'{volume}.nii.gz']
        mask = osp.join(out_dir, 'organ_masks', f'{stem}.nii.gz')
        organs = merge_region_masks(mask_dirs[stem], mask, where)
        try:
            check_study_headers(image, mask, None, stem)
        except DataError as e:
            raise DataError(f'{where}: {e}') from None
        volume_findings = findings[volume]
        unmasked = sorted(set(volume_findings) - set(organs))
        if unmasked:
            report.notes['region sentences without a mask voxel (kept)'] += len(unmasked)
        text = ' '.join(whole.get(volume) or [s for v in volume_findings.values() for s in v])
        row = dict(case_id=stem, patient_id=patient, split=split_of[patient],
                   image=relative_to(image, out_dir), organ_mask=relative_to(mask, out_dir),
                   label_scheme=CLASS_MAP, report=text, findings=volume_findings)
        lost = []
        if label_sets is not None:
            row['abnormalities'], lost = abnormal_organs(label_sets[volume], vocab, set(organs))
        rows.append(row)
        report.add(row, organs, lost)
    check_patients_in_one_split(rows)
    write_manifest(out_dir, rows)
    return report.write(out_dir, vocab)
