"""A small synthetic manifest dataset (a few blob organs) for fast tests.

It exercises the real loading path (NIfTI files, manifest, label scheme) in seconds; the
realistic built-in dataset is the phantom generator (``ctglip.datasets.phantom``).
"""
import json
import os
import os.path as osp

import numpy as np

ORGANS = {  # v1 label: (name, centre as a fraction of the volume, radius in voxels, HU)
    5: ('liver', (0.3, 0.5, 0.5), 5, 60),
    1: ('spleen', (0.75, 0.5, 0.55), 3, 45),
    2: ('kidney_right', (0.3, 0.3, 0.35), 3, 30),
    3: ('kidney_left', (0.7, 0.3, 0.35), 3, 30),
    10: ('pancreas', (0.5, 0.6, 0.45), 2, 40),
}
NORMAL = {'liver': 'The liver is normal in size and attenuation.',
          'spleen': 'The spleen is unremarkable.',
          'kidney_right': 'The right kidney is unremarkable.',
          'kidney_left': 'The left kidney is unremarkable.',
          'pancreas': 'The pancreas is unremarkable.'}
ABNORMAL = {'liver': ('liver cyst', 'A 9 mm simple cyst in the right hepatic lobe.'),
            'kidney_left': ('kidney stone', 'A 4 mm nonobstructing stone in the left kidney.'),
            'spleen': ('splenomegaly', 'The spleen is enlarged, measuring 15 cm.')}


def make_tiny_dataset(root, num_cases=6, shape=(32, 32, 32), spacing=4.0, seed=0,
                      splits=('train', 'train', 'val', 'test')):
    """Write ``num_cases`` studies (CT, v1 label map, report, findings) and ``manifest.jsonl``.

    Returns:
        str: ``root``.
    """
    import nibabel as nib
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'masks'), exist_ok=True)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing='ij'), -1)
    lines = []
    for i in range(num_cases):
        case = f'tiny_{i:03d}'
        image = rng.normal(-900, 20, shape)
        body = np.linalg.norm((grid - np.array(shape) / 2) / (np.array(shape) / 2.4), axis=-1) < 1
        image[body] = rng.normal(0, 15, body.sum())
        label = np.zeros(shape, np.uint8)
        findings, abnormalities = {}, {}
        for value, (name, centre, radius, hu) in ORGANS.items():
            c = np.array(centre) * np.array(shape) + rng.normal(0, 1, 3)
            blob = np.linalg.norm(grid - c, axis=-1) < radius + rng.uniform(-0.5, 0.5)
            label[blob] = value
            image[blob] = rng.normal(hu, 10, blob.sum())
            findings[name] = [NORMAL[name]]
        sick = list(ABNORMAL)[i % len(ABNORMAL)] if i % 4 else None  # val and test hold both
        if sick:
            abnormality, sentence = ABNORMAL[sick]
            findings[sick] = [sentence]
            abnormalities[sick] = [abnormality]
            where = np.argwhere(label == [k for k, v in ORGANS.items() if v[0] == sick][0])
            spot = where[len(where) // 2]
            image[tuple(spot)] = 800 if 'stone' in abnormality else 0
        report = 'FINDINGS: ' + ' '.join(s for v in findings.values() for s in v)
        nib.save(nib.Nifti1Image(image.astype(np.int16), affine),
                 osp.join(root, 'images', f'{case}.nii.gz'))
        nib.save(nib.Nifti1Image(label, affine), osp.join(root, 'masks', f'{case}.nii.gz'))
        lines.append(dict(case_id=case, patient_id=f'p{i:03d}', split=splits[i % len(splits)],
                          image=f'images/{case}.nii.gz', organ_mask=f'masks/{case}.nii.gz',
                          label_scheme='totalseg_v1', report=report, findings=findings,
                          abnormalities=abnormalities))
    with open(osp.join(root, 'manifest.jsonl'), 'w') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)
    return root
