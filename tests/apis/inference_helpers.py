"""Shared pieces of the ctglip.apis tests: a tiny trained checkpoint, its export, loaded
inferencers (each made once per test process, whichever module asks first) and scans crafted
from the real CT of ``shared/data/totalsegmentator``."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = 'configs/tests/tiny_ctglip.py'
_CACHE = {}


def run_tool(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          env=env, **kwargs)


def trained_checkpoint(bert, data, tmp_path_factory):
    """A 4-iteration tiny CT-GLIP checkpoint (validated at 2 and 4: it stores thresholds)."""
    key = ('checkpoint', bert, data)
    if key not in _CACHE:
        work = str(tmp_path_factory.mktemp('apis_train') / 'work')
        proc = run_tool(['tools/train.py', TINY, '--work-dir', work, '--data-root', data,
                         '--cfg-options', f'model.text_encoder.model_path={bert}'])
        assert proc.returncode == 0, proc.stderr[-3000:]
        _CACHE[key] = osp.join(work, 'iter_4.pth')
    return _CACHE[key]


def exported(checkpoint, tmp_path_factory):
    """``export_model`` of the checkpoint into a folder (model.safetensors + model.json)."""
    key = ('export', checkpoint)
    if key not in _CACHE:
        from ctglip.apis import export_model
        out = str(tmp_path_factory.mktemp('apis_export') / 'tiny_export')
        _CACHE[key] = export_model(checkpoint, out)
    return _CACHE[key]


def inferencer(model, **kwargs):
    """A ``CTGLIPInferencer`` on the CPU, loaded once per (model, options)."""
    key = ('inferencer', model, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _CACHE:
        from ctglip.apis import CTGLIPInferencer
        _CACHE[key] = CTGLIPInferencer(model, device='cpu', **kwargs)
    return _CACHE[key]


def load_nifti(path):
    import nibabel as nib
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img.affine


def save_nifti(path, data, affine):
    import nibabel as nib
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def crafted_case(real_data, folder, image=None, mask=None, image_affine=None,
                 mask_affine=None):
    """The real CT and its v2 mask, written to ``folder`` after optional edits.

    Args:
        image, mask: functions of the array returning the new array (None: unchanged).
        image_affine, mask_affine: functions of the affine returning the new one.

    Returns:
        tuple: ``(ct path, mask path)``.
    """
    ct, ct_affine = load_nifti(osp.join(real_data, 'ct.nii.gz'))
    seg, seg_affine = load_nifti(osp.join(real_data, 'seg_total_v2.nii.gz'))
    ct = image(ct) if image else ct
    seg = mask(seg) if mask else seg
    ct_affine = image_affine(ct_affine.copy()) if image_affine else ct_affine
    seg_affine = mask_affine(seg_affine.copy()) if mask_affine else seg_affine
    return (save_nifti(osp.join(folder, 'ct.nii.gz'), ct, ct_affine),
            save_nifti(osp.join(folder, 'ct_organs.nii.gz'), seg, seg_affine))
