"""Write a phantom dataset in the manifest format (see DESIGN.md, "Data: the manifest").

Layout of the output folder::

    manifest.jsonl            one JSON object per study, written last (temp file + os.replace)
    images/<case>.nii.gz      int16 HU, RAS affine with the voxel spacing
    organ_masks/<case>.nii.gz uint8 TotalSegmentator v1 labels (0 = background)
    tumor_masks/<case>.nii.gz uint8 binary, only for studies with a liver, kidney or pancreas tumour
    stats.json                organ frequencies, abnormality counts, report lengths, voxel shares
    README.txt                what the dataset is

Studies are rendered in worker processes; each study has its own random streams derived from
``(seed, case index)`` and its patient's from ``(seed, patient index)``, so the files do not
depend on ``num_workers`` or on the order in which workers finish.
"""
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import zlib
from collections import Counter, defaultdict

import numpy as np

from ...utils.errors import ConfigError
from ..organs import ABNORMALITIES, organ_vocabulary
from .findings import PROFILES
from .generator import FIELDS_OF_VIEW, StudyPlan, patient_seed, render_study

__all__ = ['make_phantom_dataset', 'plan_dataset', 'DEFAULT_SPACING', 'DEFAULT_FOV_MM', 'TINY']

DEFAULT_SPACING = 4.0
DEFAULT_FOV_MM = (448.0, 352.0)
# A configuration for tests: 6 studies at 8 mm render in a few seconds.
TINY = dict(num_cases=6, spacing=8.0, num_workers=0)
_SPLITS = (('train', 0.70), ('val', 0.15), ('test', 0.15))
GENERATOR_VERSION = '1.0'


def _spacing3(spacing):
    sp = np.broadcast_to(np.asarray(spacing, float), (3,)) if np.ndim(spacing) <= 1 else None
    if sp is None or sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0.5) \
            or np.any(sp > 20):
        raise ConfigError(f'phantom spacing {spacing!r} must be one number or three numbers of mm '
                          'between 0.5 and 20 (default 4.0)')
    return tuple(float(s) for s in sp)


def plan_dataset(num_cases, seed=0, spacing=DEFAULT_SPACING, fov_mm=DEFAULT_FOV_MM,
                 abnormal_rate=1.0, fov=None, profile='realistic'):
    """Patients, studies and splits of a dataset, without rendering anything.

    Patients have 1 to 3 studies (70/20/10 %). Patients, not studies, are split about
    70/15/15 into train/val/test (at least one patient per split when there are three or more).

    Returns:
        list[tuple[StudyPlan, str]]: one ``(plan, split)`` per study, in case order.
    """
    rng = np.random.default_rng([int(seed), 0])
    studies = []
    p = 0
    while len(studies) < num_cases:
        for _ in range(int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))):
            studies.append(p)
        p += 1
    studies = studies[:num_cases]
    patients = sorted(set(studies))
    order = rng.permutation(len(patients))
    n = len(patients)
    n_val = int(round(_SPLITS[1][1] * n))
    n_test = int(round(_SPLITS[2][1] * n))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    split_of = {}
    for rank, i in enumerate(order):
        split_of[patients[i]] = ('val' if rank < n_val else
                                 'test' if rank < n_val + n_test else 'train')
    width = max(4, len(str(num_cases - 1)))
    sp = _spacing3(spacing)
    plans = []
    for i, pi in enumerate(studies):
        plan = StudyPlan(case_id=f'phantom_{i:0{width}d}',
                         patient_id=f'phantom_patient_{pi:0{width}d}',
                         patient_seed=patient_seed(seed, pi), study_seed=(int(seed), 1, i),
                         spacing=sp, fov_mm=tuple(float(x) for x in fov_mm),
                         abnormal_rate=float(abnormal_rate), fov=fov, profile=profile)
        plans.append((plan, split_of[pi]))
    return plans


def _save_nifti(array, affine, path):
    """Write a .nii.gz atomically and reproducibly (no time stamp in the gzip header).

    Deflate without string matching, which noisy CT hardly offers: Huffman coding only for
    images (about 40 % faster than zlib level 1, about 10 % larger), run lengths for label maps
    (faster and smaller). Any gzip reader opens both.
    """
    import nibabel as nib
    img = nib.Nifti1Image(array, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units('mm')
    strategy = zlib.Z_RLE if array.dtype == np.uint8 else zlib.Z_HUFFMAN_ONLY
    z = zlib.compressobj(1, zlib.DEFLATED, 31, 8, strategy)  # wbits 31: gzip framing
    data = z.compress(img.to_bytes()) + z.flush()
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def _generate(job):
    """Render one study, write its files and return its manifest row and statistics."""
    plan, split, out_dir = job
    out = render_study(plan)
    rel = {'image': f'images/{plan.case_id}.nii.gz',
           'organ_mask': f'organ_masks/{plan.case_id}.nii.gz'}
    _save_nifti(out['image'], out['affine'], osp.join(out_dir, rel['image']))
    _save_nifti(out['organ_mask'], out['affine'], osp.join(out_dir, rel['organ_mask']))
    row = dict(case_id=plan.case_id, patient_id=plan.patient_id, split=split, image=rel['image'],
               organ_mask=rel['organ_mask'], label_scheme='totalseg_v1', report=out['report'],
               findings=out['findings'], abnormalities=out['abnormalities'])
    if out['tumor_mask'] is not None:
        row['tumor_mask'] = f'tumor_masks/{plan.case_id}.nii.gz'
        _save_nifti(out['tumor_mask'], out['affine'], osp.join(out_dir, row['tumor_mask']))
    meta = dict(out['meta'])
    meta['lesions'] = [{k: v for k, v in les.items() if k != 'index'} for les in meta['lesions']]
    return row, meta


def _summary(values):
    v = np.asarray(values, float)
    if not len(v):
        return dict(n=0)
    return dict(n=int(len(v)), mean=round(float(v.mean()), 4), min=round(float(v.min()), 4),
                max=round(float(v.max()), 4), median=round(float(np.median(v)), 4))


def _stats(rows, metas, settings):
    organs = organ_vocabulary('totalseg_v1')
    present, reported = Counter(), Counter()
    abn, abn_organ, shares, contrast = Counter(), Counter(), defaultdict(list), defaultdict(list)
    for row, meta in zip(rows, metas):
        present.update(meta['present'])
        reported.update(row['findings'].keys())
        for organ, names in row['abnormalities'].items():
            abn.update(names)
            abn_organ.update(f'{organ}/{n}' for n in names)
        for name, organ, share in meta['shares']:
            shares[name].append(share)
        for les in meta['lesions']:
            if np.isfinite(les['organ_hu']):
                contrast[les['name']].append(les['lesion_hu'] - les['organ_hu'])
    words = [len(r['report'].split()) for r in rows]
    vocab = [a for names in ABNORMALITIES.values() for a in names]
    return dict(
        settings=settings,
        num_cases=len(rows),
        num_patients=len({r['patient_id'] for r in rows}),
        splits={s: dict(cases=sum(r['split'] == s for r in rows),
                        patients=len({r['patient_id'] for r in rows if r['split'] == s}))
                for s, _ in _SPLITS},
        fields_of_view=dict(Counter(m['fov'] for m in metas)),
        contrast_phases=dict(Counter(m['phase'] for m in metas)),
        organ_frequency={o: present[o] for o in organs},
        organ_reported={o: reported[o] for o in organs},
        abnormality_counts={a: abn[a] for a in vocab},
        abnormality_counts_by_organ=dict(sorted(abn_organ.items())),
        abnormal_studies=sum(bool(r['abnormalities']) for r in rows),
        tumor_studies=sum('tumor_mask' in r for r in rows),
        report_words=_summary(words),
        finding_voxel_share={name: _summary(v) for name, v in sorted(shares.items())},
        lesion_contrast_hu={name: _summary(v) for name, v in sorted(contrast.items())},
    )


_README = """CT-GLIP phantom dataset (synthetic; made by ctglip.datasets.phantom, version {version})

What it is: {n} synthetic CT studies of {p} phantom patients, with organ label maps in the
TotalSegmentator v1 scheme (104 organs), radiology reports, per-organ findings sentences,
ground-truth abnormalities over the 16 abnormalities of the default vocabulary, and tumour
masks for liver, kidney and pancreas tumours. It exists to test and demonstrate the ctglip
toolkit end to end without patient data. It is NOT real CT and must not be used to draw
clinical or performance conclusions about real images.

Made with: seed={seed}, spacing={spacing} mm, in-plane field of view {fov} mm, abnormal_rate={rate},
profile={profile}.
Deterministic: the same seed and options give identical files on any number of workers.

Files:
  manifest.jsonl        one JSON object per study (case_id, patient_id, split, image, organ_mask,
                        label_scheme, report, findings, abnormalities, tumor_mask when present)
  images/               int16 Hounsfield units, RAS+ affine (+x = patient's right,
                        +y = anterior, +z = superior), voxel spacing on the diagonal
  organ_masks/          uint8 labels 0..104 (totalseg_v1), same grid as the image
  tumor_masks/          uint8 binary tumour masks (only studies with a tumour)
  stats.json            organ frequencies, abnormality counts, report lengths, and for each
                        finding the share of its organ's voxels that it covers

How it differs from real CT: organs are smooth unions of ellipsoids, cylinders and tubes with
random deformation, not segmentations of real anatomy; textures are smooth random fields;
there are no beam-hardening, metal or motion artefacts; lesions are round or lobulated blobs;
reports are written from templates (several phrasings per statement). `findings` holds the
FINDINGS-section sentences per organ (normal statements included); `abnormalities` lists only
vocabulary abnormalities of organs the report mentions. Renal masses and aortic calcifications
appear in reports (and renal masses in tumour masks) but are outside the vocabulary.
"""


def make_phantom_dataset(out_dir, num_cases=200, seed=0, num_workers=2, spacing=DEFAULT_SPACING,
                         progress=True, **options):
    """Generate a phantom CT dataset and return the path of its manifest.

    Args:
        out_dir: output folder (created; an existing manifest there is removed first, so that a
            crash never leaves a manifest that points at missing or stale files).
        num_cases: number of studies.
        seed: random seed; the same seed and options give identical files and manifest.
        num_workers: worker processes (0 or 1: render in this process).
        spacing: voxel size in mm, one number or (x, y, z). The default 4 mm gives volumes of
            112 x 88 voxels in-plane and 70-270 slices, depending on the field of view.
        progress: show a tqdm progress bar.
        **options: ``fov_mm`` (in-plane field of view in mm, default (448, 352)),
            ``abnormal_rate`` (multiplier of the finding rates, default 1.0), ``fov`` (force one
            field of view, one of ``FIELDS_OF_VIEW``), ``profile`` (``'realistic'``, the
            default, ``'benchmark'``: every finding visible at 5 mm at a report-dataset
            prevalence, or ``'tumor'``: benchmark with conspicuous masses; see
            ``findings.PROFILES``), ``start_method`` (multiprocessing).

    Returns:
        str: path of ``manifest.jsonl``.

    Example:
        >>> manifest = make_phantom_dataset('data/phantom_tiny', num_cases=6, spacing=8.0)
    """
    known = {'fov_mm', 'abnormal_rate', 'fov', 'start_method', 'profile'}
    unknown = set(options) - known
    if unknown:
        raise ConfigError(f'make_phantom_dataset got unknown option(s) {sorted(unknown)}; '
                          f'known options: {sorted(known)}')
    if not isinstance(num_cases, (int, np.integer)) or num_cases < 1:
        raise ConfigError(f'num_cases must be a positive integer, got {num_cases!r}')
    if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise ConfigError(f'num_workers must be an integer >= 0, got {num_workers!r}')
    fov = options.get('fov')
    if fov is not None and fov not in FIELDS_OF_VIEW:
        raise ConfigError(f'fov={fov!r} is not a phantom field of view; use one of '
                          f'{", ".join(FIELDS_OF_VIEW)}')
    fov_mm = tuple(options.get('fov_mm', DEFAULT_FOV_MM))
    if len(fov_mm) != 2 or min(fov_mm) < 64:
        raise ConfigError(f'fov_mm={fov_mm!r} must be two in-plane sizes in mm, each >= 64')
    rate = float(options.get('abnormal_rate', 1.0))
    if not 0.0 <= rate <= 50.0:
        raise ConfigError(f'abnormal_rate={rate!r} must lie in [0, 50] (rates are capped at 1)')
    profile = options.get('profile', 'realistic')
    if profile not in PROFILES:
        raise ConfigError(f'phantom profile={profile!r} is unknown; use one of {sorted(PROFILES)}')
    sp = _spacing3(spacing)

    out_dir = osp.abspath(out_dir)
    manifest = osp.join(out_dir, 'manifest.jsonl')
    for sub in ('images', 'organ_masks', 'tumor_masks'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    if osp.exists(manifest):
        os.remove(manifest)

    plans = plan_dataset(num_cases, seed, sp, fov_mm, rate, fov, profile)
    jobs = [(plan, split, out_dir) for plan, split in plans]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc='phantom CT', unit='case')
    results = []
    if num_workers <= 1:
        for job in jobs:
            results.append(_generate(job))
            if bar is not None:
                bar.update()
    else:
        method = options.get('start_method') or _start_method()
        with mp.get_context(method).Pool(min(num_workers, len(jobs))) as pool:
            for res in pool.imap(_generate, jobs, chunksize=1):
                results.append(res)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    rows = [r for r, _ in results]
    metas = [m for _, m in results]
    # drop tumour masks of an earlier run that this run did not write
    written = {osp.basename(r['tumor_mask']) for r in rows if 'tumor_mask' in r}
    for name in os.listdir(osp.join(out_dir, 'tumor_masks')):
        if name.endswith('.nii.gz') and name not in written:
            os.remove(osp.join(out_dir, 'tumor_masks', name))

    settings = dict(generator_version=GENERATOR_VERSION, seed=int(seed), num_cases=int(num_cases),
                    spacing=list(sp), fov_mm=list(fov_mm), abnormal_rate=rate, fov=fov,
                    profile=profile)
    stats = _stats(rows, metas, settings)
    _write_text(osp.join(out_dir, 'stats.json'), json.dumps(stats, indent=1) + '\n')
    _write_text(osp.join(out_dir, 'README.txt'), _README.format(
        version=GENERATOR_VERSION, n=len(rows), p=stats['num_patients'], seed=seed,
        spacing='x'.join(f'{s:g}' for s in sp), fov='x'.join(f'{s:g}' for s in fov_mm), rate=rate,
        profile=profile))
    _write_text(manifest, ''.join(json.dumps(r) + '\n' for r in rows))
    return manifest


def phantom_settings_mismatch(out_dir, num_cases=200, seed=0, spacing=DEFAULT_SPACING,
                              **options):
    """Compare the settings a phantom folder was made with to the given ones.

    Returns:
        list[str]: ``'name: folder X, asked Y'`` for each differing setting; empty when they
        agree or when ``out_dir`` holds no phantom ``stats.json`` (real data, or an older
        folder without recorded settings).
    """
    path = osp.join(out_dir, 'stats.json')
    if not osp.isfile(path):
        return []
    try:
        with open(path) as f:
            made = json.load(f).get('settings')
    except (OSError, ValueError):
        return []
    if not isinstance(made, dict):
        return []
    asked = dict(seed=int(seed), num_cases=int(num_cases), spacing=list(_spacing3(spacing)),
                 fov_mm=list(options.get('fov_mm', DEFAULT_FOV_MM)),
                 abnormal_rate=float(options.get('abnormal_rate', 1.0)),
                 fov=options.get('fov'), profile=options.get('profile', 'realistic'))
    out = []
    for key, want in asked.items():
        have = made.get(key)
        if isinstance(want, list) and isinstance(have, list):
            same = [float(v) for v in have] == [float(v) for v in want]
        else:
            same = have == want
        if key in made and not same:
            out.append(f'{key}: folder {have!r}, asked {want!r}')
    return out


def _start_method():
    """``fork`` when it is safe (fast); ``forkserver``/``spawn`` once torch runs threads here."""
    methods = mp.get_all_start_methods()
    if 'fork' in methods and 'torch' not in sys.modules:
        return 'fork'
    return 'forkserver' if 'forkserver' in methods else 'spawn'


def _write_text(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
