"""CTReportDataset: manifest reading, bad input, real TotalSegmentator data (NIfTI and DICOM)."""
import json
import os.path as osp
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from ctglip.datasets import CTReportDataset
from ctglip.datasets.organs import organ_vocabulary
from ctglip.utils.errors import DataError

VOCAB = organ_vocabulary('totalseg_v1')
SPACING = (4.0, 4.0, 4.0)


def pipeline(spacing=SPACING, crop=None):
    keys = ['image', 'organ_label', 'tumor_mask']
    steps = [
        dict(type='LoadCTStudy'),
        dict(type='Spacingd', keys=keys, pixdim=spacing, mode=('bilinear', 'nearest', 'nearest'),
             allow_missing_keys=True),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=-1000.0, a_max=1000.0,
             b_min=0.0, b_max=1.0, clip=True),
    ]
    if crop:
        steps.append(dict(type='RandOrganCrop', spatial_size=crop))
    return steps + [dict(type='PackCTInputs')]


def copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def rewrite_manifest(root, edit):
    path = osp.join(root, 'manifest.jsonl')
    rows = [json.loads(line) for line in open(path)]
    rows = edit(rows)
    with open(path, 'w') as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + '\n')


def test_tiny_dataset_loads_and_packs(tiny_data):
    ds = CTReportDataset(tiny_data, split='train', pipeline=pipeline(crop=(16, 16, 16)))
    assert len(ds) == 4
    item = ds[0]
    assert item['inputs'].shape == (1, 16, 16, 16)
    assert 0.0 <= float(item['inputs'].min()) and float(item['inputs'].max()) <= 1.0
    sample = item['data_samples']
    assert sample.organ_label.shape == (16, 16, 16)
    assert sample.case_id.startswith('tiny_')
    assert set(sample.status.values()) <= {'normal', 'abnormal'}
    assert isinstance(sample.findings, dict) and sample.report


def test_split_none_has_all_cases(tiny_data):
    assert len(CTReportDataset(tiny_data, split=None, pipeline=[])) == 8


@pytest.mark.parametrize('edit, match', [
    (lambda rows: [dict(rows[0], image=None)] + rows[1:], r"missing field\(s\) \['image'\]"),
    (lambda rows: rows + [rows[0]], 'occurs twice'),
    (lambda rows: [dict(rows[0], split='val')] + [dict(rows[1], patient_id=rows[0]['patient_id'])]
     + rows[2:], 'is in both'),
    (lambda rows: ['{not json'] + rows, 'not valid JSON'),
    (lambda rows: [dict(rows[0], report='', findings=None)] + rows[1:], 'empty report'),
    (lambda rows: [dict(rows[0], image='images/nope.nii.gz')] + rows[1:], 'does not exist'),
    (lambda rows: [dict(rows[0], split='training')] + rows[1:], 'is not one of'),
])
def test_bad_manifest_lines_name_the_line_and_fix(tiny_data, tmp_path, edit, match):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    rewrite_manifest(root, edit)
    with pytest.raises(DataError, match=match) as e:
        CTReportDataset(root, split='train', pipeline=[])
    assert 'manifest.jsonl' in str(e.value)


def test_non_utf8_manifest(tiny_data, tmp_path):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    with open(osp.join(root, 'manifest.jsonl'), 'ab') as f:
        f.write(b'{"case_id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match='not UTF-8'):
        CTReportDataset(root, pipeline=[])


def test_skip_invalid_counts_and_keeps_the_rest(tiny_data, tmp_path):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    rewrite_manifest(root, lambda rows: [dict(rows[0], image='images/nope.nii.gz')] + rows[1:])
    ds = CTReportDataset(root, split=None, pipeline=[], skip_invalid=True)
    assert len(ds) == 7 and sum(ds.skipped.values()) == 1


def test_missing_manifest_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match='make_phantoms'):
        CTReportDataset(str(tmp_path), pipeline=[])


def test_mask_shape_mismatch_names_case_and_file(tiny_data, tmp_path):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    mask = osp.join(root, 'masks', 'tiny_000.nii.gz')
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), mask)
    ds = CTReportDataset(root, split='train', pipeline=pipeline())
    with pytest.raises(DataError, match=r"case 'tiny_000'.*shape \(8, 8, 8\).*does not match"):
        ds[0]


def test_unknown_mask_label_is_refused(tiny_data, tmp_path):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    mask = osp.join(root, 'masks', 'tiny_000.nii.gz')
    img = nib.load(mask)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 200
    nib.save(nib.Nifti1Image(data, img.affine), mask)
    ds = CTReportDataset(root, split='train', pipeline=pipeline())
    with pytest.raises(DataError, match=r'labels \[200\].*label_scheme'):
        ds[0]


def test_nan_voxels_are_refused(tiny_data, tmp_path):
    root = copy_dataset(tiny_data, tmp_path / 'd')
    path = osp.join(root, 'images', 'tiny_000.nii.gz')
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(DataError, match='NaN'):
        CTReportDataset(root, split='train', pipeline=pipeline())[0]


def _real_manifest(root, tmp_path, image, mask, scheme='totalseg_v2'):
    row = dict(case_id='real', patient_id='p', split='test', image=image, organ_mask=mask,
               label_scheme=scheme, report='The liver is unremarkable.',
               findings={'liver': ['The liver is unremarkable.']}, abnormalities={})
    out = tmp_path / 'real'
    out.mkdir(exist_ok=True)
    (out / 'manifest.jsonl').write_text(json.dumps(row) + '\n')
    return str(out)


def test_real_ct_with_totalsegmentator_v2_map(real_data, tmp_path):
    root = _real_manifest(real_data, tmp_path, osp.join(real_data, 'ct.nii.gz'),
                          osp.join(real_data, 'seg_total_v2.nii.gz'))
    sample = CTReportDataset(root, pipeline=pipeline(spacing=(3.0, 3.0, 3.0)))[0]
    label = sample['data_samples'].organ_label
    assert sample['inputs'].shape[1:] == label.shape == (122, 101, 30)
    present = {VOCAB[i - 1] for i in label.unique().tolist() if i}
    assert {'liver', 'spleen', 'kidney_left', 'kidney_right', 'pancreas'} <= present
    # RAS: +x is the patient's right (x grows with the first voxel axis here), so the right
    # kidney lies at larger x than the left kidney, and the liver on the right.
    x = {o: torch.nonzero(label == VOCAB.index(o) + 1)[:, 0].float().mean() for o in
         ('kidney_left', 'kidney_right', 'liver', 'spleen')}
    assert x['kidney_right'] > x['kidney_left'] and x['liver'] > x['spleen']
    # HU window: air and soft tissue end up inside [0, 1]
    assert 0.0 <= float(sample['inputs'].min()) < 0.1 and float(sample['inputs'].max()) <= 1.0


def test_real_dicom_series_with_its_map(real_data, tmp_path):
    root = _real_manifest(real_data, tmp_path, osp.join(real_data, 'dicom'),
                          osp.join(real_data, 'dicom_seg_total_v2.nii.gz'))
    sample = CTReportDataset(root, pipeline=pipeline(spacing=(4.0, 4.0, 4.0)))[0]
    label = sample['data_samples'].organ_label
    assert sample['inputs'].shape[1:] == label.shape
    assert label.shape[2] == 10  # 20 slices x 2 mm -> 10 slices of 4 mm
    assert len(label.unique()) > 10  # the organs survive reorientation and resampling


def test_dicom_folder_with_a_non_dicom_file(real_data, tmp_path):
    folder = tmp_path / 'series'
    shutil.copytree(osp.join(real_data, 'dicom'), folder)
    (folder / 'notes.txt').write_text('not a dicom file')
    root = _real_manifest(real_data, tmp_path, str(folder),
                          osp.join(real_data, 'dicom_seg_total_v2.nii.gz'))
    with pytest.raises(DataError, match='notes.txt is not a readable DICOM'):
        CTReportDataset(root, pipeline=pipeline())[0]


def test_per_organ_mask_folder_equals_multilabel_file(real_data, tmp_path):
    """TotalSegmentator's default output (one file per organ) loads like its --ml file."""
    from ctglip.datasets.organs import scheme_classes
    ml = nib.load(osp.join(real_data, 'seg_total_v2.nii.gz'))
    data = np.asarray(ml.dataobj)
    folder = tmp_path / 'seg'
    folder.mkdir()
    for label, name in scheme_classes('totalseg_v2').items():
        if name in ('liver', 'spleen', 'kidney_left', 'kidney_right'):
            nib.save(nib.Nifti1Image((data == label).astype(np.uint8), ml.affine),
                     str(folder / f'{name}.nii.gz'))
    from ctglip.datasets.transforms import read_organ_mask
    from_folder = read_organ_mask(str(folder), 'totalseg_v2', 'totalseg_v1')
    from_file = read_organ_mask(osp.join(real_data, 'seg_total_v2.nii.gz'), 'totalseg_v2',
                                'totalseg_v1')
    keep = [VOCAB.index(o) + 1 for o in ('liver', 'spleen', 'kidney_left', 'kidney_right')]
    expected = torch.where(torch.isin(from_file, torch.tensor(keep)), from_file, 0)
    assert torch.equal(from_folder.long(), expected.long())


def test_custom_json_scheme(tiny_data, tmp_path):
    from ctglip.datasets.transforms import read_organ_mask
    scheme = tmp_path / 'scheme.json'
    scheme.write_text(json.dumps({'1': 'spleen', '2': 'kidney_right', '3': 'kidney_left',
                                  '5': 'liver', '10': 'pancreas'}))
    mask = read_organ_mask(osp.join(tiny_data, 'masks', 'tiny_000.nii.gz'), str(scheme),
                           'totalseg_v1')
    assert set(mask.unique().tolist()) == {0, 1, 2, 3, 5, 10}


def test_v2_to_v1_exceptions():
    from ctglip.datasets.organs import scheme_classes, scheme_to_vocab_lut
    lut, _ = scheme_to_vocab_lut('totalseg_v2', 'totalseg_v1')
    v2 = {name: label for label, name in scheme_classes('totalseg_v2').items()}
    assert lut[v2['liver']] == VOCAB.index('liver') + 1
    assert lut[v2['kidney_cyst_left']] == VOCAB.index('kidney_left') + 1
    assert lut[v2['vertebrae_S1']] == VOCAB.index('sacrum') + 1
    assert lut[v2['heart']] == 0  # not split into v1's chambers
    assert lut[v2['pulmonary_vein']] == 0  # not v1's pulmonary_artery
