"""Tiny fake CT-RATE and RadGenome-ChestCT downloads, in their real layouts and column names.

For tests and quick trials of the converters (``ctglip.datasets.converters``) and of the CT-RATE
configs: a few patients with two scans each, chest volumes of blob organs, TotalSegmentator v2
label maps, CT-RATE's reports and multi-abnormality label tables, RadGenome's region sentences
and region masks. The reports are generated here from the labels; nothing is copied from the
datasets::

    from ctglip.testing.ct_rate import make_fake_ct_rate, make_fake_radgenome
    ct_rate = make_fake_ct_rate('/tmp/ct_rate')        # dataset/... + masks/
    radgenome = make_fake_radgenome('/tmp/radgenome', ct_rate)
"""
import csv
import os
import os.path as osp

import numpy as np

LABEL_COLUMNS = (
    'Medical material', 'Arterial wall calcification', 'Cardiomegaly', 'Pericardial effusion',
    'Coronary artery wall calcification', 'Hiatal hernia', 'Lymphadenopathy', 'Emphysema',
    'Atelectasis', 'Lung nodule', 'Lung opacity', 'Pulmonary fibrotic sequela', 'Pleural effusion',
    'Mosaic attenuation pattern', 'Peribronchial thickening', 'Consolidation', 'Bronchiectasis',
    'Interlobular septal thickening')
REPORT_COLUMNS = ('VolumeName', 'ClinicalInformation_EN', 'Technique_EN', 'Findings_EN',
                  'Impressions_EN')
# v2 label: (name, centre as a fraction of the volume, radii in voxels, HU)
ORGANS = {
    10: ('lung_upper_lobe_left', (0.72, 0.5, 0.68), (4, 5, 3), -850),
    11: ('lung_lower_lobe_left', (0.72, 0.5, 0.32), (4, 5, 3), -850),
    12: ('lung_upper_lobe_right', (0.28, 0.5, 0.72), (4, 5, 2), -850),
    13: ('lung_middle_lobe_right', (0.28, 0.45, 0.5), (3, 4, 2), -850),
    14: ('lung_lower_lobe_right', (0.28, 0.5, 0.28), (4, 5, 2), -850),
    51: ('heart', (0.55, 0.38, 0.42), (3, 3, 3), 40),
    52: ('aorta', (0.5, 0.62, 0.6), (1.5, 1.5, 4), 45),
    16: ('trachea', (0.5, 0.45, 0.8), (1.2, 1.2, 2), -1000),
    15: ('esophagus', (0.5, 0.7, 0.5), (1.2, 1.2, 4), 30),
    6: ('stomach', (0.6, 0.5, 0.12), (3, 2, 1.5), 20),
}
# (sentence when positive, sentence when negative); negatives '' are left out of the report
SENTENCES = {
    'Medical material': ('Median sternotomy wires are noted.', ''),
    'Arterial wall calcification': ('Atherosclerotic calcifications are seen in the thoracic '
                                    'aorta.', 'The thoracic aorta is of normal caliber.'),
    'Cardiomegaly': ('The heart is enlarged.', 'Heart size is normal.'),
    'Pericardial effusion': ('A small pericardial effusion is present.',
                             'No pericardial effusion was detected.'),
    'Coronary artery wall calcification': ('Calcified plaques are seen in the coronary arteries.',
                                           ''),
    'Hiatal hernia': ('A small hiatal hernia is noted.', ''),
    'Lymphadenopathy': ('Enlarged lymph nodes are present in the mediastinum, the largest '
                        'measuring 14 mm.', 'No lymph node in pathological size was detected.'),
    'Emphysema': ('Centrilobular emphysema is seen in both upper lobes.', ''),
    'Atelectasis': ('Subsegmental atelectasis is seen in the right lower lobe.', ''),
    'Lung nodule': ('A 5 mm nodule is seen in the left lower lobe.', ''),
    'Lung opacity': ('Patchy ground-glass opacities are seen in the left upper lobe.', ''),
    'Pulmonary fibrotic sequela': ('Fibrotic sequelae are present in the right upper lobe.', ''),
    'Pleural effusion': ('Bilateral pleural effusion is present.',
                         'No pleural effusion was detected.'),
    'Mosaic attenuation pattern': ('A mosaic attenuation pattern is seen in both lungs.', ''),
    'Peribronchial thickening': ('Peribronchial thickening is seen in the lower lobes.', ''),
    'Consolidation': ('Consolidation is seen in the right middle lobe.', ''),
    'Bronchiectasis': ('Cylindrical bronchiectasis is seen in the left lower lobe.', ''),
    'Interlobular septal thickening': ('Interlobular septal thickening is seen at the lung '
                                       'bases.', ''),
}


def _labels(patient, scan):
    """Every label has both classes within each patient (scans a and b differ)."""
    return {c: int((patient + scan + k) % 2 == 0 and (k % 3 != 2 or scan == 0))
            for k, c in enumerate(LABEL_COLUMNS)}


def _report(labels):
    findings = ['Trachea and both main bronchi are open.']
    findings += [SENTENCES[c][0] if labels[c] else SENTENCES[c][1] for c in LABEL_COLUMNS]
    findings = [s for s in findings if s]
    positives = [c.lower() for c in LABEL_COLUMNS if labels[c]]
    impression = (('Findings: ' + ', '.join(positives) + '.') if positives
                  else 'No acute pathology.')
    return ' '.join(findings), impression[0].upper() + impression[1:]


def _write_csv(path, columns, rows):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def _volume(shape, labels, rng):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing='ij'), -1)
    image = rng.normal(-1000, 10, shape)
    body = np.linalg.norm((grid - np.array(shape) / 2) / (np.array(shape) / 2.2), axis=-1) < 1
    image[body] = rng.normal(10, 15, int(body.sum()))
    label = np.zeros(shape, np.uint8)
    for value, (_, centre, radii, hu) in ORGANS.items():
        c = np.array(centre) * np.array(shape) + rng.normal(0, 0.3, 3)
        blob = np.linalg.norm((grid - c) / np.array(radii), axis=-1) < 1
        label[blob] = value
        image[blob] = rng.normal(hu, 10, int(blob.sum()))
    if labels['Lung nodule']:
        where = np.argwhere(label == 11)
        image[tuple(where[len(where) // 2])] = 30
    if labels['Arterial wall calcification']:
        where = np.argwhere(label == 52)
        image[tuple(where[0])] = 600
    return image.astype(np.int16), label


def make_fake_ct_rate(root, num_patients=(4, 2), shape=(24, 24, 20), spacing=(4.0, 4.0, 5.0),
                      seed=0, per_organ_masks=()):
    """Write a fake CT-RATE download under ``root``.

    Args:
        root (str): where to write ``dataset/`` (volumes, reports, labels) and ``masks/``
            (TotalSegmentator v2 ``--ml`` label maps, one per volume).
        num_patients (tuple[int, int]): train and validation patients; each has scans ``a``
            and ``b`` (one reconstruction each).
        shape (tuple[int, int, int]): volume shape in voxels.
        spacing (tuple[float, float, float]): voxel size in mm.
        seed (int): random seed.
        per_organ_masks (Collection[str]): volume stems whose mask is written as a folder of
            per-organ files (TotalSegmentator's default output) instead.

    Returns:
        str: ``root``.
    """
    import nibabel as nib
    rng = np.random.default_rng(seed)
    affine = np.diag(list(spacing) + [1.0])
    data = osp.join(root, 'dataset')
    for split, count, reports_csv, labels_csv in (
            ('train', num_patients[0], 'train_reports.csv', 'train_predicted_labels.csv'),
            ('valid', num_patients[1], 'validation_reports.csv', 'valid_predicted_labels.csv')):
        report_rows, label_rows = [], []
        for p in range(1, count + 1):
            for s, scan in enumerate('ab'):
                stem = f'{split}_{p}_{scan}_1'
                labels = _labels(p, s)
                image, label = _volume(shape, labels, rng)
                folder = osp.join(data, f'{split}_fixed', f'{split}_{p}', f'{split}_{p}_{scan}')
                os.makedirs(folder, exist_ok=True)
                nib.save(nib.Nifti1Image(image, affine), osp.join(folder, f'{stem}.nii.gz'))
                masks = osp.join(root, 'masks')
                os.makedirs(masks, exist_ok=True)
                if stem in per_organ_masks:
                    os.makedirs(osp.join(masks, stem), exist_ok=True)
                    for value, (name, *_rest) in ORGANS.items():
                        nib.save(nib.Nifti1Image((label == value).astype(np.uint8), affine),
                                 osp.join(masks, stem, f'{name}.nii.gz'))
                else:
                    nib.save(nib.Nifti1Image(label, affine), osp.join(masks, f'{stem}.nii.gz'))
                findings, impression = _report(labels)
                report_rows.append([f'{stem}.nii.gz', 'Not given.',
                                    'Non-contrast images were taken in the axial plane.',
                                    findings, impression])
                label_rows.append([f'{stem}.nii.gz'] + [labels[c] for c in LABEL_COLUMNS])
        _write_csv(osp.join(data, 'radiology_text_reports', reports_csv), REPORT_COLUMNS,
                   report_rows)
        _write_csv(osp.join(data, 'multi_abnormality_labels', labels_csv),
                   ('VolumeName',) + LABEL_COLUMNS, label_rows)
    return root


# RadGenome region -> the v2 labels of the fake label maps it covers
_REGION_LABELS = {'lung': (10, 11, 12, 13, 14), 'heart': (51,), 'esophagus': (15,),
                  'trachea and bronchie': (16,), 'mediastinum': (52,), 'abdomen': (6,)}
_REGION_SENTENCES = {
    'lung': ('Lung nodule', 'Emphysema', 'Atelectasis', 'Lung opacity', 'Consolidation',
             'Bronchiectasis'),
    'pleura': ('Pleural effusion',), 'heart': ('Cardiomegaly', 'Pericardial effusion'),
    'mediastinum': ('Lymphadenopathy',), 'esophagus': ('Hiatal hernia',),
}


def _read_label(masks, stem):
    """The v2 label map of a fake volume (from its ``--ml`` file or per-organ folder)."""
    import nibabel as nib
    path = osp.join(masks, f'{stem}.nii.gz')
    if osp.isfile(path):
        img = nib.load(path)
        return np.asarray(img.dataobj), img
    label = None
    for value, (name, *_rest) in ORGANS.items():
        img = nib.load(osp.join(masks, stem, f'{name}.nii.gz'))
        part = np.asarray(img.dataobj) > 0
        label = np.zeros(part.shape, np.uint8) if label is None else label
        label[part] = value
    return label, img


def make_fake_radgenome(root, ct_rate_root):
    """Write a fake RadGenome-ChestCT download (region sentences and region masks) for the
    volumes of a fake CT-RATE made by :func:`make_fake_ct_rate`.

    Returns:
        str: ``root``, holding ``radgenome_files/{train,validation}_region_report.csv`` and
        ``{train,valid}_region_mask/seg_<volume>/<region>.nii.gz``.
    """
    import nibabel as nib
    from scipy import ndimage
    data = osp.join(ct_rate_root, 'dataset')
    for split, csv_name in (('train', 'train_region_report.csv'),
                            ('valid', 'validation_region_report.csv')):
        with open(osp.join(data, 'multi_abnormality_labels', f'{split}_predicted_labels.csv'),
                  newline='') as f:
            label_rows = list(csv.DictReader(f))
        with open(osp.join(data, 'radiology_text_reports', 'train_reports.csv' if split ==
                           'train' else 'validation_reports.csv'), newline='') as f:
            reports = {r['VolumeName']: r for r in csv.DictReader(f)}
        rows = []
        for row in label_rows:
            volume = row['VolumeName']
            stem = volume[:-len('.nii.gz')]
            labels = {c: int(row[c]) for c in LABEL_COLUMNS}
            rows.append([volume, '', reports[volume]['Findings_EN']])
            for region, columns in _REGION_SENTENCES.items():
                for column in columns:
                    sentence = SENTENCES[column][0] if labels[column] else SENTENCES[column][1]
                    if sentence:
                        rows.append([volume, region, sentence])
            rows.append([volume, 'trachea and bronchie', 'Trachea and both main bronchi are '
                                                         'open.'])
            p = '_'.join(stem.split('_')[:2])
            label, mask = _read_label(osp.join(ct_rate_root, 'masks'), stem)
            out = osp.join(root, f'{split}_region_mask', f'seg_{stem}')
            os.makedirs(out, exist_ok=True)
            for region, values in _REGION_LABELS.items():
                nib.save(nib.Nifti1Image(np.isin(label, values).astype(np.uint8), mask.affine),
                         osp.join(out, f'{region}.nii.gz'))
            lungs = np.isin(label, _REGION_LABELS['lung'])
            pleura = ndimage.binary_dilation(lungs) & ~lungs & (label == 0)
            nib.save(nib.Nifti1Image(pleura.astype(np.uint8), mask.affine),
                     osp.join(out, 'pleura.nii.gz'))
            assert osp.isdir(osp.join(data, f'{split}_fixed', p))
        _write_csv(osp.join(root, 'radgenome_files', csv_name), ('Volumename', 'Anatomy',
                                                                 'Sentence'), rows)
    return root
