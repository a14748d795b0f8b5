"""Files of an inference run: ``<out>/<case>/predictions.json``, NIfTI overlays on the mask's
voxel grid (so they open aligned with the input in 3D Slicer and ITK-SNAP), colour tables,
pictures, and ``<out>/predictions.csv`` with one row per (case, organ, abnormality or query).

Every file is written to a temporary name and renamed into place: an interrupted run leaves
whole files or none.
"""
import csv
import os
import os.path as osp

import numpy as np

from ctglip.apis.model_files import write_json
from ctglip.datasets.organs import readable_name

CSV_FIELDS = ('case_id', 'organ', 'group', 'kind', 'name', 'probability', 'threshold',
              'calibrated', 'call', 'similarity')
ABNORMALITY_MAP = 'abnormality_probability.nii.gz'
RECOGNITION_MAP = 'organ_recognition.nii.gz'
SLICER_COLORS = 'organ_names.ctbl'
ITKSNAP_LABELS = 'organ_names_itksnap.txt'


def csv_rows(result):
    """The CSV rows of one case's result (see ``CSV_FIELDS``)."""
    rows = []
    for organ, entry in result.get('organs', {}).items():
        for name, abn in entry.get('abnormalities', {}).items():
            rows.append(dict(case_id=result['case_id'], organ=organ, group=entry.get('group'),
                             kind='abnormality', name=name, probability=abn['probability'],
                             threshold=abn['threshold'], calibrated=abn['calibrated'],
                             call=abn['call'], similarity=''))
        for query, q in entry.get('queries', {}).items():
            rows.append(dict(case_id=result['case_id'], organ=organ, group=entry.get('group'),
                             kind='query', name=query, probability=q['probability'],
                             threshold='', calibrated='', call='', similarity=q['similarity']))
    return rows


def write_csv(rows, path):
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_predictions(result, case_dir):
    path = osp.join(case_dir, 'predictions.json')
    write_json(result, path)
    return path


# -- NIfTI overlays ------------------------------------------------------------------------------
def mask_reference(mask_path):
    """The NIfTI image whose grid the overlays take: the mask file, or the first file of a
    per-organ mask folder."""
    import nibabel as nib
    if osp.isdir(mask_path):
        names = sorted(f for f in os.listdir(mask_path) if f.endswith(('.nii', '.nii.gz')))
        mask_path = osp.join(mask_path, names[0])
    return nib.load(mask_path)


def save_like(data, reference, path):
    """Save ``data`` as NIfTI with the exact geometry (sform, qform, codes, units) of
    ``reference``."""
    import nibabel as nib
    klass = nib.Nifti2Image if isinstance(reference, nib.Nifti2Image) else nib.Nifti1Image
    img = klass(data, reference.affine)
    sform, scode = reference.get_sform(coded=True)
    qform, qcode = reference.get_qform(coded=True)
    if scode or qcode:
        img.set_sform(sform, int(scode))
        img.set_qform(qform, int(qcode))
    img.header.set_xyzt_units(*reference.header.get_xyzt_units())
    tmp = f'{path}.{os.getpid()}.tmp.nii.gz'
    nib.save(img, tmp)
    os.replace(tmp, path)
    return path


def write_overlays(result, mask_path, label_scheme, vocab, case_dir):
    """Organ-wise maps on the mask's voxel grid.

    - ``abnormality_probability.nii.gz`` (float32): each organ's highest abnormality
      probability on its voxels; 0 on background and on organs without a read-out.
    - ``organ_recognition.nii.gz`` (int16): each organ's voxels carry the vocabulary label of
      the organ the model recognised there (its top-1); 0 where nothing was scored.
    - ``query_<n>.nii.gz`` (float32): the probability of free-text query n per organ.

    Returns:
        dict: ``{what: file name}``.
    """
    from ctglip.datasets.transforms.loading import read_organ_mask
    reference = mask_reference(mask_path)
    labels = np.asarray(read_organ_mask(mask_path, label_scheme, vocab)).astype(np.int64)
    if labels.shape != tuple(reference.shape[:3]):
        raise RuntimeError(f'{mask_path}: mask read as {labels.shape}, header says '
                           f'{reference.shape}')
    index = {name: i + 1 for i, name in enumerate(vocab)}
    size = len(vocab) + 1
    abn = np.zeros(size, np.float32)
    recognised = np.zeros(size, np.int16)
    queries = {q: np.zeros(size, np.float32) for q in result.get('queries', {})}
    for organ, entry in result['organs'].items():
        k = index[organ]
        probs = [a['probability'] for a in entry.get('abnormalities', {}).values()]
        abn[k] = max(probs) if probs else 0.0
        recognised[k] = index[entry['recognition']['top5'][0]['organ']]
        for query, q in entry.get('queries', {}).items():
            queries[query][k] = q['probability']
    files = dict(abnormality_probability=ABNORMALITY_MAP, organ_recognition=RECOGNITION_MAP)
    save_like(abn[labels], reference, osp.join(case_dir, ABNORMALITY_MAP))
    save_like(recognised[labels], reference, osp.join(case_dir, RECOGNITION_MAP))
    for n, (query, lut) in enumerate(queries.items(), 1):
        name = f'query_{n}.nii.gz'
        save_like(lut[labels], reference, osp.join(case_dir, name))
        files[f'query {n}: {query}'] = name
    files.update(write_color_tables(vocab, case_dir))
    return files


def organ_colours(n):
    """``n`` distinct RGB colours (0-255), the same in every run."""
    import matplotlib
    cmap = matplotlib.colormaps['tab20']
    return [tuple(int(round(255 * c)) for c in cmap(i % 20)[:3]) for i in range(n)]


def write_color_tables(vocab, case_dir):
    """Organ names for the recognition label map: a 3D Slicer colour table and an ITK-SNAP
    label description file."""
    colours = organ_colours(len(vocab))
    slicer = ['# 3D Slicer colour table: ctglip organ vocabulary', '0 background 0 0 0 0']
    itksnap = ['# ITK-SNAP label description file: ctglip organ vocabulary',
               '    0     0    0    0        0  0  0    "Clear Label"']
    for i, (name, (r, g, b)) in enumerate(zip(vocab, colours), 1):
        slicer.append(f'{i} {name} {r} {g} {b} 255')
        itksnap.append(f'{i:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{readable_name(name)}"')
    for name, lines in ((SLICER_COLORS, slicer), (ITKSNAP_LABELS, itksnap)):
        path = osp.join(case_dir, name)
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(tmp, path)
    return dict(slicer_colour_table=SLICER_COLORS, itksnap_labels=ITKSNAP_LABELS)
