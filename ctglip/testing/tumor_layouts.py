"""Tiny tumor benchmarks in their published layouts (MSD task folder, KiTS case folders), with
TotalSegmentator-style organ masks, for tests of :mod:`ctglip.datasets.tumor_layouts`.

Each case is a cube of soft tissue holding one organ blob (segmentation label 1) with a tumor
blob inside it (label 2); KiTS cases also hold a cyst (label 3). Organ masks are multi-label
``totalseg_v2`` maps of the same organ. Every file uses an identity affine.

Example:
    >>> from ctglip.testing.tumor_layouts import make_tiny_kits, make_tiny_msd
    >>> root = make_tiny_msd('/tmp/Task03_Liver', task_organ='liver', num_cases=3)
    >>> root = make_tiny_kits('/tmp/kits', num_cases=3)
"""
import json
import os
import os.path as osp

import numpy as np

V2_LABELS = {'liver': 5, 'pancreas': 7, 'kidney_right': 2}  # totalseg_v2 class indices
ORGAN_HU, TUMOR_HU = 60, 20


def _blob(shape, centre, radius):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing='ij'), -1)
    return np.linalg.norm(grid - np.asarray(centre, dtype=float), axis=-1) <= radius


def tiny_case(index, shape=(16, 16, 16), with_cyst=False):
    """Voxels of one case.

    Returns:
        dict: ``image`` (int16 HU), ``segmentation`` (uint8: 1 organ, 2 tumor, 3 cyst),
        ``organ`` (bool, the organ with its tumor and cyst: what an organ mask covers) and
        ``tumor`` (bool), all of ``shape``.
    """
    rng = np.random.default_rng(index)
    centre = np.asarray(shape) / 2 + rng.integers(-1, 2, 3)
    organ = _blob(shape, centre, min(shape) / 3)
    tumor = _blob(shape, centre + [1, 0, 0], 1.5 + index % 2) & organ
    segmentation = organ.astype(np.uint8)
    if with_cyst:
        cyst = _blob(shape, centre - [2, 2, 0], 1.0) & organ & ~tumor
        segmentation[cyst] = 3
    segmentation[tumor] = 2
    image = rng.normal(0, 10, shape)
    image[organ] += ORGAN_HU
    image[tumor] = rng.normal(TUMOR_HU, 5, int(tumor.sum()))
    return dict(image=image.astype(np.int16), segmentation=segmentation, organ=organ,
                tumor=tumor)


def _save(array, path, affine=None):
    import nibabel as nib
    os.makedirs(osp.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)


def make_tiny_msd(root, task_organ='liver', num_cases=3, shape=(16, 16, 16),
                  organ_mask_dir='organ_masks'):
    """Write a Medical Segmentation Decathlon task folder: ``dataset.json``, ``imagesTr/``,
    ``labelsTr/`` and organ masks ``<organ_mask_dir>/<case>.nii.gz`` (``totalseg_v2``).

    Returns:
        str: ``root``.
    """
    organ_value = V2_LABELS[task_organ]
    training = []
    for i in range(num_cases):
        case = f'{task_organ}_{i}'
        voxels = tiny_case(i, shape)
        _save(voxels['image'], osp.join(root, 'imagesTr', f'{case}.nii.gz'))
        _save(voxels['segmentation'], osp.join(root, 'labelsTr', f'{case}.nii.gz'))
        _save(voxels['organ'].astype(np.uint8) * organ_value,
              osp.join(root, organ_mask_dir, f'{case}.nii.gz'))
        training.append({'image': f'./imagesTr/{case}.nii.gz',
                         'label': f'./labelsTr/{case}.nii.gz'})
    meta = {'name': task_organ.capitalize(), 'modality': {'0': 'CT'},
            'labels': {'0': 'background', '1': task_organ, '2': 'cancer'},
            'numTraining': num_cases, 'numTest': 0, 'training': training, 'test': []}
    with open(osp.join(root, 'dataset.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    return root


def make_tiny_kits(root, num_cases=3, shape=(16, 16, 16), organ_mask_dir=None):
    """Write KiTS case folders ``case_XXXXX/{imaging,segmentation}.nii.gz`` (labels 1 kidney,
    2 tumor, 3 cyst) with organ masks in each case folder (``organ_mask.nii.gz``) or, when
    ``organ_mask_dir`` is given, in ``<root>/<organ_mask_dir>/<case>.nii.gz``.

    Returns:
        str: ``root``.
    """
    for i in range(num_cases):
        case = f'case_{i:05d}'
        voxels = tiny_case(i, shape, with_cyst=True)
        _save(voxels['image'], osp.join(root, case, 'imaging.nii.gz'))
        _save(voxels['segmentation'], osp.join(root, case, 'segmentation.nii.gz'))
        mask = (osp.join(root, case, 'organ_mask.nii.gz') if organ_mask_dir is None
                else osp.join(root, organ_mask_dir, f'{case}.nii.gz'))
        _save(voxels['organ'].astype(np.uint8) * V2_LABELS['kidney_right'], mask)
    return root
