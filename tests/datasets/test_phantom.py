"""Tests of the phantom CT generator (``ctglip.datasets.phantom``) and ``tools/make_phantoms.py``.

All datasets here use the tiny configuration (8 mm voxels, a handful of studies) so that the
whole file runs in seconds.
"""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from ctglip.datasets.organs import ABNORMALITIES, ORGAN_GROUPS, organ_group, organ_vocabulary
from ctglip.datasets.phantom import (FIELDS_OF_VIEW, StudyPlan, make_phantom_dataset, plan_dataset,
                                     render_study)
from ctglip.datasets.phantom import dataset as phantom_dataset
from ctglip.datasets.phantom.generator import patient_seed
from ctglip.utils.errors import ConfigError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ORGANS = organ_vocabulary('totalseg_v1')
LABEL = {name: i + 1 for i, name in enumerate(ORGANS)}
FIELDS = {'case_id', 'patient_id', 'split', 'image', 'organ_mask', 'label_scheme', 'report',
          'findings', 'abnormalities'}
TUMOR_ORGANS = ('liver', 'kidney_left', 'kidney_right', 'pancreas')
TINY = dict(num_cases=6, seed=0, spacing=8.0, progress=False)


PAIRS = (('kidney_right', 'kidney_left'), ('liver', 'spleen'),
         ('lung_middle_lobe_right', 'heart_ventricle_left'), ('femur_right', 'femur_left'),
         ('rib_right_8', 'rib_left_8'), ('iliopsoas_right', 'iliopsoas_left'))  # (right, left)


def _plan(seed, index, spacing, **kw):
    """A study of patient ``index``; fields of view and finding rates forced through ``kw``."""
    return StudyPlan(f'case{index}', f'patient{index}', patient_seed(seed, index), (seed, 1, index),
                     (spacing, ) * 3, **kw)


def _rows(root):
    with open(osp.join(root, 'manifest.jsonl')) as f:
        return [json.loads(line) for line in f]


def _load(root, rel):
    img = nib.load(osp.join(root, rel))
    return np.asarray(img.dataobj), img


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Six ordinary studies, rendered in this process."""
    root = str(tmp_path_factory.mktemp('phantom_tiny'))
    make_phantom_dataset(root, num_workers=0, **TINY)
    return root


@pytest.fixture(scope='module')
def sick(tmp_path_factory):
    """Chest-abdomen-pelvis studies where nearly every abnormality is present."""
    root = str(tmp_path_factory.mktemp('phantom_sick'))
    make_phantom_dataset(root, num_cases=5, seed=3, spacing=6.0, num_workers=0, progress=False,
                         abnormal_rate=20.0, fov='chest_abdomen_pelvis')
    return root


def test_manifest_fields(tiny):
    rows = _rows(tiny)
    assert len(rows) == 6
    assert len({r['case_id'] for r in rows}) == 6
    for r in rows:
        assert FIELDS <= set(r), set(FIELDS) - set(r)
        assert r['label_scheme'] == 'totalseg_v1'
        assert r['split'] in ('train', 'val', 'test')
        assert r['image'] == f"images/{r['case_id']}.nii.gz"
        assert r['organ_mask'] == f"organ_masks/{r['case_id']}.nii.gz"
        assert 'FINDINGS:' in r['report'] and 'IMPRESSION:' in r['report']
        assert r['findings'] and all(o in LABEL for o in r['findings'])
        for organ, sentences in r['findings'].items():
            assert sentences and all(isinstance(s, str) and s in r['report'] for s in sentences)
        for organ, names in r['abnormalities'].items():
            group = organ_group(organ)
            assert group is not None, organ
            assert names and set(names) <= set(ABNORMALITIES[group]), (organ, names)
            assert organ in r['findings'], f'abnormal {organ} is not mentioned in the report'
        if 'tumor_mask' in r:
            assert r['tumor_mask'] == f"tumor_masks/{r['case_id']}.nii.gz"
    for name in ('stats.json', 'README.txt'):
        assert osp.isfile(osp.join(tiny, name))
    stats = json.load(open(osp.join(tiny, 'stats.json')))
    for key in ('organ_frequency', 'abnormality_counts', 'report_words', 'finding_voxel_share'):
        assert key in stats
    assert set(stats['organ_frequency']) == set(ORGANS)


def test_files_load_with_matching_grids(tiny):
    for r in _rows(tiny):
        image, img = _load(tiny, r['image'])
        mask, msk = _load(tiny, r['organ_mask'])
        assert image.dtype == np.int16 and mask.dtype == np.uint8
        assert image.shape == mask.shape and image.shape[:2] == (56, 44)
        assert np.allclose(img.affine, msk.affine)
        assert nib.aff2axcodes(img.affine) == ('R', 'A', 'S')
        assert np.allclose(np.diag(img.affine)[:3], 8.0)
        assert 0 <= mask.min() and mask.max() <= 104
        assert -1024 <= image.min() and image.max() <= 3071
        assert (image[mask == 0] < -900).mean() > 0.3  # air around the body
        if 'tumor_mask' in r:
            tumor, tum = _load(tiny, r['tumor_mask'])
            assert tumor.shape == image.shape and np.allclose(tum.affine, img.affine)


def test_same_seed_same_files_for_any_worker_count(tiny, tmp_path):
    """Two worker processes in another interpreter (other hash seed) write the same bytes."""
    other = str(tmp_path / 'two_workers')
    env = dict(os.environ, PYTHONHASHSEED='12345', PYTHONPATH=ROOT)
    subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'make_phantoms.py'), other,
                    '--num-cases', '6', '--seed', '0', '--workers', '2', '--spacing', '8',
                    '--no-progress'], check=True, env=env, capture_output=True)
    cmp = filecmp.dircmp(tiny, other)
    assert not cmp.left_only and not cmp.right_only
    for sub in ('', 'images', 'organ_masks', 'tumor_masks'):
        for name in sorted(os.listdir(osp.join(tiny, sub))):
            path = osp.join(tiny, sub, name)
            if osp.isfile(path):
                assert filecmp.cmp(path, osp.join(other, sub, name), shallow=False), name


def test_another_seed_other_data(tiny, tmp_path):
    other = str(tmp_path / 'seed1')
    make_phantom_dataset(other, num_workers=0, **dict(TINY, seed=1, num_cases=2))
    a, b = _rows(tiny)[0], _rows(other)[0]
    same_image = filecmp.cmp(osp.join(tiny, a['image']), osp.join(other, b['image']), shallow=False)
    assert a['report'] != b['report'] or not same_image


def _centroid_x(mask, affine, label):
    idx = np.argwhere(mask == label)
    return nib.affines.apply_affine(affine, idx.mean(0))[0]


def test_left_right_in_world_coordinates(sick):
    """RAS+: +x is the patient's right, as in NIfTI/nibabel and TotalSegmentator output."""
    checked = 0
    for r in _rows(sick):
        mask, img = _load(sick, r['organ_mask'])
        present = set(np.unique(mask))
        for right, left in PAIRS:
            if LABEL[right] in present and LABEL[left] in present:
                x_right = _centroid_x(mask, img.affine, LABEL[right])
                assert x_right > _centroid_x(mask, img.affine, LABEL[left]) + 20, (right, left)
                checked += 1
    assert checked >= 10


def test_left_right_matches_real_totalsegmentator_sample():
    """The phantom's convention is the one of real TotalSegmentator label maps."""
    path = '/work/shared/data/totalsegmentator/seg_total_v2.nii.gz'
    if not osp.exists(path):
        pytest.skip('real TotalSegmentator sample not available')
    from ctglip.datasets.organs import scheme_classes
    img = nib.load(path)
    seg = np.asarray(img.dataobj)
    v2 = {name: label for label, name in scheme_classes('totalseg_v2').items()}
    x = {name: _centroid_x(seg, img.affine, v2[name])
         for name in ('kidney_right', 'kidney_left', 'liver', 'spleen')}
    assert x['kidney_right'] > x['kidney_left'] and x['liver'] > x['spleen']


def test_vertebrae_and_ribs_in_anatomical_order(sick):
    for r in _rows(sick)[:2]:
        mask, img = _load(sick, r['organ_mask'])
        zs = {}
        for name in ('vertebrae_L5', 'vertebrae_L3', 'vertebrae_L1', 'vertebrae_T10',
                     'vertebrae_T6', 'vertebrae_T2'):
            if (mask == LABEL[name]).any():
                centre = np.argwhere(mask == LABEL[name]).mean(0)
                zs[name] = nib.affines.apply_affine(img.affine, centre)[2]
        names = list(zs)
        assert len(names) >= 4
        assert all(zs[a] < zs[b] for a, b in zip(names[:-1], names[1:])), zs


def test_abnormal_organs_show_their_signature(sick):
    rows = _rows(sick)
    seen = set()
    for r in rows:
        image, _ = _load(sick, r['image'])
        mask, _ = _load(sick, r['organ_mask'])
        for organ, names in r['abnormalities'].items():
            hu = image[mask == LABEL[organ]]
            for name in names:
                seen.add(name)
                if name == 'kidney stone':
                    assert hu.max() > 300, (r['case_id'], organ)
                elif name in ('gallstone', 'liver calcification'):
                    assert hu.max() > 200, (r['case_id'], organ, name)
                elif name == 'emphysema':
                    assert (hu < -950).mean() > 0.01, (r['case_id'], organ)
    assert {'kidney stone', 'gallstone', 'emphysema', 'liver cyst', 'lung nodule'} <= seen


@pytest.mark.parametrize('spacing', [6.0])
def test_findings_change_the_image_against_a_healthy_twin(spacing):
    """The same study without findings: each diffuse finding moves its organ as expected."""
    seen = set()
    for i in range(3):
        plan = _plan(5, i, spacing, abnormal_rate=20.0, fov='abdomen')
        sick = render_study(plan)
        healthy = render_study(StudyPlan(**dict(plan.__dict__, abnormal_rate=0.0)))
        assert not healthy['abnormalities']
        assert sick['meta']['phase'] == healthy['meta']['phase']
        for organ, names in sick['abnormalities'].items():
            lab = LABEL[organ]
            s = sick['image'][sick['organ_mask'] == lab]
            h = healthy['image'][healthy['organ_mask'] == lab]
            for name in names:
                seen.add(name)
                if name == 'hepatic steatosis':
                    assert np.median(s) < np.median(h) - 8
                elif name == 'splenomegaly':
                    assert len(s) > 1.15 * len(h)
                elif name == 'hydronephrosis':
                    assert ((s > -20) & (s < 40)).sum() > ((h > -20) & (h < 40)).sum()
    assert {'hepatic steatosis', 'splenomegaly'} <= seen


def test_focal_lesions_have_their_signature():
    seen = set()
    for i in range(4):
        out = render_study(_plan(7, i, 6.0, abnormal_rate=20.0, fov='chest_abdomen_pelvis'))
        image, mask = out['image'], out['organ_mask']
        for les in out['meta']['lesions']:
            idx = tuple(les['index'].T)
            hu = image[idx]
            assert (mask[idx] == LABEL[les['organ']]).all(), les['name']
            name = les['name']
            seen.add(name)
            if name in ('liver cyst', 'kidney cyst', 'splenic cyst') and les['diameter_mm'] >= 18:
                assert -40 < les['lesion_hu'] < 45, les  # near water
                fatty = 'hepatic steatosis' in out['abnormalities'].get(les['organ'], [])
                if out['meta']['phase'] != 'non-contrast' and not fatty:  # enhancing tissue around
                    assert les['lesion_hu'] < les['organ_hu'] - 20, les
            elif name in ('kidney stone', 'liver calcification', 'aortic calcification'):
                assert hu.max() > 300, les
            elif name == 'gallstone':
                assert hu.max() > 200, les  # bile is about 10 HU
            elif name == 'lung nodule':
                assert les['lesion_hu'] > les['organ_hu'] + 150, les  # ground-glass nodules too
    assert {'liver cyst', 'kidney stone', 'lung nodule'} <= seen


def test_reports_mention_only_organs_in_view(tiny, sick):
    for root in (tiny, sick):
        for r in _rows(root):
            mask, _ = _load(root, r['organ_mask'])
            present = {ORGANS[i - 1] for i in np.unique(mask) if i}
            assert set(r['findings']) <= present, set(r['findings']) - present
            assert set(r['abnormalities']) <= present


def test_head_study_mentions_no_abdomen():
    out = render_study(_plan(0, 9, 8.0, abnormal_rate=20.0, fov='head_neck'))
    assert 'brain' in out['findings']
    for organ in ('liver', 'kidney_left', 'spleen', 'urinary_bladder'):
        assert organ not in out['findings'] and organ not in out['abnormalities']
    assert 'liver' not in out['report'] and 'kidney' not in out['report']


def test_splits_never_share_a_patient(tiny):
    rows = _rows(tiny)
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r['patient_id'], r['split']) == r['split']
    plans = plan_dataset(200, seed=0)
    split_of = {}
    for plan, split in plans:
        assert split_of.setdefault(plan.patient_id, split) == split
    counts = {s: sum(v == s for v in split_of.values()) for s in ('train', 'val', 'test')}
    n = len(split_of)
    assert abs(counts['train'] / n - 0.70) < 0.03 and abs(counts['val'] / n - 0.15) < 0.03
    assert len(split_of) < 200  # some patients have follow-up studies


def test_tumor_masks_lie_inside_their_organ(sick):
    rows = _rows(sick)
    with_tumor = 0
    for r in rows:
        names = str(r['abnormalities'])
        reported = 'liver mass' in names or 'pancreatic mass' in names
        if 'tumor_mask' not in r:
            assert not reported
            continue
        with_tumor += 1
        tumor, _ = _load(sick, r['tumor_mask'])
        mask, _ = _load(sick, r['organ_mask'])
        assert tumor.dtype == np.uint8 and set(np.unique(tumor)) <= {0, 1} and tumor.any()
        assert np.isin(mask[tumor > 0], [LABEL[o] for o in TUMOR_ORGANS]).all()
    assert with_tumor >= 3


def test_every_organ_appears_in_some_field_of_view():
    present = set()
    for i, fov in enumerate(FIELDS_OF_VIEW):
        out = render_study(_plan(2, i, 8.0, abnormal_rate=0.0, fov=fov))
        present.update(out['meta']['present'])
    assert present == set(ORGANS), set(ORGANS) - present


def test_abnormality_groups_match_the_vocabulary():
    assert set(ORGAN_GROUPS) == set(ABNORMALITIES)
    from ctglip.datasets.phantom.findings import FINDING_RATES, VOCAB
    assert VOCAB <= set(FINDING_RATES)


def test_crash_leaves_no_manifest(tmp_path, monkeypatch):
    root = str(tmp_path / 'crash')
    make_phantom_dataset(root, num_workers=0, **dict(TINY, num_cases=1))
    assert osp.exists(osp.join(root, 'manifest.jsonl'))
    calls = []

    def boom(job):
        calls.append(job)
        if len(calls) == 2:
            raise RuntimeError('disk full')
        return original(job)
    original = phantom_dataset._generate
    monkeypatch.setattr(phantom_dataset, '_generate', boom)
    with pytest.raises(RuntimeError, match='disk full'):
        make_phantom_dataset(root, num_workers=0, **dict(TINY, num_cases=3))
    assert not osp.exists(osp.join(root, 'manifest.jsonl'))


def test_bad_options_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match='spacing'):
        make_phantom_dataset(str(tmp_path), num_cases=1, spacing=-1, progress=False)
    with pytest.raises(ConfigError, match='unknown option'):
        make_phantom_dataset(str(tmp_path), num_cases=1, spacng=4, progress=False)
    with pytest.raises(ConfigError, match='field of view'):
        make_phantom_dataset(str(tmp_path), num_cases=1, fov='knee', progress=False)
    with pytest.raises(ConfigError, match='num_cases'):
        make_phantom_dataset(str(tmp_path), num_cases=0, progress=False)
    with pytest.raises(ConfigError, match="profile='hard' is unknown"):
        make_phantom_dataset(str(tmp_path), num_cases=1, profile='hard', progress=False)


def _findings(profile, seeds=range(40)):
    from ctglip.datasets.phantom.anatomy import build_body
    from ctglip.datasets.phantom.findings import sample_findings
    out = []
    for seed in seeds:
        body = build_body(seed, np.random.default_rng([seed, 0]), breath=0.0)
        kwargs = {} if profile is None else dict(profile=profile)
        out.append(sample_findings(np.random.default_rng([seed, 11]), body, 1.0, **kwargs))
    return out


def test_benchmark_profile_makes_every_finding_visible_and_common():
    from ctglip.datasets.phantom.findings import PROFILES
    key = [[(f.name, f.organ, f.size, f.grade) for f in fs] for fs in _findings(None)]
    assert key == [[(f.name, f.organ, f.size, f.grade) for f in fs]
                   for fs in _findings('realistic')]  # realistic stays the default
    realistic, bench = _findings('realistic'), _findings('benchmark')
    per_patient = [len({f.name for f in fs}) for fs in bench]
    assert np.mean(per_patient) > 1.8 * np.mean([len({f.name for f in fs}) for fs in realistic])
    floors = PROFILES['benchmark']['min_mm']
    for f in (f for fs in bench for f in fs):
        if f.name in floors:
            assert f.size >= floors[f.name] - 1e-9, f
        if f.grade:
            assert f.grade in ('moderate', 'marked'), f  # no mild diffuse findings
        if f.name == 'lung nodule':
            assert f.params['solid']
        if f.name == 'adrenal nodule':
            assert f.params['lipid']
        if f.name in ('liver mass', 'pancreatic mass', 'renal mass'):
            assert abs(f.params['delta']) >= 45


def test_tumor_profile_makes_large_hyperdense_masses():
    from ctglip.datasets.phantom.findings import PROFILES
    floors, (lo, hi) = PROFILES['tumor']['min_mm'], PROFILES['tumor']['mass_hu']
    masses = [f for fs in _findings('tumor') for f in fs
              if f.name in ('liver mass', 'pancreatic mass', 'renal mass')]
    assert masses
    for f in masses:
        assert f.size >= floors[f.name] - 1e-9, f
        assert lo <= f.params['delta'] <= hi, f  # above the organ, within the profile's range
    others = [(f.name, f.organ, f.size) for fs in _findings('tumor') for f in fs
              if f.name not in ('liver mass', 'pancreatic mass', 'renal mass')]
    assert others  # the other findings are drawn as in the benchmark profile


def test_dataset_refuses_a_phantom_folder_made_with_other_settings(tmp_path):
    from ctglip.datasets import CTReportDataset
    from ctglip.utils.errors import DataError
    root = str(tmp_path / 'ph')
    phantom = dict(num_cases=2, seed=4, spacing=8.0, num_workers=0, progress=False)
    CTReportDataset(root, phantom=phantom, lazy_init=False)  # generated on first use
    CTReportDataset(root, phantom=phantom, lazy_init=False)  # the same settings: reused
    with pytest.raises(DataError, match=r'profile: folder .realistic., asked .tumor.*delete'):
        CTReportDataset(root, phantom=dict(phantom, profile='tumor'), lazy_init=False)
    assert len(_rows(root)) == 2  # nothing was deleted


def test_command_line_tool(tmp_path, capsys):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import make_phantoms
    finally:
        sys.path.pop(0)
    out = str(tmp_path / 'cli')
    argv = [out, '--num-cases', '2', '--seed', '4', '--workers', '0', '--spacing', '8',
            '--no-progress']
    assert make_phantoms.main(argv) is None
    assert len(_rows(out)) == 2
    assert 'manifest.jsonl' in capsys.readouterr().out
