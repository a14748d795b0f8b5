"""tools/analysis_tools/tumor_errors.py on hand-made predictions of the tiny tumor dataset:
false-positive components located by organ, and the what-if post-processing table."""
import json
import os
import os.path as osp
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO
from ctglip.testing.tumor_data import make_tiny_tumor_dataset

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import tumor_errors  # noqa: E402

CONFIG = 'configs/tests/tiny_finetune_scratch.py'
LIVER, TUMOR_ORGAN_LABELS = 5, (2, 3, 5, 10)  # totalseg_v1: kidneys, liver, pancreas


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_tumor_dataset(str(tmp_path_factory.mktemp('tumor') / 'tiny_tumor'))


def write_pred(root, out, case, mask):
    ct = nib.load(osp.join(root, 'images', f'{case}.nii.gz'))
    os.makedirs(osp.join(out, case), exist_ok=True)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), ct.affine),
             osp.join(out, case, 'tumor_mask.nii.gz'))


def labels_of(root, case):
    return np.asarray(nib.load(osp.join(root, 'masks', f'{case}.nii.gz')).dataobj)


def far_from(labels, wanted, avoid, distance=3):
    """A voxel where ``wanted`` holds (a bool volume) at least ``distance`` voxels from
    ``avoid``."""
    from scipy import ndimage
    near = ndimage.binary_dilation(avoid, np.ones((3, 3, 3), bool), distance)
    return tuple(np.argwhere(wanted & ~near)[0])


def test_false_positives_are_located_and_the_rules_scored(data, tmp_path, capsys):
    out = str(tmp_path / 'preds')
    # tiny_003 (a liver tumor): the truth plus one stray voxel outside every organ
    truth = np.asarray(nib.load(osp.join(data, 'tumor_masks', 'tiny_003.nii.gz')).dataobj) > 0
    labels = labels_of(data, 'tiny_003')
    pred = truth.copy()
    pred[far_from(labels, labels == 0, labels > 0)] = True
    write_pred(data, out, 'tiny_003', pred)
    # tiny_007 (tumor free): a 3-voxel component in the liver, one voxel in another organ
    labels = labels_of(data, 'tiny_007')
    x, y, z = far_from(labels, labels == LIVER, labels != LIVER, distance=1)
    pred = np.zeros(labels.shape, bool)
    pred[x, y, z - 1:z + 2] = True
    other = (labels > 0) & ~np.isin(labels, TUMOR_ORGAN_LABELS)
    pred[far_from(labels, other, np.isin(labels, TUMOR_ORGAN_LABELS) | pred)] = True
    write_pred(data, out, 'tiny_007', pred)

    report_path = str(tmp_path / 'report.json')
    assert tumor_errors.main([CONFIG, out, '--data-root', data, '--min-voxels', '0', '2', '4',
                              '--dilate', '0', '--json', report_path]) == 0
    report = json.loads(open(report_path).read())
    table = capsys.readouterr().out
    assert '| outside every organ | 1 | 1 |' in table
    assert '| components >= 4 voxels, inside a tumor organ | 100.0 | 100.0 | 1 | 0.0 % |' in table
    assert report['studies'] == 2 and report['tumor_free_studies'] == 1
    assert report['false_positive_components'] == 3
    assert report['studies_with_false_positives'] == 2
    where = report['by_location']
    assert where['outside every organ'] == dict(components=1, voxels=1)
    assert where['tumor organ: liver'] == dict(components=1, voxels=3)
    assert sum(v['components'] for k, v in where.items() if k.startswith('other organ')) == 1

    n = int(truth.sum())
    rules = {(r['min_voxels'], r['dilate']): r for r in report['rules']}
    as_tested = rules[(0, None)]  # tiny_003: 2n / (2n + 1); tiny_007: 0
    assert as_tested['dice'] == pytest.approx(100 * (2 * n / (2 * n + 1)) / 2)
    assert as_tested['dice_tumor_studies'] == pytest.approx(100 * 2 * n / (2 * n + 1))
    assert as_tested['tumor_free_empty'] == 0 and as_tested['true_positive_lost'] == 0
    # single voxels gone: tiny_003 perfect, tiny_007 keeps its 3-voxel component
    assert rules[(2, None)]['dice'] == pytest.approx(50.0)
    # within the tumor organs only: the stray voxels go, the liver component stays
    assert rules[(0, 0)]['dice_tumor_studies'] == pytest.approx(100.0)
    assert rules[(0, 0)]['tumor_free_empty'] == 0
    # both: every false positive gone, and (the tumor has more than 4 voxels) no true one
    assert n >= 4
    assert rules[(4, 0)]['dice'] == pytest.approx(100.0)
    assert rules[(4, 0)]['tumor_free_empty'] == 1
    assert rules[(4, 0)]['true_positive_lost'] == 0


def test_a_missing_prediction_names_the_case_and_the_fix(data, tmp_path, capsys):
    out = tmp_path / 'empty'
    out.mkdir()
    assert tumor_errors.main([CONFIG, str(out), '--data-root', data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:')
    assert 'tiny_003' in err[0] and 'Fix:' in err[0]
