"""Abnormalities of the phantom: which a patient has, where they are, how they look.

A patient's findings are drawn once (keyed by the patient seed) so that every study of the
patient shows the same lesions where its field of view covers them. Focal findings (cysts,
masses, nodules, stones, calcifications) are stored relative to their organ and rendered with
partial volume (sub-voxel supersampling) into the HU image; diffuse findings change the
anatomy (splenomegaly, hydronephrosis, duct dilation, wall thickening) or the organ's HU
(steatosis, emphysema).

Besides the 16 abnormalities of the default vocabulary the phantom has two findings outside it:
``renal mass`` (a solid kidney tumour, so that tumour masks exist for the kidneys) and
``aortic calcification``. They appear in reports and masks but never in ``abnormalities``.
"""
from dataclasses import dataclass, field

import numpy as np

from ..organs import ABNORMALITIES
from .appearance import LABEL, TISSUE

__all__ = ['Finding', 'sample_findings', 'FINDING_RATES', 'geometry_of', 'TUMOR_FINDINGS',
           'PROFILES']

# Probability that a patient has the finding (before ``abnormal_rate`` scaling).
FINDING_RATES = {
    'liver cyst': 0.15, 'liver mass': 0.08, 'hepatic steatosis': 0.15, 'liver calcification': 0.08,
    'gallstone': 0.12, 'gallbladder wall thickening': 0.07, 'splenomegaly': 0.09,
    'splenic cyst': 0.07, 'pancreatic mass': 0.08, 'pancreatic duct dilation': 0.07,
    'kidney cyst': 0.16, 'kidney stone': 0.10, 'hydronephrosis': 0.08, 'lung nodule': 0.18,
    'emphysema': 0.12, 'adrenal nodule': 0.08, 'renal mass': 0.06, 'aortic calcification': 0.2,
}
TUMOR_FINDINGS = ('liver mass', 'pancreatic mass', 'renal mass')

# How findings are drawn. ``realistic`` (the default) keeps real-world sizes, grades and rates,
# so many findings are a voxel or two at 5 mm, or a few HU. ``benchmark`` gives every finding
# a signature that a 5 mm grid shows (lesions of at least 2-3 voxels, stones of at least one,
# moderate or marked diffuse grades, masses at least 45 HU from their organ, solid lung nodules,
# lipid-rich adrenal nodules) at a prevalence like real report datasets (``rate`` multiplies
# FINDING_RATES: 15-40 % of patients per finding), so that a learner's failure is its own and
# not the data's. Table captions name the profile.
PROFILES = {
    'realistic': dict(rate=1.0, min_mm={}, strong=False),
    'benchmark': dict(rate=2.2, strong=True, min_mm={
        'liver cyst': 14, 'liver mass': 16, 'liver calcification': 6, 'gallstone': 7,
        'splenic cyst': 14, 'pancreatic mass': 18, 'kidney cyst': 14, 'kidney stone': 6,
        'lung nodule': 10, 'adrenal nodule': 16, 'renal mass': 20}),
}
# ``tumor``: the benchmark profile with conspicuous masses, for tumor fine-tuning on a CPU
# budget (configs/_base_/datasets/phantom_tumor.py): liver, pancreatic and renal masses are
# hyperdense, ``mass_hu`` above their organ, and larger. Why (docs/finetuning.md, "Why the
# tumor profile"): a scratch nnU-Net did not learn the benchmark profile's hypodense masses
# (45-70 HU below the organ, the density of fat and cysts at the larger deltas) in 1200 CPU
# iterations, while it finds these after ~300.
PROFILES['tumor'] = dict(
    PROFILES['benchmark'], mass_hu=(150.0, 250.0), hyper_masses=True,
    min_mm=dict(PROFILES['benchmark']['min_mm'],
                **{'liver mass': 30, 'pancreatic mass': 26, 'renal mass': 30}))


def check_profile(profile):
    """Raise ``ValueError`` unless ``profile`` names one of :data:`PROFILES`."""
    if profile not in PROFILES:
        raise ValueError(f'phantom profile {profile!r} is unknown; use one of {sorted(PROFILES)}')
    return profile


VOCAB = {a for names in ABNORMALITIES.values() for a in names}
GRADES = ('mild', 'moderate', 'marked')


@dataclass
class Finding:
    """One abnormality of one organ of a patient.

    Attributes:
        name: abnormality name (vocabulary name, or ``renal mass`` / ``aortic calcification``).
        organ: TotalSegmentator organ name.
        focal: True for a lesion rendered with its own mask.
        size: lesion diameter in mm (focal), or the grade value (diffuse).
        grade: ``mild``, ``moderate`` or ``marked`` (diffuse findings and graded lesions).
        offset: body-frame position of the lesion relative to the organ anchor (focal).
        params: rendering parameters (HU, texture, lobulation ...).
    """
    name: str
    organ: str
    focal: bool
    size: float = 0.0
    grade: str = ''
    offset: np.ndarray = None
    params: dict = field(default_factory=dict)

    @property
    def in_vocabulary(self):
        return self.name in VOCAB

    @property
    def tumor(self):
        return self.name in TUMOR_FINDINGS


def _grade(rng, values, strong=False):
    g = int(rng.choice([1, 2], p=(0.6, 0.4))) if strong else int(rng.choice(3, p=(0.45, 0.35, 0.2)))
    lo, hi = values[g]
    return GRADES[g], float(rng.uniform(lo, hi))


def _size(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def geometry_of(findings):
    """The anatomy changes that a patient's diffuse findings make (``build_body(geometry=)``)."""
    geo = {}
    for f in findings:
        if f.name == 'splenomegaly':
            geo['splenomegaly'] = f.size
        elif f.name == 'hydronephrosis':
            geo[('hydronephrosis', f.organ)] = f.size
        elif f.name == 'pancreatic duct dilation':
            geo['pancreatic duct dilation'] = f.size / 2.0
        elif f.name == 'gallbladder wall thickening':
            geo['gallbladder wall thickening'] = f.size
    return geo


def organ_anchor(body, organ):
    """The body-frame point that a focal lesion of ``organ`` moves with (breathing, jitter)."""
    if organ.startswith('lung_'):
        return np.zeros(3)
    prims = body.organ_prims[organ]
    pts = [p.center if hasattr(p, 'center') else p.points.mean(0) for p in prims]
    return np.mean(pts, axis=0)


def _sample_inside(rng, fields, lo, hi, accept, tries=4000):
    pts = rng.uniform(lo, hi, (tries, 3))
    f = np.full(tries, np.inf)
    for fn in fields:
        f = np.minimum(f, fn(pts[:, 0], pts[:, 1], pts[:, 2]))
    ok = np.nonzero(accept(pts, f))[0]
    return pts[ok[0]] if len(ok) else None


def _organ_fields(body, organ):
    fields, los, his = [], [], []
    for prim in body.organ_prims[organ]:
        lo, hi = prim.bounds()
        los.append(lo)
        his.append(hi)
        fields.append(prim.field)
    return fields, np.min(los, 0), np.max(his, 0)


def _place(rng, body, organ, depth=0.7, where=None):
    """A point inside ``organ`` (f < depth), optionally constrained; returns the offset."""
    if organ.startswith('lung_'):
        side = 1 if organ.endswith('right') else -1
        lung = body.landmarks['lung', side]
        lobe = {'upper': 0, 'middle': 1, 'lower': 2}[organ.split('_')[1]]
        lo, hi = lung.bounds()

        def accept(p, f):
            return (f < depth) & (lung.lobe_index(p[:, 0], p[:, 1], p[:, 2]) == lobe)
        p = _sample_inside(rng, [lung.field], lo, hi, accept, 6000)
    else:
        fields, lo, hi = _organ_fields(body, organ)

        def accept(p, f):
            ok = f < depth
            return ok if where is None else ok & where(p)
        p = _sample_inside(rng, fields, lo, hi, accept)
    if p is None:
        return None
    return p - organ_anchor(body, organ)


def _focal(rng, body, name, organ, size, depth=0.7, where=None, **params):
    off = _place(rng, body, organ, depth, where)
    if off is None:
        return None
    params.setdefault('harm', rng.normal(0.0, params.pop('lobulation', 0.05), 12))
    return Finding(name, organ, True, size=size, offset=off, params=params)


def sample_findings(rng, body, rate=1.0, profile='realistic'):
    """Draw a patient's findings.

    Args:
        rng: the patient's findings generator.
        body: the patient's reference body (no breathing offset), for lesion positions.
        rate: multiplier of :data:`FINDING_RATES` (on top of the profile's).
        profile: a key of :data:`PROFILES`.

    Returns:
        list[Finding]
    """
    prof = PROFILES[check_profile(profile)]
    strong, min_mm = prof['strong'], prof['min_mm']
    rate = rate * prof['rate']
    out = []
    has = {name: rng.random() < min(1.0, p * rate) for name, p in FINDING_RATES.items()}

    def size(name, lo, hi):  # the profile's floor moves the whole range up
        floor = min_mm.get(name, 0.0)
        return _size(rng, max(lo, floor), max(hi, 1.5 * floor))

    def grade(values):
        return _grade(rng, values, strong)

    def contrast(lo, hi):  # masses: |HU difference| to the organ
        if 'mass_hu' in prof:
            return rng.uniform(*prof['mass_hu'])
        return rng.uniform(max(lo, 45.0), max(hi, 70.0)) if strong else rng.uniform(lo, hi)
    mass_sign = 1.0 if prof.get('hyper_masses') else -1.0  # pancreatic and renal masses
    lm = body.landmarks
    cyst = dict(amp=2, lobulation=0.03, margin='sharp')  # water density, smooth round edge
    dense = dict(lobulation=0.08, margin='sharp', dense=True)  # stones and calcifications

    def add(f):
        if f is not None:
            out.append(f)

    def count(*options):
        return int(rng.choice(options))

    # liver
    if has['liver cyst']:
        for _ in range(count(1, 1, 1, 2, 3)):
            add(_focal(rng, body, 'liver cyst', 'liver', size('liver cyst', 5, 40),
                       hu=rng.uniform(0, 15), **cyst))
    if has['liver mass']:
        for _ in range(count(1, 1, 2)):
            kind = 'hyper' if prof.get('hyper_masses') or rng.random() >= 0.7 else 'hypo'
            delta = -contrast(25, 55) if kind == 'hypo' else contrast(35, 80)
            add(_focal(rng, body, 'liver mass', 'liver', size('liver mass', 8, 60), kind=kind,
                       delta=delta, amp=14, lobulation=0.1, margin='soft'))
    if has['hepatic steatosis']:
        g, d = grade(((12, 22), (22, 38), (38, 60)))  # HU lost
        out.append(Finding('hepatic steatosis', 'liver', False, size=d, grade=g))
    if has['liver calcification']:
        for _ in range(count(1, 1, 2)):
            add(_focal(rng, body, 'liver calcification', 'liver',
                       size('liver calcification', 3, 8),
                       hu=rng.uniform(600, 1200), amp=30, **dict(dense, lobulation=0.05)))
    # gallbladder: stones lie in the dependent (posterior) part
    gbl = lm['gallbladder']
    if has['gallstone']:
        n = count(1, 1, 2, 3, 4)
        stone = max(_size(rng, 4, 20) / (1 + 0.25 * (n - 1)), min_mm.get('gallstone', 0.0))
        for _ in range(n):
            add(_focal(rng, body, 'gallstone', 'gallbladder', stone, depth=0.75,
                       where=lambda p: p[:, 1] < gbl.center[1], hu=rng.uniform(450, 1000),
                       amp=40, **dense))
    if has['gallbladder wall thickening']:
        g, t = grade(((4, 5.5), (5.5, 7.5), (7.5, 10)))  # wall thickness in mm
        out.append(Finding('gallbladder wall thickening', 'gallbladder', False, size=t, grade=g))
    # spleen
    if has['splenomegaly']:
        g, s = grade(((1.12, 1.25), (1.25, 1.45), (1.45, 1.75)))  # linear scale
        out.append(Finding('splenomegaly', 'spleen', False, size=s, grade=g))
    if has['splenic cyst']:
        add(_focal(rng, body, 'splenic cyst', 'spleen', size('splenic cyst', 6, 40),
                   hu=rng.uniform(0, 15), **cyst))
    # pancreas: a mass at a position t along the gland (0 head .. 1 tail)
    pts, radii = lm['pancreas']
    if has['pancreatic mass']:
        t = float(rng.uniform(0, 1))
        seg = min(int(t * (len(pts) - 1)), len(pts) - 2)
        u = t * (len(pts) - 1) - seg
        c = pts[seg] * (1 - u) + pts[seg + 1] * u
        r = radii[seg] * (1 - u) + radii[seg + 1] * u
        off = c + rng.normal(0, r * 0.25, 3) - organ_anchor(body, 'pancreas')
        params = dict(delta=mass_sign * contrast(30, 55), amp=12, harm=rng.normal(0, 0.1, 12),
                      margin='soft', t=t)
        out.append(Finding('pancreatic mass', 'pancreas', True,
                           size=size('pancreatic mass', 12, 40), offset=off, params=params))
        if t < 0.45 and rng.random() < 0.5:  # a mass in the head often blocks the duct
            has['pancreatic duct dilation'] = True
    if has['pancreatic duct dilation']:
        g, d = grade(((4.5, 6), (6, 8), (8, 10)))  # duct diameter in mm
        out.append(Finding('pancreatic duct dilation', 'pancreas', False, size=d, grade=g))

    # kidneys: one side, sometimes both
    def sides():
        if rng.random() < 0.25:
            return ['kidney_right', 'kidney_left']
        return ['kidney_right' if rng.random() < 0.5 else 'kidney_left']

    if has['kidney cyst']:
        for organ in sides():
            for _ in range(count(1, 1, 2)):
                add(_focal(rng, body, 'kidney cyst', organ, size('kidney cyst', 5, 50), depth=0.9,
                           hu=rng.uniform(0, 15), **cyst))
    if has['kidney stone']:  # in the collecting system: renal sinus and calyces
        for organ in sides():
            sinus = lm['kidneys'][organ]['sinus']
            for _ in range(count(1, 1, 2)):
                add(_focal(rng, body, 'kidney stone', organ, size('kidney stone', 3, 12),
                           depth=0.95,
                           where=lambda p, s=sinus: s.field(p[:, 0], p[:, 1], p[:, 2]) < 1.3,
                           hu=rng.uniform(600, 1400), amp=40, **dense))
    if has['hydronephrosis']:
        for organ in sides():
            g, h = grade(((0.35, 0.6), (0.6, 0.95), (0.95, 1.3)))  # dilation factor
            out.append(Finding('hydronephrosis', organ, False, size=h, grade=g))
    if has['renal mass']:
        organ = 'kidney_right' if rng.random() < 0.5 else 'kidney_left'
        add(_focal(rng, body, 'renal mass', organ, size('renal mass', 15, 60), depth=0.8,
                   delta=mass_sign * contrast(30, 70), amp=20, lobulation=0.12, margin='soft'))
    # lungs
    lobes = ('lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right',
             'lung_upper_lobe_left', 'lung_lower_lobe_left')
    if has['lung nodule']:
        for _ in range(count(1, 1, 1, 2, 3)):
            organ = lobes[int(rng.choice(5, p=(0.27, 0.08, 0.25, 0.22, 0.18)))]
            solid = rng.random() < 0.8 or strong
            hu = rng.uniform(-20, 60) if solid else rng.uniform(-600, -350)  # or ground glass
            add(_focal(rng, body, 'lung nodule', organ, size('lung nodule', 4, 25), depth=0.92,
                       hu=hu, amp=15, lobulation=0.1, margin='soft', solid=solid))
    if has['emphysema']:
        g, d = grade(((0.06, 0.12), (0.12, 0.22), (0.22, 0.38)))  # low-attenuation share
        pattern = 'upper' if rng.random() < 0.6 else 'diffuse'
        affected = (lobes[0], lobes[3]) if pattern == 'upper' else lobes
        for organ in affected:
            out.append(Finding('emphysema', organ, False, size=d, grade=g,
                               params=dict(pattern=pattern)))
    # adrenals: most nodules are lipid-rich adenomas (near 0 HU)
    if has['adrenal nodule']:
        organ = 'adrenal_gland_right' if rng.random() < 0.5 else 'adrenal_gland_left'
        lipid = rng.random() < 0.65 or strong
        hu = rng.uniform(-5, 12) if lipid else None
        delta = None if lipid else rng.uniform(-5, 25)
        add(_focal(rng, body, 'adrenal nodule', organ, size('adrenal nodule', 8, 35), depth=0.8,
                   hu=hu, delta=delta, amp=6, lobulation=0.04, margin='sharp', union=True,
                   lipid=lipid))
    # aorta (outside the vocabulary): plaques in the wall of the abdominal aorta
    if has['aortic calcification']:
        apts, ar = lm['aorta']
        for _ in range(int(rng.integers(3, 10))):
            i = int(rng.integers(len(apts) - 4, len(apts) - 1))
            u = float(rng.uniform(0, 1))
            c = apts[i] * (1 - u) + apts[i + 1] * u
            d = rng.normal(0, 1, 3)
            d[2] = 0
            d /= np.linalg.norm(d) + 1e-9
            r = ar[i] * (1 - u) + ar[i + 1] * u
            params = dict(hu=rng.uniform(600, 1100), amp=30, harm=rng.normal(0, 0.05, 12),
                          margin='sharp', dense=True)
            out.append(Finding('aortic calcification', 'aorta', True, size=_size(rng, 3, 6),
                               offset=c + d * r * 0.85 - organ_anchor(body, 'aorta'),
                               params=params))
    return out


# ---------------------------------------------------------------------------- rendering
_SUB = (np.arange(3, dtype=np.float32) - 1.0) / 3.0  # 3 x 3 x 3 supersampling offsets


def lesion_coverage(raster, center_vox, diameter, harm):
    """Partial-volume coverage of a (lobulated) sphere in world mm around a voxel position.

    Returns:
        tuple: ``(slices, frac)`` with ``frac`` in [0, 1] over the lesion's box, or (None, None).
    """
    sp = raster.spacing
    r = diameter / 2.0
    half = (r * 1.6) / sp + 1
    a = np.maximum(np.floor(center_vox - half).astype(int), 0)
    b = np.minimum(np.ceil(center_vox + half).astype(int) + 1, raster.shape)
    if np.any(b <= a):
        return None, None
    sl = tuple(slice(int(i), int(j)) for i, j in zip(a, b))
    frac = np.zeros(tuple(b - a), np.float32)
    gx = ((np.arange(a[0], b[0]) - center_vox[0]) * sp[0]).astype(np.float32)[:, None, None]
    gy = ((np.arange(a[1], b[1]) - center_vox[1]) * sp[1]).astype(np.float32)[None, :, None]
    gz = ((np.arange(a[2], b[2]) - center_vox[2]) * sp[2]).astype(np.float32)[None, None, :]
    for ox in _SUB * sp[0]:
        for oy in _SUB * sp[1]:
            for oz in _SUB * sp[2]:
                x, y, z = gx + ox, gy + oy, gz + oz
                rho = np.sqrt(x * x + y * y + z * z) + 1e-6
                h = (harm[0] * x + harm[1] * y + harm[2] * z) / rho
                h = h + (harm[3] * x * x + harm[4] * y * y + harm[5] * z * z) / (rho * rho)
                frac += (rho < r * (1.0 + np.clip(h, -0.3, 0.3))).astype(np.float32)
    frac *= 1.0 / len(_SUB) ** 3
    return sl, frac


def locate(raster, label, body, finding, search_mm=25.0):
    """Voxel position (float, 3) of a focal finding in this study, or None if not visible.

    Finds the voxel whose body-frame coordinate is nearest to the lesion (the pose and warp
    move it), then the nearest voxel of the organ if it fell outside the organ.
    """
    target = organ_anchor(body, finding.organ) + finding.offset
    approx = raster.body_to_voxel(target[None])[0]
    pad = (raster.warp_margin + 6.0) / raster.spacing + 1
    a = np.maximum(np.floor(approx - pad).astype(int), 0)
    b = np.minimum(np.ceil(approx + pad).astype(int) + 1, raster.shape)
    if np.any(b <= a):
        return None
    sl = tuple(slice(int(i), int(j)) for i, j in zip(a, b))
    qx, qy, qz = raster.coords(sl)
    d2 = (qx - target[0]) ** 2 + (qy - target[1]) ** 2 + (qz - target[2]) ** 2
    organ_label = LABEL[finding.organ]
    inside = label[sl] == organ_label
    if finding.params.get('union'):
        inside = inside | (d2 < 9.0)
    if not inside.any():
        return None
    d2 = np.where(inside, d2, np.inf)
    idx = np.unravel_index(int(np.argmin(d2)), d2.shape)
    if np.sqrt(d2[idx]) > search_mm:
        return None
    return np.array(idx, float) + a


def render_focal(raster, hu, label, tissue, texture, finding, center_vox, organ_hu, occupied):
    """Blend a focal lesion into ``hu`` with partial volume; returns its voxel mask info.

    Voxels in ``occupied`` (bool, the volume's shape) belong to lesions rendered before and are
    left alone, so that lesions never erase each other; the new lesion's voxels are added to it.

    Returns:
        tuple: ``(slices, mask, diameter)``: the lesion voxels (coverage >= 0.5 inside the
        organ) and the rendered diameter (mm; lesions smaller than about a voxel are enlarged
        to 1.25 voxels so that they stay visible), or ``(None, None, 0)`` when nothing of the
        lesion lies inside the organ.
    """
    p = finding.params
    size = max(finding.size, 1.25 * float(raster.spacing.min()))
    sl, frac = lesion_coverage(raster, center_vox, size, p['harm'])
    if sl is None:
        return None, None, 0.0
    organ_label = LABEL[finding.organ]
    lab = label[sl]
    if p.get('union'):  # adrenal nodules enlarge the gland: soft tissue around becomes organ
        fat = np.isin(tissue[sl], (TISSUE['fat'], TISSUE['visceral_fat']))
        soft = (lab == organ_label) | (lab == 0) & fat
        frac *= soft
        lab[frac >= 0.5] = organ_label
    else:
        frac *= lab == organ_label
    frac *= ~occupied[sl]
    mask = frac >= 0.5
    if not mask.any():
        return None, None, 0.0
    if p.get('hu') is not None:
        value = np.float32(p['hu'])
    else:
        value = np.float32(organ_hu + p['delta'])
    lesion = value + np.float32(p.get('amp', 5.0)) * texture[sl]
    if p.get('margin') == 'soft':  # masses: a little blur of their edge
        frac = np.clip(frac * 1.15, 0, 1)
    region = hu[sl]
    region *= 1.0 - frac
    region += frac * lesion
    occupied[sl] |= mask
    return sl, mask, size
