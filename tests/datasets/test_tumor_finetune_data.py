"""Fine-tuning data: TumorManifestDataset, the tumor transforms, and what PackCTInputs carries."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from ctglip.datasets import TumorManifestDataset
from ctglip.registry import TRANSFORMS
from ctglip.testing.tumor_data import TUMOR_ORGANS, make_tiny_tumor_dataset
from ctglip.utils.errors import ConfigError, DataError

TINY = osp.join(REPO, 'configs', 'tests', 'tiny_finetune_scratch.py')


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(TINY)


@pytest.fixture(scope='module')
def tumor_data(tmp_path_factory):
    return make_tiny_tumor_dataset(str(tmp_path_factory.mktemp('tumor') / 'tiny_tumor'))


def rows(root):
    with open(osp.join(root, 'manifest.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_studies_without_tumor_mask_stop_a_fine_tune_split(tumor_data, cfg):
    with pytest.raises(DataError) as e:
        TumorManifestDataset(tumor_data, split='val', pipeline=cfg.test_pipeline)
    message = str(e.value)
    assert '\n' not in message
    assert "manifest.jsonl line 3 (case 'tiny_002')" in message and 'no "tumor_mask"' in message
    assert 'Fix:' in message
    # skip_invalid counts and drops it; a split whose studies all have masks is fine
    ds = TumorManifestDataset(tumor_data, split='val', pipeline=cfg.test_pipeline,
                              skip_invalid=True)
    assert len(ds) == 1 and ds.skipped['bad manifest line'] == 1


def test_tumor_free_policy_gives_empty_masks(tumor_data, cfg):
    ds = TumorManifestDataset(tumor_data, split='test', pipeline=cfg.test_pipeline,
                              missing_tumor_mask='tumor_free', test_mode=True)
    by_case = {ds[i]['data_samples'].case_id: ds[i]['data_samples'] for i in range(len(ds))}
    free, sick = by_case['tiny_007'], by_case['tiny_003']
    assert int(free.tumor_mask.sum()) == 0 and int(sick.tumor_mask.sum()) > 0
    assert free.tumor_labels == {'liver': 0, 'pancreas': 0, 'kidney_left': 0,
                                 'kidney_right': 0}
    assert sick.tumor_labels['liver'] == 1 and sick.tumor_labels['kidney_left'] == 0
    info = ds.get_data_info([ds.get_data_info(i)['case_id'] for i in range(len(ds))].index(
        'tiny_007'))
    assert info['tumor_free'] and info['tumor_path'] is None


def test_tumor_free_policy_refuses_a_listed_tumor_without_mask(tumor_data, cfg, tmp_path):
    import shutil
    root = str(tmp_path / 'd')
    shutil.copytree(tumor_data, root)
    lines = rows(root)
    lines[7]['abnormalities'] = {'liver': ['liver mass']}
    with open(osp.join(root, 'manifest.jsonl'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in lines)
    with pytest.raises(DataError, match='list liver mass but it has no "tumor_mask"'):
        TumorManifestDataset(root, split='test', pipeline=cfg.test_pipeline,
                             missing_tumor_mask='tumor_free')


def test_pipeline_must_select_tumor_labels(tumor_data):
    with pytest.raises(ConfigError, match='SelectTumorLabels does not follow it'):
        TumorManifestDataset(tumor_data, pipeline=[dict(type='LoadCTStudy'),
                                                   dict(type='PackCTInputs')])
    with pytest.raises(ConfigError, match=r"tumor labels are \(1,\)"):
        TumorManifestDataset(tumor_data, pipeline=[dict(type='LoadCTStudy'),
                                                   dict(type='SelectTumorLabels', values=2)])
    with pytest.raises(ConfigError, match='missing_tumor_mask'):
        TumorManifestDataset(tumor_data, missing_tumor_mask='maybe')


def test_affine_travels_through_cache_crop_and_packing(tumor_data, tmp_path):
    """RecordAffine's affine survives the cache; a crop moves its origin; PackCTInputs packs it
    with the volume's shape."""
    import nibabel as nib
    load = [dict(type='CachedPreprocess', cache_dir=str(tmp_path / 'cache'), transforms=[
        dict(type='LoadCTStudy'), dict(type='SelectTumorLabels', values=(1,)),
        dict(type='Spacingd', keys=['image', 'organ_label', 'tumor_mask'], pixdim=(8, 8, 8),
             mode=('bilinear', 'nearest', 'nearest')),
        dict(type='RecordAffine')])]
    crop = dict(type='RandTumorCrop', spatial_size=(8, 8, 8), tumor_prob=1.0)
    pipeline = load + [crop, dict(type='PackCTInputs')]
    for attempt in ('miss', 'hit'):
        ds = TumorManifestDataset(tumor_data, split='train', pipeline=pipeline,
                                  missing_tumor_mask='tumor_free')
        i = [ds.get_data_info(k)['case_id'] for k in range(len(ds))].index('tiny_001')
        np.random.seed(0)
        packed = ds[i]['data_samples']
        assert packed.img_shape == (8, 8, 8)
        assert int(packed.tumor_mask.sum()) > 0  # centred on the tumor
        # the crop's voxel 0 is where the affine says: check against the file's world
        img = nib.load(osp.join(tumor_data, 'images', 'tiny_001.nii.gz'))
        whole = ds.pipeline.transforms[0](dict(ds.get_data_info(i)))
        start = np.linalg.solve(whole['image_affine'], packed.affine)[:3, 3]
        assert np.allclose(start, np.round(start)) and (start >= 0).all()
        assert np.allclose(packed.affine[:3, :3], np.diag([8.0, 8.0, 8.0]))
        # the recorded affine places the resampled labels where the file has them
        labels = whole['organ_label'][0].numpy()
        original = np.asarray(nib.load(osp.join(tumor_data, 'masks', 'tiny_001.nii.gz')).dataobj)
        voxels = np.argwhere(labels > 0)
        world = voxels @ whole['image_affine'][:3, :3].T + whole['image_affine'][:3, 3]
        index = np.rint((world - img.affine[:3, 3]) @ np.linalg.inv(img.affine[:3, :3]).T)
        index = np.clip(index.astype(int), 0, np.array(original.shape) - 1)
        agree = labels[tuple(voxels.T)] == original[tuple(index.T)]
        assert agree.mean() > 0.9, agree.mean()
    assert ds.pipeline.transforms[0].hits >= 1


def test_tumor_organ_labels_and_crop():
    label = torch.zeros(1, 12, 12, 12, dtype=torch.long)
    label[0, :6] = 5   # liver
    label[0, 6:, :4] = 10  # pancreas
    tumor = torch.zeros_like(label)
    tumor[0, 1:3, 1:3, 1:3] = 1
    results = dict(organ_label=label, tumor_mask=tumor, image=torch.rand(1, 12, 12, 12))
    out = TRANSFORMS.build(dict(type='TumorOrganLabels'))(dict(results))
    assert out['tumor_labels'] == {'liver': 1, 'pancreas': 0}  # no kidney in view: no label
    out = TRANSFORMS.build(dict(type='TumorOrganLabels', min_voxels=9))(dict(results))
    assert out['tumor_labels']['liver'] == 0
    with pytest.raises(DataError, match='needs a tumor_mask'):
        TRANSFORMS.build(dict(type='TumorOrganLabels'))(dict(organ_label=label))
    crop = TRANSFORMS.build(dict(type='RandTumorCrop', spatial_size=(4, 4, 4), tumor_prob=1.0))
    for seed in range(5):
        np.random.seed(seed)
        assert int(crop(dict(results))['tumor_mask'].sum()) > 0
    crop = TRANSFORMS.build(dict(type='RandTumorCrop', spatial_size=(4, 4, 4), tumor_prob=0.0,
                                 organs=['pancreas']))
    for seed in range(5):
        np.random.seed(seed)
        assert bool((crop(dict(results))['organ_label'] == 10).any())
    with pytest.raises(ConfigError, match='not in the organ vocabulary'):
        TRANSFORMS.build(dict(type='RandTumorCrop', spatial_size=(4, 4, 4), organs=['livr']))


def test_record_affine_needs_a_meta_tensor():
    with pytest.raises(ConfigError, match='RecordAffine'):
        TRANSFORMS.build(dict(type='RecordAffine'))(dict(image=torch.zeros(1, 4, 4, 4)))


def test_tiny_tumor_dataset_layout(tumor_data):
    lines = rows(tumor_data)
    assert [bool(r.get('tumor_mask')) for r in lines] == [i in TUMOR_ORGANS for i in range(8)]
    full = make_tiny_tumor_dataset(osp.join(osp.dirname(tumor_data), 'full'),
                                   masks_for_tumor_free=True)
    assert all(r.get('tumor_mask') for r in rows(full))
