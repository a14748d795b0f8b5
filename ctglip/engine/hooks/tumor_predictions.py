"""Write a segmentor's per-case predictions during testing (``tools/test.py --out-dir``)."""
import json
import os
import os.path as osp

import numpy as np
from mmengine.hooks import Hook

from ctglip.registry import HOOKS
from ctglip.utils.errors import ConfigError

MASK_FILE = 'tumor_mask.nii.gz'
SCORES_FILE = 'tumor_probabilities.json'


def reference_grid(img_path):
    """``(shape, affine)`` of the CT a prediction belongs to, as its file gives them.

    A NIfTI file is read from its header; a DICOM series folder through the loader (RAS
    affine, voxel order of the reader).
    """
    if osp.isdir(img_path):
        from ctglip.datasets.transforms.loading import read_volume
        volume = read_volume(img_path, what='image')
        return tuple(volume.shape), np.asarray(volume.affine, dtype=np.float64)
    import nibabel as nib
    img = nib.load(img_path)
    return tuple(img.shape[:3]), np.asarray(img.affine, dtype=np.float64)


def resample_to_grid(mask, affine, shape, ref_affine):
    """Nearest-neighbour resampling of a label volume onto another voxel grid of one world.

    Args:
        mask (np.ndarray): ``X x Y x Z`` labels on the grid of ``affine``.
        affine (np.ndarray): its voxel-to-world (RAS mm) affine.
        shape (tuple[int]): the target grid's shape.
        ref_affine (np.ndarray): the target grid's affine.

    Returns:
        np.ndarray: ``shape`` uint8; voxels outside ``mask``'s grid are 0.
    """
    from scipy.ndimage import affine_transform
    index = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(ref_affine,
                                                                             dtype=np.float64)
    return affine_transform(np.asarray(mask, dtype=np.uint8), index[:3, :3], offset=index[:3, 3],
                            output_shape=tuple(shape), order=0, mode='grid-constant',
                            cval=0)


def write_case(sample, out_dir):
    """Write one case: ``<out_dir>/<case_id>/tumor_mask.nii.gz`` on the input CT's grid
    (its shape and affine) and ``tumor_probabilities.json``.

    Returns:
        str: the case folder.
    """
    import nibabel as nib
    case_id = str(sample.get('case_id', 'case'))
    affine = sample.get('affine')
    img_path = sample.get('img_path')
    if affine is None or not img_path:
        raise ConfigError(f'case {case_id!r}: the prediction has no affine or img_path, so it '
                          'cannot be placed on the input CT. Fix: add '
                          "dict(type='RecordAffine') after Spacingd in the test pipeline.")
    mask = sample.pred_tumor_mask.detach().cpu().numpy().astype(np.uint8)
    shape, ref_affine = reference_grid(img_path)
    on_input = resample_to_grid(mask, affine, shape, ref_affine)
    folder = osp.join(out_dir, case_id)
    os.makedirs(folder, exist_ok=True)
    img = nib.Nifti1Image(on_input, ref_affine)
    img.header.set_sform(ref_affine, code=1)
    img.header.set_qform(ref_affine, code=1)
    nib.save(img, osp.join(folder, MASK_FILE))
    record = dict(case_id=case_id, image=img_path,
                  tumor_probability={k: float(v) for k, v in sample.tumor_scores.items()},
                  tumor_voxels=int(on_input.sum()),
                  tumor_volume_ml=float(on_input.sum() * abs(np.linalg.det(ref_affine[:3, :3]))
                                        / 1000.0))
    labels = sample.get('tumor_labels')
    if labels is not None:
        record['tumor_labels'] = {k: int(v) for k, v in labels.items()}
    with open(osp.join(folder, SCORES_FILE), 'w') as f:
        json.dump(record, f, indent=1, sort_keys=True)
    return folder


@HOOKS.register_module()
class TumorPredictionWriter(Hook):
    """Write each test case's tumor mask (NIfTI on the input CT's grid: its shape and affine)
    and per-organ tumor probabilities (JSON) under ``out_dir/<case_id>/``.

    The segmentor predicts on the pipeline's grid (RAS, resampled); the mask is brought back
    onto the input file's grid by nearest-neighbour resampling through the world coordinates
    (the sample's ``affine`` from ``RecordAffine`` and the input's header), so it overlays the
    CT in any viewer. ``tumor_probabilities.json`` holds ``tumor_probability`` ({organ:
    probability}, the detection read-out), ``tumor_voxels``, ``tumor_volume_ml`` and, where
    the dataset gives them, the true ``tumor_labels``.

    Args:
        out_dir (str): the folder to write into (created).

    Raises:
        ConfigError: the model's outputs carry no ``pred_tumor_mask`` (not a segmentor) or no
            affine.
    """

    priority = 'LOW'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for sample in outputs or ():
            if 'pred_tumor_mask' not in sample:
                raise ConfigError('--out-dir writes tumor predictions, and this model gives none '
                                  f'({type(runner.model).__name__} has no pred_tumor_mask). Fix: '
                                  'use it with a fine-tuning config (configs/finetune/).')
            write_case(sample, self.out_dir)

    def after_test_epoch(self, runner, metrics=None):
        runner.logger.info(f'tumor predictions written to {self.out_dir}')
