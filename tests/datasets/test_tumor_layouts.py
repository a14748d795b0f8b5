"""MSD and KiTS tumor datasets read in their own layouts, and SelectTumorLabels."""
import json
import os
import os.path as osp

import nibabel as nib
import numpy as np
import pytest
import torch

from ctglip.datasets import KiTSTumorDataset, MSDTumorDataset
from ctglip.datasets.tumor_layouts import split_cases
from ctglip.registry import DATASETS
from ctglip.testing.tumor_layouts import make_tiny_kits, make_tiny_msd, tiny_case
from ctglip.utils.errors import ConfigError, DataError

LOAD = [dict(type='LoadCTStudy'), dict(type='SelectTumorLabels', values=(2,))]
PIPELINE = LOAD + [dict(type='PackCTInputs')]
INFO_KEYS = {'case_id', 'patient_id', 'split', 'img_path', 'mask_path', 'label_scheme',
             'tumor_path', 'tumor_values', 'tumor_label_map', 'tumor_organ', 'report',
             'findings', 'abnormalities', 'status', 'sample_idx'}


@pytest.fixture(scope='module')
def msd(tmp_path_factory):
    return make_tiny_msd(str(tmp_path_factory.mktemp('msd') / 'Task03_Liver'), num_cases=3)


@pytest.fixture(scope='module')
def kits(tmp_path_factory):
    return make_tiny_kits(str(tmp_path_factory.mktemp('kits') / 'data'), num_cases=3)


def _one_line(error):
    message = str(error.value)
    assert '\n' not in message, message
    return message


def _save(array, path):
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)


# -- data list ----------------------------------------------------------------------------------
def test_msd_data_list(msd):
    ds = MSDTumorDataset(msd, 'organ_masks', task_organ='liver', pipeline=PIPELINE)
    assert len(ds) == 3
    infos = sorted((ds.get_data_info(i) for i in range(3)), key=lambda i: i['case_id'])
    assert [i['case_id'] for i in infos] == ['liver_0', 'liver_1', 'liver_2']
    info = infos[1]
    assert set(info) == INFO_KEYS
    assert info['patient_id'] == 'liver_1'
    assert info['img_path'] == osp.join(msd, 'imagesTr', 'liver_1.nii.gz')
    assert info['tumor_path'] == osp.join(msd, 'labelsTr', 'liver_1.nii.gz')
    assert info['mask_path'] == osp.join(msd, 'organ_masks', 'liver_1.nii.gz')
    assert info['label_scheme'] == 'totalseg_v2'
    assert info['tumor_values'] == (2,)
    assert info['tumor_label_map'] == {0: 'background', 1: 'liver', 2: 'cancer'}
    assert info['tumor_organ'] == 'liver'
    assert (info['report'], info['findings'], info['abnormalities'], info['status']) == \
        ('', {}, None, {})
    assert {i['split'] for i in infos} == {'train', 'val', 'test'}  # 1 each with 3 cases


def test_msd_pancreas_and_registry_build(tmp_path):
    root = make_tiny_msd(str(tmp_path / 'Task07_Pancreas'), task_organ='pancreas',
                         num_cases=3)
    ds = DATASETS.build(dict(type='MSDTumorDataset', data_root=root,
                             organ_mask_dir=osp.join(root, 'organ_masks'),
                             task_organ='pancreas', pipeline=PIPELINE))
    assert ds.get_data_info(0)['tumor_label_map'][1] == 'pancreas'
    sample = ds[0]['data_samples']
    case = int(sample.case_id.rsplit('_', 1)[1])
    assert int(sample.tumor_mask.sum()) == int(tiny_case(case)['tumor'].sum())


def test_kits_data_list_leaves_out_unlabelled_cases(kits, tmp_path):
    ds = KiTSTumorDataset(kits, pipeline=PIPELINE)
    assert sorted(ds.get_data_info(i)['case_id'] for i in range(len(ds))) == \
        ['case_00000', 'case_00001', 'case_00002']
    info = ds.get_data_info(0)
    assert set(info) == INFO_KEYS
    assert info['mask_path'] == osp.join(kits, info['case_id'], 'organ_mask.nii.gz')
    assert info['tumor_label_map'] == {0: 'background', 1: 'kidney', 2: 'tumor', 3: 'cyst'}
    assert info['tumor_organ'] == 'kidney'

    root = make_tiny_kits(str(tmp_path / 'kits'), num_cases=3, organ_mask_dir='masks')
    os.makedirs(osp.join(root, 'case_00009'))  # a test case: imaging only
    _save(np.zeros((16, 16, 16), np.int16), osp.join(root, 'case_00009', 'imaging.nii.gz'))
    ds = KiTSTumorDataset(root, organ_mask_dir='masks', pipeline=PIPELINE)
    assert len(ds) == 3
    assert ds.get_data_info(0)['mask_path'].startswith(osp.join(root, 'masks'))


# -- splits -------------------------------------------------------------------------------------
def test_split_cases_is_a_deterministic_partition():
    cases = [f'case_{i}' for i in range(50)]
    splits = split_cases(cases, seed=3, val_fraction=0.1, test_fraction=0.2)
    assert set(splits) == set(cases)
    counts = {s: sum(v == s for v in splits.values()) for s in ('train', 'val', 'test')}
    assert counts == {'train': 35, 'val': 5, 'test': 10}
    assert split_cases(reversed(cases), seed=3, val_fraction=0.1, test_fraction=0.2) == splits
    assert split_cases(cases, seed=4, val_fraction=0.1, test_fraction=0.2) != splits
    assert set(split_cases(cases, test_fraction=0.0, val_fraction=0.0).values()) == {'train'}


@pytest.mark.parametrize('layout', ['msd', 'kits'])
def test_splits_never_share_a_case(layout, tmp_path):
    if layout == 'msd':
        root = make_tiny_msd(str(tmp_path / 'msd'), num_cases=8, shape=(8, 8, 8))
        build = lambda **kw: MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE, **kw)  # noqa
    else:
        root = make_tiny_kits(str(tmp_path / 'kits'), num_cases=8, shape=(8, 8, 8))
        build = lambda **kw: KiTSTumorDataset(root, pipeline=PIPELINE, **kw)  # noqa
    cases = {}
    for split in ('train', 'val', 'test'):
        ds = build(split=split, split_seed=1, val_fraction=0.25, test_fraction=0.25)
        cases[split] = {ds.get_data_info(i)['case_id'] for i in range(len(ds))}
        assert all(ds.get_data_info(i)['split'] == split for i in range(len(ds)))
    assert sum(map(len, cases.values())) == 8
    assert not (cases['train'] & cases['val'] or cases['train'] & cases['test']
                or cases['val'] & cases['test'])
    assert len(cases['val']) == len(cases['test']) == 2
    again = build(split='test', split_seed=1, val_fraction=0.25, test_fraction=0.25)
    assert {again.get_data_info(i)['case_id'] for i in range(len(again))} == cases['test']


@pytest.mark.parametrize('kwargs', [dict(val_fraction=0.6, test_fraction=0.6),
                                    dict(val_fraction=-0.1), dict(test_fraction='0.2')])
def test_bad_fractions_are_config_errors(msd, kwargs):
    with pytest.raises(ConfigError, match='val_fraction'):
        MSDTumorDataset(msd, 'organ_masks', pipeline=PIPELINE, **kwargs)


# -- loading ------------------------------------------------------------------------------------
def test_msd_loaded_tumor_mask_is_binary_and_matches(msd):
    ds = MSDTumorDataset(msd, 'organ_masks', pipeline=PIPELINE)
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        voxels = tiny_case(int(sample.case_id.split('_')[1]))
        assert set(sample.tumor_mask.unique().tolist()) == {0, 1}
        assert torch.equal(sample.tumor_mask.bool(), torch.from_numpy(voxels['tumor']))
        assert set(sample.organ_label.unique().tolist()) == {0, 5}  # liver in totalseg_v1


@pytest.mark.parametrize('tumor_labels', [(2,), (2, 3)])
def test_kits_tumor_labels_select_the_tumor_and_optionally_cysts(kits, tumor_labels):
    pipeline = [dict(type='LoadCTStudy'), dict(type='SelectTumorLabels', values=tumor_labels),
                dict(type='PackCTInputs')]
    ds = KiTSTumorDataset(kits, tumor_labels=tumor_labels, pipeline=pipeline)
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        seg = tiny_case(int(sample.case_id.split('_')[1]), with_cyst=True)['segmentation']
        assert (seg == 3).any()
        assert set(sample.tumor_mask.unique().tolist()) == {0, 1}
        assert torch.equal(sample.tumor_mask.bool(), torch.from_numpy(np.isin(seg, tumor_labels)))


def test_cached_pipeline_works_and_is_checked(msd, tmp_path):
    cached = [dict(type='CachedPreprocess', transforms=LOAD, cache_dir=str(tmp_path / 'c')),
              dict(type='PackCTInputs')]
    ds = MSDTumorDataset(msd, 'organ_masks', pipeline=cached)
    first = ds[0]['data_samples'].tumor_mask
    assert torch.equal(ds[0]['data_samples'].tumor_mask, first)  # from the cache
    assert ds.pipeline.transforms[0].hits == 1
    loose = [dict(type='CachedPreprocess', transforms=[dict(type='LoadCTStudy')],
                  cache_dir=str(tmp_path / 'd')),
             dict(type='SelectTumorLabels', values=(2,)), dict(type='PackCTInputs')]
    with pytest.raises(ConfigError, match='SelectTumorLabels does not follow it'):
        MSDTumorDataset(msd, 'organ_masks', pipeline=loose)


# -- bad input: one clear line each ---------------------------------------------------------------
def test_pipeline_without_select_tumor_labels_is_refused(msd):
    with pytest.raises(ConfigError) as e:
        MSDTumorDataset(msd, 'organ_masks', pipeline=[dict(type='LoadCTStudy'),
                                                      dict(type='PackCTInputs')])
    assert "the organ too" in _one_line(e)
    assert "dict(type='SelectTumorLabels', values=(2,))" in str(e.value)
    with pytest.raises(ConfigError, match=r'values=\(3,\).*tumor labels are \(2,\)'):
        MSDTumorDataset(msd, 'organ_masks', pipeline=[
            dict(type='LoadCTStudy'), dict(type='SelectTumorLabels', values=3)])


def test_select_tumor_labels_after_a_spatial_transform_is_refused(msd):
    pipeline = [dict(type='LoadCTStudy'),
                dict(type='Spacingd', keys=['image', 'organ_label', 'tumor_mask'],
                     pixdim=(2, 2, 2), mode=('bilinear', 'nearest', 'nearest')),
                dict(type='SelectTumorLabels', values=(2,))]
    # build-time check: SelectTumorLabels must follow LoadCTStudy
    with pytest.raises(ConfigError, match='does not follow'):
        MSDTumorDataset(msd, 'organ_masks', pipeline=pipeline)
    # an item-time check for pipelines run outside these datasets
    ds = MSDTumorDataset(msd, 'organ_masks', pipeline=[])
    results = ds.get_data_info(0)
    for t in pipeline:
        from ctglip.registry import TRANSFORMS
        t = TRANSFORMS.build(t)
        if type(t).__name__ == 'SelectTumorLabels':
            with pytest.raises(ConfigError) as e:
                t(results)
            assert 'put SelectTumorLabels right after LoadCTStudy' in _one_line(e)
        else:
            results = t(results)


def test_missing_organ_mask_gives_the_totalsegmentator_command(tmp_path):
    root = make_tiny_msd(str(tmp_path / 'Task03_Liver'), num_cases=3)
    os.remove(osp.join(root, 'organ_masks', 'liver_1.nii.gz'))
    os.remove(osp.join(root, 'organ_masks', 'liver_2.nii.gz'))
    with pytest.raises(DataError) as e:
        MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE)
    message = _one_line(e)
    image = osp.join(root, 'imagesTr', 'liver_1.nii.gz')
    mask = osp.join(root, 'organ_masks', 'liver_1.nii.gz')
    assert f'TotalSegmentator -i {image} -o {mask} --ml' in message
    assert '1 more cases' in message
    ds = MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE, skip_invalid=True)
    assert len(ds) == 1 and ds.skipped['missing organ mask'] == 2


def test_kits_missing_organ_mask_command_points_into_the_case_folder(tmp_path):
    root = make_tiny_kits(str(tmp_path / 'kits'), num_cases=2)
    os.remove(osp.join(root, 'case_00001', 'organ_mask.nii.gz'))
    with pytest.raises(DataError) as e:
        KiTSTumorDataset(root, pipeline=PIPELINE)
    case = osp.join(root, 'case_00001')
    assert (f'TotalSegmentator -i {case}/imaging.nii.gz -o {case}/organ_mask.nii.gz --ml'
            in _one_line(e))


def test_label_value_outside_the_label_map_names_the_file(tmp_path):
    root = make_tiny_msd(str(tmp_path / 'Task03_Liver'), num_cases=3)
    path = osp.join(root, 'labelsTr', 'liver_0.nii.gz')
    seg = np.asarray(nib.load(path).dataobj).copy()
    seg[0, 0, 0] = 5
    _save(seg, path)
    ds = MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE)
    index = next(i for i in range(3) if ds.get_data_info(i)['case_id'] == 'liver_0')
    with pytest.raises(DataError) as e:
        ds[index]
    message = _one_line(e)
    assert path in message and '[5]' in message
    assert "{0: 'background', 1: 'liver', 2: 'cancer'}" in message


def test_dataset_json_of_another_task_is_refused(msd):
    with pytest.raises(DataError) as e:
        MSDTumorDataset(msd, 'organ_masks', task_organ='pancreas', pipeline=PIPELINE)
    message = _one_line(e)
    assert 'dataset.json: field "labels"' in message and 'Task07_Pancreas' in message
    with pytest.raises(ConfigError, match="task_organ='colon'"):
        MSDTumorDataset(msd, 'organ_masks', task_organ='colon')


def test_broken_dataset_json_and_missing_files(tmp_path):
    root = make_tiny_msd(str(tmp_path / 'Task03_Liver'), num_cases=3)
    index = osp.join(root, 'dataset.json')
    meta = json.load(open(index))
    meta['training'].append({'image': './imagesTr/liver_9.nii.gz',
                             'label': './labelsTr/liver_9.nii.gz'})
    json.dump(meta, open(index, 'w'))
    with pytest.raises(DataError) as e:
        MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE)
    assert 'training[3]' in _one_line(e) and 'liver_9.nii.gz does not exist' in str(e.value)
    open(index, 'w').write('{"labels": ')
    with pytest.raises(DataError, match='dataset.json is not valid JSON'):
        MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE)
    os.remove(index)
    with pytest.raises(DataError, match='no dataset.json'):
        MSDTumorDataset(root, 'organ_masks', pipeline=PIPELINE)


def test_tumor_mask_on_another_grid_is_refused(tmp_path):
    root = make_tiny_kits(str(tmp_path / 'kits'), num_cases=1)
    path = osp.join(root, 'case_00000', 'segmentation.nii.gz')
    _save(np.zeros((16, 16, 15), np.uint8), path)
    ds = KiTSTumorDataset(root, pipeline=PIPELINE, val_fraction=0, test_fraction=0)
    with pytest.raises(DataError) as e:
        ds[0]
    message = _one_line(e)
    assert f'tumor_mask {path} has shape (16, 16, 15)' in message
    assert 'image shape (16, 16, 16)' in message


def test_kits_bad_arguments_and_layout(tmp_path):
    with pytest.raises(ConfigError, match=r'include \[4\]'):
        KiTSTumorDataset(str(tmp_path), tumor_labels=(2, 4))
    with pytest.raises(ConfigError, match='positive integers'):
        KiTSTumorDataset(str(tmp_path), tumor_labels=(0,))
    with pytest.raises(DataError, match='no case_XXXXX folders'):
        KiTSTumorDataset(str(tmp_path), pipeline=PIPELINE)
    with pytest.raises(ConfigError, match="does not take 'phantom'"):
        KiTSTumorDataset(str(tmp_path), phantom=dict(num_cases=2))
