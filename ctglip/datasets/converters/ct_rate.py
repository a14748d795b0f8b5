"""CT-RATE (Hamamci et al. 2024) -> a ctglip manifest folder.

CT-RATE's layout (the Hugging Face download, ``ibrahimhamamci/CT-RATE``)::

    dataset/train_fixed/train_1/train_1_a/train_1_a_1.nii.gz       (or dataset/train/...)
    dataset/valid_fixed/valid_1/valid_1_a/valid_1_a_1.nii.gz       (or dataset/valid/...)
    dataset/radiology_text_reports/train_reports.csv
    dataset/radiology_text_reports/validation_reports.csv
        VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN
    dataset/multi_abnormality_labels/train_predicted_labels.csv
    dataset/multi_abnormality_labels/valid_predicted_labels.csv
        VolumeName + 18 label columns of 0/1

Organ masks come from a TotalSegmentator run over the volumes (one multi-label file per volume,
``<masks>/<volume>.nii.gz``, from ``TotalSegmentator -i CT -o MASK --ml``, or one folder of
per-organ files, ``<masks>/<volume>/``); the command is in ``docs/vocabularies.md``.

Each volume becomes one manifest line: ``case_id`` the volume name without ``.nii.gz``,
``patient_id`` CT-RATE's patient (``train_1``), ``split`` from CT-RATE's own split (train ->
``train``, with a fixed fraction of its patients in ``val``; valid -> ``test``, the set of the
published zero-shot tables), ``report`` the findings and impression sections, and
``abnormalities`` the positive labels on the organs of each finding's group (vocabulary
``ct_rate``) that the mask holds.
"""
import os.path as osp

from ctglip.datasets.converters.common import (ConversionReport, abnormal_organs,
                                               assign_splits, check_patients_in_one_split,
                                               index_volumes, mask_organs, parse_volume_name,
                                               read_csv, read_labels, relative_to, unique_by,
                                               volume_stem, write_manifest)
from ctglip.utils.errors import DataError
from ctglip.vocabularies import load_abnormality_vocab, organ_vocabulary

REPORT_COLUMNS = ('VolumeName', 'Findings_EN', 'Impressions_EN')
NOT_GIVEN = ('', 'not given.', 'not given', 'nan')


def default_layout(root):
    """The CT-RATE files under ``root`` (the download folder or its ``dataset`` folder)."""
    base = osp.join(root, 'dataset') if osp.isdir(osp.join(root, 'dataset')) else root
    volumes = [osp.join(base, d) for d in ('train_fixed', 'valid_fixed', 'train', 'valid')
               if osp.isdir(osp.join(base, d))]
    if any(v.endswith('_fixed') for v in volumes):  # the fixed copies replace the originals
        volumes = [v for v in volumes if v.endswith('_fixed')]
    reports = [osp.join(base, 'radiology_text_reports', f) for f in (
        'train_reports.csv', 'validation_reports.csv')]
    labels = [osp.join(base, 'multi_abnormality_labels', f) for f in (
        'train_predicted_labels.csv', 'valid_predicted_labels.csv')]
    return dict(volumes=volumes, reports=[p for p in reports if osp.isfile(p)],
                labels=[p for p in labels if osp.isfile(p)])


def report_text(row):
    """``FINDINGS: ... IMPRESSION: ...`` from a reports row (sections that are not given are
    left out)."""
    parts = []
    for header, column in (('FINDINGS', 'Findings_EN'), ('IMPRESSION', 'Impressions_EN')):
        text = ' '.join((row.get(column) or '').split())
        if text.lower() not in NOT_GIVEN:
            parts.append(f'{header}: {text}')
    return '\n'.join(parts)


def find_mask(masks_dir, stem):
    """``<masks>/<stem>.nii.gz`` (multi-label) or ``<masks>/<stem>/`` (per-organ folder)."""
    for candidate in (osp.join(masks_dir, f'{stem}.nii.gz'), osp.join(masks_dir, f'{stem}.nii'),
                      osp.join(masks_dir, stem)):
        if osp.exists(candidate):
            return candidate
    return None


def convert_ct_rate(out_dir, root=None, volumes=(), reports=(), labels=(), masks=None,
                    label_scheme='totalseg_v2', val_fraction=0.05, abnormality_vocab='ct_rate',
                    read_masks=True, skip_missing=False, check_headers=True):
    """Write ``<out_dir>/manifest.jsonl`` and ``conversion_report.json`` for CT-RATE.

    Args:
        out_dir (str): the manifest folder (image and mask paths are written relative to it
            when they lie inside it, else absolute).
        root (str, optional): CT-RATE's download folder; fills ``volumes``, ``reports`` and
            ``labels`` that are not given.
        volumes (Sequence[str]): folders holding the volumes (searched recursively).
        reports (Sequence[str]): the reports CSV files.
        labels (Sequence[str]): the multi-abnormality label CSV files (optional: without them
            ``abnormalities`` is left out and the studies are for training only).
        masks (str): the TotalSegmentator output folder.
        label_scheme (str): ``totalseg_v2`` (TotalSegmentator 2.x), ``totalseg_v1`` or a class
            map JSON.
        val_fraction (float): share of CT-RATE's train patients that go to ``val``.
        abnormality_vocab: the vocabulary that maps label columns to organ groups.
        read_masks (bool): read every mask to count its organs and place each finding on the
            organs present (False: headers only; findings go on every organ of their group
            that the label scheme has).
        skip_missing (bool): skip (and count) volumes without a file, a mask or a report
            instead of stopping at the first.
        check_headers (bool): check that each mask is on its volume's voxel grid.

    Returns:
        dict: the counts report.
    """
    vocab = load_abnormality_vocab(abnormality_vocab)
    if root:
        layout = default_layout(root)
        volumes, reports, labels = (list(volumes) or layout['volumes'],
                                    list(reports) or layout['reports'],
                                    list(labels) or layout['labels'])
    if not reports:
        raise DataError('no reports CSV given or found. Fix: --reports '
                        'dataset/radiology_text_reports/train_reports.csv ... or --root.')
    if not volumes:
        raise DataError('no volume folder given or found. Fix: --volumes dataset/train_fixed '
                        'dataset/valid_fixed or --root.')
    if not masks or not osp.isdir(masks):
        raise DataError(f'mask folder {masks!r} does not exist. Fix: run TotalSegmentator over '
                        'the volumes first (docs/vocabularies.md) and pass --masks DIR.')
    scheme_organs = set(organ_vocabulary(label_scheme))
    report_rows = {}
    for path in reports:
        rows = read_csv(path, REPORT_COLUMNS, 'reports table')
        for volume, (line, row) in unique_by(rows, 'VolumeName', path, 'reports table').items():
            if volume in report_rows:
                raise DataError(f'reports table {path} line {line}: VolumeName {volume!r} is '
                                f'also in {report_rows[volume][0]}. Fix: one row per volume.')
            parse_volume_name(volume, f'reports table {path} line {line}')
            report_rows[volume] = (path, line, row)
    label_sets = read_labels(labels, vocab) if labels else None
    if label_sets is not None:
        unknown = sorted(set(label_sets) - set(report_rows))
        if unknown:
            raise DataError(f'label table: volume {unknown[0]!r} has labels but no report row '
                            f'({len(unknown)} such volumes). Fix: give the matching reports '
                            'table, or leave the volume out of the labels.')
    files = index_volumes(volumes)
    report = ConversionReport('CT-RATE')
    patients, studies = {}, []
    for volume, (path, line, row) in report_rows.items():
        where = f'reports table {path} line {line}'
        split, patient, _ = parse_volume_name(volume, where)
        name = volume if volume.endswith(('.nii.gz', '.nii')) else f'{volume}.nii.gz'
        stem = volume_stem(name)
        image = files.get(name)
        mask = find_mask(masks, stem)
        text = report_text(row)
        problem = None
        if image is None:
            problem = ('volume file missing', f'{where}: volume {name} is not under '
                       f'{", ".join(volumes)}. Fix: download it, or pass --skip-missing.')
        elif mask is None:
            problem = ('organ mask missing', f'{where}: no organ mask {stem}.nii.gz or {stem}/ '
                       f'in {masks}. Fix: run TotalSegmentator on {image}, or pass '
                       '--skip-missing.')
        elif not text:
            problem = ('empty report', f'{where}: volume {volume} has neither Findings_EN nor '
                       'Impressions_EN. Fix: fill them in, or pass --skip-missing.')
        elif label_sets is not None and volume not in label_sets:
            problem = ('labels missing', f'{where}: volume {volume} has no row in the label '
                       'tables. Fix: give every label table, or pass --skip-missing.')
        if problem:
            if not skip_missing:
                raise DataError(problem[1])
            report.notes[f'skipped: {problem[0]}'] += 1
            continue
        if check_headers:
            from ctglip.datasets.transforms.loading import check_study_headers
            try:
                check_study_headers(image, mask, None, stem)
            except DataError as e:
                raise DataError(f'{where}: {e}') from None
        patients.setdefault(patient, split)
        studies.append((stem, patient, image, mask, text, volume))
    if not studies:
        raise DataError('no CT-RATE volume could be converted (see the counts above). Fix: '
                        'check the paths.')
    split_of = assign_splits(patients, val_fraction)
    rows = []
    for stem, patient, image, mask, text, volume in sorted(studies):
        organs = mask_organs(mask, label_scheme) if read_masks else None
        row = dict(case_id=stem, patient_id=patient, split=split_of[patient],
                   image=relative_to(image, out_dir), organ_mask=relative_to(mask, out_dir),
                   label_scheme=label_scheme, report=text)
        lost = []
        if label_sets is not None:
            present = set(organs) if organs is not None else scheme_organs
            row['abnormalities'], lost = abnormal_organs(label_sets[volume], vocab, present)
            if lost:  # keep the study positive: the group's organs of the scheme
                extra, _ = abnormal_organs(set(lost), vocab, scheme_organs)
                for organ, names in extra.items():
                    row['abnormalities'].setdefault(organ, []).extend(names)
        rows.append(row)
        report.add(row, organs, lost)
    check_patients_in_one_split(rows)
    write_manifest(out_dir, rows)
    return report.write(out_dir, vocab)
