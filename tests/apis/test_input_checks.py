"""Each input check of the inferencer on a crafted bad input made from the real CT: a clear
error or warning that names the file and the fix."""
import os.path as osp
import sys

import numpy as np
import pytest

import inference_helpers as helpers
from ctglip.apis import Case
from ctglip.utils.errors import DataError


@pytest.fixture(scope='session')
def checkpoint(tiny_bert, tiny_data, tmp_path_factory):
    return helpers.trained_checkpoint(tiny_bert, tiny_data, tmp_path_factory)


@pytest.fixture(scope='session')
def inferencer(checkpoint):
    return helpers.inferencer(checkpoint)


def craft(real_data, tmp_path, scheme='auto', **edits):
    ct, mask = helpers.crafted_case(real_data, str(tmp_path / 'case'), **edits)
    return Case('crafted', ct, mask, scheme)


def as_float(a):
    return a.astype(np.float32)


# -- Hounsfield units ---------------------------------------------------------------------------
@pytest.mark.parametrize('image, message', [
    (lambda a: ((as_float(a) + 1000) / 2000).clip(0, 1), 'already windowed or normalised'),
    (lambda a: ((as_float(a) + 160) / 400 * 255).clip(0, 255).astype(np.uint8),
     'an 8-bit picture'),
    (lambda a: a.astype(np.int16) + 1024, 'rescale intercept is missing'),
    (lambda a: a.astype(np.int16) - 1024, 'rescale intercept looks applied twice'),
], ids=['windowed_0_1', 'eight_bit', 'intercept_missing', 'intercept_twice'])
def test_not_hounsfield_units(inferencer, real_data, tmp_path, image, message):
    case = craft(real_data, tmp_path, image=image)
    with pytest.raises(DataError, match=message) as info:
        inferencer.prepare(case)
    assert case.image in str(info.value) and 'Fix:' in str(info.value)
    assert '--skip-check hu' in str(info.value)


def test_skip_check_hu_lets_a_scan_through(checkpoint, real_data, tmp_path):
    case = craft(real_data, tmp_path, image=lambda a: a.astype(np.int16) + 1024)
    packed, context, warnings = helpers.inferencer(checkpoint, skip_checks=['hu']).prepare(case)
    assert context['label_scheme'] == 'totalseg_v2'


# -- DICOM modality -----------------------------------------------------------------------------
def write_series(real_data, folder, modality):
    import pydicom

    from ctglip.testing.bad_inputs import write_dicom_series
    ct, affine = helpers.load_nifti(osp.join(real_data, 'ct.nii.gz'))
    paths = write_dicom_series(ct.astype(np.int16), affine, str(folder))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.Modality = modality
        ds.save_as(path, enforce_file_format=True)
    return str(folder)


def test_non_ct_modality_in_dicom_tags(inferencer, real_data, tmp_path):
    mask = osp.join(real_data, 'seg_total_v2.nii.gz')
    mr = write_series(real_data, tmp_path / 'mr', 'MR')
    with pytest.raises(DataError, match=r"Modality of slice_0000.dcm is 'MR', not CT") as info:
        inferencer.prepare(Case('mr', mr, mask))
    assert mr in str(info.value) and 'Fix: give the CT series' in str(info.value)
    ct = write_series(real_data, tmp_path / 'ct', 'CT')  # the control: same series, CT
    _, context, _ = inferencer.prepare(Case('ct', ct, mask))
    assert context['label_scheme'] == 'totalseg_v2'


# -- CT / mask grid -----------------------------------------------------------------------------
def shifted(affine):
    affine[:3, 3] += 40.0
    return affine


@pytest.mark.parametrize('edits, message', [
    (dict(mask=lambda m: np.ascontiguousarray(m[:, :, :-1])), 'does not match the image shape'),
    (dict(mask_affine=shifted), 'affine does not match the image affine'),
], ids=['grid', 'affine'])
def test_ct_mask_grid_or_affine_mismatch(inferencer, real_data, tmp_path, edits, message):
    case = craft(real_data, tmp_path, **edits)
    with pytest.raises(DataError, match=message) as info:
        inferencer.prepare(case)
    assert case.mask in str(info.value) and 'rerun TotalSegmentator' in str(info.value)


# -- spacing ------------------------------------------------------------------------------------
def thick_slices(affine):
    affine[:3, 2] *= 4.0  # 3 mm -> 12 mm between slices
    return affine


def test_spacing_far_from_training(inferencer, real_data, tmp_path):
    case = craft(real_data, tmp_path, image_affine=thick_slices, mask_affine=thick_slices)
    _, _, warnings = inferencer.prepare(case)
    found = [w for w in warnings if 'coarser along z' in w]
    assert len(found) == 1 and case.image in found[0] and '4 x 4 x 4 mm' in found[0]
    assert '3 x 3 x 12 mm' in found[0]


def test_spacing_finer_than_any_ct_or_not_positive():
    from ctglip.apis.checks import check_spacing
    warnings = check_spacing([0.03, 0.03, 0.1], [5.0, 5.0, 5.0], 'scan.nii.gz')
    assert len(warnings) == 1 and 'millimetres (not cm or um)' in warnings[0]
    assert check_spacing([0.8, 0.8, 5.0], [5.0, 5.0, 5.0], 'scan.nii.gz') == []
    with pytest.raises(DataError, match='spacings must be positive'):
        check_spacing([0.8, 0.0, 5.0], [5.0, 5.0, 5.0], 'scan.nii.gz')


# -- organs of the mask -------------------------------------------------------------------------
def only(*labels):
    return lambda m: np.where(np.isin(m, labels), m, 0).astype(m.dtype)


def test_mask_with_only_a_few_organs(inferencer, real_data, tmp_path):
    case = craft(real_data, tmp_path, mask=only(1, 5))  # spleen and liver
    _, _, warnings = inferencer.prepare(case)
    found = [w for w in warnings if 'holds only 2 organ(s)' in w]
    assert len(found) == 1 and case.mask in found[0] and 'spleen' in found[0]
    assert 'without --roi_subset' in found[0]


def test_mask_without_any_organ_that_has_a_read_out(inferencer, real_data, tmp_path):
    case = craft(real_data, tmp_path, mask=only(30, 31, 32, 79, 86, 87))  # spine and muscles
    with pytest.raises(DataError, match='fit both totalseg_v1 and totalseg_v2 and the organs '
                       'do not tell which'):  # these labels name other organs in v1
        inferencer.prepare(case)
    case.label_scheme = 'totalseg_v2'
    _, _, warnings = inferencer.prepare(case)
    assert any('none of the organs with abnormality prompts' in w for w in warnings)


# -- 2D images ----------------------------------------------------------------------------------
def test_2d_image_is_one_line(checkpoint, real_data, tmp_path, capsys):
    ct, affine = helpers.load_nifti(osp.join(real_data, 'ct.nii.gz'))
    flat = helpers.save_nifti(str(tmp_path / 'slice.nii.gz'), ct[:, :, 15], affine)
    sys.path.insert(0, helpers.REPO)
    from tools import infer
    code = infer.cli([flat, '--mask', osp.join(real_data, 'seg_total_v2.nii.gz'),
                      '--checkpoint', checkpoint, '--out', str(tmp_path / 'out')])
    assert code == 2  # no case could run
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and flat in errors[0] and 'a 3D volume is required' in errors[0]
    assert not (tmp_path / 'out' / 'slice' / 'predictions.json').exists()


# -- label scheme -------------------------------------------------------------------------------
def test_label_scheme_that_does_not_define_the_mask_values(inferencer, real_data, tmp_path):
    case = craft(real_data, tmp_path)
    case.label_scheme = 'totalseg_v1'  # a TotalSegmentator 2 mask (labels up to 117)
    with pytest.raises(DataError, match="label_scheme 'totalseg_v1' does not define") as info:
        inferencer.prepare(case)
    assert case.mask in str(info.value)
    assert 'Fix: pass --label-scheme totalseg_v2' in str(info.value)


def test_label_scheme_whose_organs_land_on_the_wrong_side(inferencer, real_data, tmp_path):
    """A v2 mask whose labels all exist in v1 (those above 104 removed), read as v1: the
    values are defined but name other organs; their sides give it away."""
    case = craft(real_data, tmp_path, mask=lambda m: np.where(m > 104, 0, m).astype(m.dtype))
    case.label_scheme = 'totalseg_v1'
    with pytest.raises(DataError, match="read as 'totalseg_v2', all are on their side") as info:
        inferencer.prepare(case)
    assert 'Fix: pass --label-scheme totalseg_v2' in str(info.value)
    case.label_scheme = 'auto'  # detection picks the scheme that fits
    _, context, warnings = inferencer.prepare(case)
    assert context['label_scheme'] == 'totalseg_v2' and not warnings


def test_mirrored_image_is_refused_unless_skipped(checkpoint, inferencer, real_data, tmp_path):
    """Voxels flipped left-right under an unchanged affine: every sided organ lies on the
    wrong side in world coordinates."""
    flip = lambda a: np.ascontiguousarray(a[::-1])  # noqa: E731
    case = craft(real_data, tmp_path, image=flip, mask=flip)
    with pytest.raises(DataError, match='mirrored left-right') as info:
        inferencer.prepare(case)
    assert '--skip-check laterality' in str(info.value) and case.mask in str(info.value)
    lenient = helpers.inferencer(checkpoint, skip_checks=['laterality'])
    lenient.prepare(case)


def test_mask_with_non_integer_labels(inferencer, real_data, tmp_path):
    case = craft(real_data, tmp_path, mask=lambda m: m.astype(np.float32) * 0.5)
    with pytest.raises(DataError, match='non-integer values'):
        inferencer.prepare(case)


def test_unknown_skip_check_view_and_device_are_config_errors(checkpoint):
    from ctglip.apis import CTGLIPInferencer
    from ctglip.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="only \\['hu', 'laterality'\\] can be skipped"):
        CTGLIPInferencer(checkpoint, device='cpu', skip_checks=['modality'])
    with pytest.raises(ConfigError, match="view='sliding'"):
        CTGLIPInferencer(checkpoint, device='cpu', view='sliding')
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match='no CUDA device'):
            CTGLIPInferencer(checkpoint, device='cuda')
