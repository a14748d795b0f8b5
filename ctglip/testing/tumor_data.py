"""A tiny manifest dataset with tumor masks, for tests of tumor fine-tuning.

It is ``make_tiny_dataset``'s dataset (32^3 studies at 4 mm, blob organs, 8 cases: splits
train, train, val, test, ...) with a dense tumor blob in the liver or the left kidney of some
studies and ``tumor_mask`` files: every study of ``val`` and ``test`` holds both classes in
the liver, so detection AUC is defined there.

Example:
    >>> from ctglip.testing.tumor_data import make_tiny_tumor_dataset
    >>> root = make_tiny_tumor_dataset('/tmp/tiny_tumor')
"""
import json
import os
import os.path as osp

import numpy as np

# case index -> the organ holding its tumor (others are tumor free)
TUMOR_ORGANS = {0: 'kidney_left', 1: 'liver', 3: 'liver', 5: 'liver', 6: 'liver'}
TUMOR_HU = 180
V1_LABELS = {'liver': 5, 'kidney_left': 3}


def make_tiny_tumor_dataset(root, num_cases=8, masks_for_tumor_free=False, seed=0):
    """Write the tiny dataset with tumors and ``tumor_mask`` in ``manifest.jsonl``.

    Args:
        root: the folder to write.
        num_cases: number of studies (8 gives train 4, val 2, test 2).
        masks_for_tumor_free: also write all-zero masks for studies without tumor (a dataset
            that needs ``missing_tumor_mask='error'``); by default only studies with a tumor
            have one, as in the built-in phantom.
        seed: seed of ``make_tiny_dataset``.

    Returns:
        str: ``root``.
    """
    import nibabel as nib

    from .data import make_tiny_dataset
    make_tiny_dataset(root, num_cases=num_cases, seed=seed)
    os.makedirs(osp.join(root, 'tumor_masks'), exist_ok=True)
    manifest = osp.join(root, 'manifest.jsonl')
    with open(manifest) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for i, row in enumerate(rows):
        image = nib.load(osp.join(root, row['image']))
        labels = np.asarray(nib.load(osp.join(root, row['organ_mask'])).dataobj)
        tumor = np.zeros(labels.shape, np.uint8)
        organ = TUMOR_ORGANS.get(i)
        if organ is not None:
            where = np.argwhere(labels == V1_LABELS[organ])
            centre = where.mean(0)
            grid = np.stack(np.meshgrid(*[np.arange(s) for s in labels.shape], indexing='ij'), -1)
            radius = 2.5 if organ == 'liver' else 1.5
            tumor[(np.linalg.norm(grid - centre, axis=-1) <= radius)
                  & (labels == V1_LABELS[organ])] = 1
            data = np.asarray(image.dataobj).copy()
            data[tumor > 0] = TUMOR_HU
            nib.save(nib.Nifti1Image(data.astype(np.int16), image.affine),
                     osp.join(root, row['image']))
        if organ is not None or masks_for_tumor_free:
            row['tumor_mask'] = f'tumor_masks/{row["case_id"]}.nii.gz'
            nib.save(nib.Nifti1Image(tumor, image.affine), osp.join(root, row['tumor_mask']))
    with open(manifest, 'w') as f:
        f.writelines(json.dumps(row) + '\n' for row in rows)
    return root
