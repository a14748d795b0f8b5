"""The preprocessing cache: hits equal fresh results, settings invalidate, writes are atomic."""
import glob
import multiprocessing as mp
import os.path as osp

import numpy as np
import pytest

from ctglip.datasets import CTReportDataset
from ctglip.utils.errors import DataError


def cached_pipeline(spacing=4.0):
    return [dict(type='CachedPreprocess', cache_dir='.cache/pre', transforms=[
        dict(type='LoadCTStudy'),
        dict(type='Spacingd', keys=['image', 'organ_label'], pixdim=(spacing,) * 3,
             mode=('bilinear', 'nearest')),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=-1000.0, a_max=1000.0,
             b_min=0.0, b_max=1.0, clip=True)]), dict(type='PackCTInputs')]


@pytest.fixture
def data(tiny_data, tmp_path):
    import shutil
    return shutil.copytree(tiny_data, tmp_path / 'd')


def test_hit_equals_fresh_result(data):
    ds = CTReportDataset(str(data), split='train', pipeline=cached_pipeline())
    cache = ds.pipeline.transforms[0]
    fresh = ds[0]
    hit = ds[0]
    assert (cache.misses, cache.hits) == (1, 1)
    assert np.allclose(fresh['inputs'], hit['inputs'], atol=1e-3)  # float16 storage
    assert (fresh['data_samples'].organ_label == hit['data_samples'].organ_label).all()
    assert cache.cache_dir == osp.join(str(data), '.cache/pre')  # inside the dataset folder


def test_changed_settings_or_files_rebuild(data):
    CTReportDataset(str(data), split='train', pipeline=cached_pipeline())[0]
    other = CTReportDataset(str(data), split='train', pipeline=cached_pipeline(spacing=8.0))
    other[0]
    assert other.pipeline.transforms[0].misses == 1
    assert len(glob.glob(osp.join(str(data), '.cache/pre/*.npz'))) == 2


def test_corrupt_entry_names_the_file_and_fix(data):
    ds = CTReportDataset(str(data), split='train', pipeline=cached_pipeline())
    ds[0]
    entry = glob.glob(osp.join(str(data), '.cache/pre/*.npz'))[0]
    with open(entry, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(DataError, match='delete it'):
        ds[0]


def _fill(root):
    ds = CTReportDataset(root, split=None, pipeline=cached_pipeline())
    for i in range(len(ds)):
        ds[i]


def test_two_processes_filling_at_once_leave_only_complete_entries(data):
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_fill, args=(str(data),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    entries = glob.glob(osp.join(str(data), '.cache/pre/*'))
    assert len(entries) == 8 and all(e.endswith('.npz') for e in entries)
    ds = CTReportDataset(str(data), split=None, pipeline=cached_pipeline())
    for i in range(8):
        ds[i]
    assert ds.pipeline.transforms[0].hits == 8
