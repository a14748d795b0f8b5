"""Render one phantom CT study: field of view, pose, organs, findings, noise, report.

The steps of :func:`render_study`:

1. plan the study: field of view (which body region), contrast phase, noise level, the pose
   of the body (a few degrees of rotation, a shift, habitus scaling, a smooth warp);
2. build the patient's body (:mod:`.anatomy`) and rasterise it piece by piece into an organ
   label map and a tissue-class map (only inside each piece's bounding box);
3. apply diffuse findings (steatosis, emphysema) to the tissue lookup table and the tissue map,
   turn tissue classes into HU with a smooth texture, blend focal lesions in with partial
   volume;
4. add correlated noise (white noise, then the scanner blur), round to int16 HU;
5. decide which organs the study shows and write the report about them.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtri

from ..organs import organ_group
from .anatomy import LOBE_ORGANS, build_body
from .appearance import LABEL, PHASES, TISSUE, smooth_field, tissue_lut
from .findings import VOCAB, geometry_of, locate, organ_anchor, render_focal, sample_findings
from .geometry import Raster, rotation
from .reports import LesionReport, ReportInput, write_report

__all__ = ['StudyPlan', 'render_study', 'FIELDS_OF_VIEW', 'patient_seed']

# Fields of view: (probability, bottom landmark, top landmark); landmarks resolve per patient.
FIELDS_OF_VIEW = {
    'head_neck': (0.12, 'T2', 'vertex'),
    'neck_chest': (0.07, 'L1', 'C3'),
    'chest': (0.17, 'L1-', 'apex'),
    'chest_abdomen': (0.08, 'L5', 'apex'),
    'abdomen': (0.13, 'L5-', 'dome'),
    'abdomen_pelvis': (0.16, 'pubis', 'dome'),
    'chest_abdomen_pelvis': (0.15, 'pubis', 'apex'),
    'pelvis': (0.07, 'thigh', 'L4'),
    'whole_body': (0.05, 'knee', 'vertex'),
}
ORGANS = tuple(LABEL)
_REPORT_MIN_Z_FRACTION = 0.25  # an organ is reported when at least this much of it is in view


@dataclass
class StudyPlan:
    """Identity of one study inside a dataset."""
    case_id: str
    patient_id: str
    patient_seed: int
    study_seed: tuple
    spacing: tuple
    fov_mm: tuple = (448.0, 352.0)
    abnormal_rate: float = 1.0
    fov: str = None  # force a field of view (tests)
    profile: str = 'realistic'  # how findings are drawn (findings.PROFILES)


def patient_seed(seed, patient_index):
    """An integer seed for a patient, independent of the process that renders it."""
    return int(np.random.SeedSequence([int(seed), 7, int(patient_index)]).generate_state(1)[0])


@lru_cache(maxsize=8)
def _patient_findings(seed, rate, profile='realistic'):
    """A patient's findings placed on a reference body without breathing (cached per process).

    Returns:
        tuple: ``(reference body, findings)``.
    """
    ref = build_body(seed, np.random.default_rng([seed, 0]), breath=0.0)
    return ref, tuple(sample_findings(np.random.default_rng([seed, 11]), ref, rate, profile))


def _landmark_z(name, body):
    lm = body.landmarks
    lv = lm['levels']
    if name == 'vertex':
        return lv['C1'][0] + 180.0
    if name == 'apex':
        return lm['cage'].apex + 25.0
    if name == 'dome':
        return lm['dome'][1] + 25.0
    if name == 'pubis':
        return -70.0
    if name == 'thigh':
        return -95.0
    if name == 'knee':
        return -170.0
    if name.endswith('-'):
        return lv[name[:-1]][0] - 30.0
    return lv[name][0]


def _pose(rng):
    """Rotation of the whole body (a few degrees) and its smooth warp (see ``Raster``)."""
    ang = rng.normal(0.0, (1.5, 1.5, 2.5))
    # lateral and antero-posterior bends of the body axis, wavelengths 0.5-1.2 m
    bend_x = ((rng.normal(0, 5.0), 0.0, 0.0), (0.0, 0.0, 2 * np.pi / rng.uniform(500, 1200)))
    bend_y = ((0.0, rng.normal(0, 4.0), 0.0), (0.0, 0.0, 2 * np.pi / rng.uniform(500, 1200)))
    # one random displacement wave in a random direction, wavelength 15-35 cm
    d = rng.normal(0, 1, 3)
    d /= np.linalg.norm(d)
    wave = (tuple(rng.normal(0, 2.5, 3)), tuple(d * 2 * np.pi / rng.uniform(150, 350)))
    warp = [(np.asarray(a, np.float32), np.asarray(w, np.float32), float(rng.uniform(0, 2 * np.pi)))
            for a, w in (bend_x, bend_y, wave)]
    return rotation(*ang), warp


def _habitus(seed):
    rng = np.random.default_rng([seed, 5])
    sx = float(np.clip(rng.normal(1.0, 0.06), 0.86, 1.16))
    sy = float(np.clip(sx * rng.normal(1.0, 0.05), 0.84, 1.2))
    sz = float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1))
    return np.array([sx, sy, sz])


def _paint_outline(raster, body, tissue):
    """Body outline: air outside, subcutaneous fat, a muscle wall, the body cavity inside.

    The cross-section profile is looked up per slice at the slice's mean body-frame height (the
    tilt of the body moves it by a few mm across a slice, which the outline can afford); the
    in-plane coordinates are exact.
    """
    o = body.outline
    qx, qy, qz = raster.q
    zk = qz.mean(axis=(0, 1), dtype=np.float64)
    a = np.interp(zk, o['z'], o['a'])
    b = np.interp(zk, o['z'], o['b'])
    yc = np.interp(zk, o['z'], o['y'])
    fat = np.where(zk > body.landmarks['levels']['C7'][0], o['neck_fat'], o['fat'])
    cav = np.zeros(len(zk), np.uint8)
    lo = -np.inf
    for top, name in o['cavity']:
        cav[(zk > lo) & (zk <= top)] = TISSUE[name]
        lo = top
    # one normalised radius against the muscle boundary; the fat and wall layers are offsets
    # of about their thickness (exact on the short axis, a little thicker on the long one)
    valid = a > 1.0
    a_s = np.maximum(a, 1.0)
    b_s = np.maximum(b, 1.0)
    mean_r = 0.5 * (a_s + b_s)
    r = qx * qx
    r *= np.where(valid, 1.0 / a_s**2, 0.0).astype(np.float32)[None, None, :]
    dy = qy - yc.astype(np.float32)[None, None, :]
    dy *= dy
    dy *= np.where(valid, 1.0 / b_s**2, 1e6).astype(np.float32)[None, None, :]
    r += dy
    del dy
    np.sqrt(r, out=r)
    t_out = np.where(valid, 1.0 + fat / mean_r, 0.0).astype(np.float32)[None, None, :]
    t_in = np.where(valid, np.maximum(1.0 - o['wall'] / mean_r, 0.05),
                    0.0).astype(np.float32)[None, None, :]
    # uint8 arithmetic wraps around, so the sum lands exactly on the class of the innermost layer
    muscle, fat_c = np.uint8(TISSUE['muscle']), np.uint8(TISSUE['fat'])
    out = (r < t_out).view(np.uint8) * fat_c
    out += (r < 1.0).view(np.uint8) * (muscle - fat_c)
    out += (r < t_in).view(np.uint8) * (cav - muscle)[None, None, :]
    tissue[...] = out


_PLAIN = {
    'blood', 'myocardium', 'muscle_organ', 'adrenal', 'artery', 'vein', 'vein_ivc', 'vein_portal',
    'artery_pulmonary'
}


def _shade(piece, f, inside, sl, ctx):
    """Label and tissue class of a piece's voxels (scalars or arrays over ``inside``)."""
    org = LABEL.get(piece.organ, 0)
    sh = piece.shader
    p = piece.params
    if sh == 'lung':
        lung = ctx['body'].landmarks['lung', p['side']]
        names = LOBE_ORGANS[p['side']]
        lut = np.array([LABEL[names[0]], LABEL[names[1]], LABEL[names[-1]]], np.uint8)
        qx, qy, qz = ctx['raster'].coords(sl)
        lab = lut[lung.lobe_index(qx[inside], qy[inside], qz[inside])]
        vessel = ctx['tex'][sl][inside] > 1.75
        return lab, np.where(vessel, TISSUE['lung_vessel'], lab).astype(np.uint8)
    fi = f[inside]
    if sh == 'bone':
        core = org if org else TISSUE['cancellous_bone']
        return org, np.where(fi > p.get('cortex', 0.7), TISSUE['cortical_bone'],
                             core).astype(np.uint8)
    if sh == 'kidney':
        return org, np.where(fi > 0.72, org, TISSUE['kidney_medulla']).astype(np.uint8)
    if sh == 'gallbladder':
        wall = p.get('wall', 0.0)
        thr = 1.0 - wall / 16.0 if wall else 0.97  # a normal wall (1-2 mm) is below the voxel size
        return org, np.where(fi > thr, TISSUE['gb_wall'], TISSUE['bile']).astype(np.uint8)
    if sh == 'urinary_bladder':
        return org, np.where(fi > 0.9, TISSUE['bladder_wall'], TISSUE['urine']).astype(np.uint8)
    if sh == 'stomach':
        j = np.nonzero(inside)[1]
        y = j.astype(np.float32)  # voxel rows: world +y (anterior) is up for a supine patient
        level = y.min() + p['level'] * (y.max() - y.min() + 1)
        fluid = TISSUE['oral_contrast'] if p.get('oral') else TISSUE['gastric_fluid']
        t = np.where(y > level, TISSUE['gas'], fluid)
        return org, np.where(fi > 0.82, TISSUE['gastric_wall'], t).astype(np.uint8)
    if sh == 'bowel':
        t2 = ctx['tex'][sl][inside]
        thr = float(ndtri(1.0 - p.get('gas', 0.1)))
        fill = TISSUE['stool'] if p.get('stool') else (
            TISSUE['oral_contrast'] if p.get('oral') else TISSUE['bowel_fluid'])
        t = np.where(t2 > thr, TISSUE['gas'], fill)
        return org, np.where(fi > 0.78, TISSUE['bowel_wall'], t).astype(np.uint8)
    if sh == 'airway':
        return org, np.where(fi > 0.8, TISSUE['cartilage'], TISSUE['airway']).astype(np.uint8)
    if sh == 'esophagus':
        gas = (fi < 0.35) & (ctx['tex'][sl][inside] > 0.8)
        return org, np.where(gas, TISSUE['gas'], org).astype(np.uint8)
    if sh in ('skull', 'bone_dense'):
        return org, TISSUE['cortical_bone']
    if org and (sh in _PLAIN or sh == piece.organ):
        return org, org
    if sh in TISSUE:
        return org, TISSUE[sh]
    raise KeyError(f'unknown shader {sh!r} of piece {piece.organ!r}')


def _union(box, sl):
    if box is None:
        return sl
    return tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, sl))


def _liver_segment(p, lc):
    dx, dy, dz = p - lc
    if dx > -35:
        if dy > 10:
            return 'segment VIII' if dz > -10 else 'segment V'
        return 'segment VII' if dz > -10 else 'segment VI'
    if dx > -78:
        return 'segment IVa' if dz > 0 else 'segment IVb'
    return 'segment II' if dz > 5 else 'segment III'


def _location(body, f, target):
    lm = body.landmarks
    if f.organ == 'liver':
        return _liver_segment(target, lm['liver'])
    if f.organ.startswith('kidney'):
        k = lm['kidneys'][f.organ]
        if f.name == 'kidney stone' and k['sinus'].field(*target[:, None])[0] < 0.7:
            return 'renal pelvis'
        w = k['ellipsoid'].local(*target[:, None])[2][0]
        pole = 'upper pole' if w > 0.33 else 'lower pole' if w < -0.33 else 'interpolar region'
        return pole
    if f.organ == 'spleen':
        w = target[2] - lm['spleen'].center[2]
        return 'upper pole' if w > 12 else 'lower pole' if w < -12 else 'hilum'
    if f.organ == 'pancreas':
        t = f.params.get('t', 0.5)
        return 'head' if t < 0.3 else 'neck' if t < 0.42 else 'body' if t < 0.72 else 'tail'
    return ''


def _organ_z_ranges(body):
    """Bottom and top (body frame, mm) of every organ, from its pieces' boxes (lobes: fissures)."""
    ranges = {}
    for piece in body.pieces:
        if piece.organ and not piece.within and piece.parts.fns:
            lo, hi = ranges.get(piece.organ, (np.inf, -np.inf))
            ranges[piece.organ] = (min(lo, piece.parts.lo[2]), max(hi, piece.parts.hi[2]))
    for side, names in LOBE_ORGANS.items():
        lung = body.landmarks['lung', side]
        for lobe, name in zip((0, 1, 2) if side > 0 else (0, 2), names):
            ranges[name] = lung.lobe_z_range(lobe)
    return ranges


def _visible_organs(counts, body, z_lo, z_hi, min_vox):
    """Organs that the report may mention: enough voxels and a quarter of their height in view."""
    vis = set()
    for name, (lo, hi) in _organ_z_ranges(body).items():
        if counts[LABEL[name]] < min_vox:
            continue
        inter = max(0.0, min(hi, z_hi) - max(lo, z_lo))
        if inter >= _REPORT_MIN_Z_FRACTION * max(hi - lo, 1.0):
            vis.add(name)
    return vis


def render_study(plan):
    """Render one study.

    Args:
        plan: :class:`StudyPlan`.

    Returns:
        dict: ``image`` (int16 HU, I x J x K), ``organ_mask`` (uint8 labels), ``tumor_mask``
        (uint8 or None), ``affine`` (4 x 4, RAS mm), ``report``, ``findings``,
        ``abnormalities`` and ``meta`` (field of view, phase, organs present and reported,
        per-finding voxel shares, the rendered lesions with their voxel indices, ...).
    """
    rng = np.random.default_rng(plan.study_seed)
    noise_rng = np.random.default_rng(list(plan.study_seed) + [2])
    report_rng = np.random.default_rng(list(plan.study_seed) + [3])
    spacing = np.asarray(plan.spacing, float)
    ref, patient_findings = _patient_findings(plan.patient_seed, plan.abnormal_rate, plan.profile)

    # 1. the study: field of view, arms, phase, pose and the voxel grid
    names = list(FIELDS_OF_VIEW)
    fov = names[int(rng.choice(len(names), p=[FIELDS_OF_VIEW[n][0] for n in names]))]
    fov = plan.fov or fov
    p_up = {'head_neck': 0.05, 'neck_chest': 0.3, 'whole_body': 0.3}.get(fov, 0.85)
    body = build_body(plan.patient_seed, rng, geometry_of(patient_findings),
                      arms_up=rng.random() < p_up)
    _, bottom, top = FIELDS_OF_VIEW[fov]
    z_lo = _landmark_z(bottom, body) + rng.normal(0, 12)
    z_hi = _landmark_z(top, body) + rng.normal(0, 12)
    phase_p = (0.7, 0.05, 0.25) if fov == 'head_neck' else (0.25, 0.15, 0.6)
    phase = PHASES[int(rng.choice(3, p=phase_p))]
    raster = _grid(rng, plan, body, z_lo, z_hi)
    shape = raster.shape

    # 2. anatomy: organ labels and tissue classes
    label = np.zeros(shape, np.uint8)
    tissue = np.zeros(shape, np.uint8)
    tex = smooth_field(noise_rng, shape, spacing)
    _paint_outline(raster, body, tissue)
    _paint_couch(raster, body, tissue)
    boxes = _paint_pieces(raster, body, label, tissue, tex)

    # 3. HU: diffuse findings in the lookup table, texture, focal lesions
    hu_lut, amp_lut = tissue_lut(rng, phase, float(rng.uniform(0.75, 1.25)))
    emph_share = _diffuse_findings(patient_findings, hu_lut, label, tissue, tex, boxes)
    hu = hu_lut[tissue]
    hu += amp_lut[tissue] * tex
    counts = np.bincount(label.ravel(), minlength=256)
    min_vox = max(2, int(round(1000.0 / float(np.prod(spacing)))))
    visible = _visible_organs(counts, body, z_lo, z_hi, min_vox)
    rendered, tumor = _focal_findings(raster, body, ref, patient_findings, visible, hu, hu_lut,
                                      label, tissue, tex, boxes, counts)

    # 4. scanner noise and blur
    noise_sd = float(rng.uniform(7.0, 20.0))
    image = _scan(hu, noise_rng, spacing, noise_sd)

    # 5. what the study shows and the report about it
    grouped, shares = _study_findings(rendered, patient_findings, visible, label, tissue, boxes,
                                      counts, hu_lut, emph_share, spacing)
    report, findings = write_report(report_rng, ReportInput(
        fov=fov, phase=phase, visible=visible, findings=list(grouped.values()),
        spleen_cm=_spleen_cm(label, boxes, spacing, visible),
        bladder=body.landmarks.get('bladder', 'partially distended'), arms_up=body.arms_up))
    abnormalities = {}
    for lr in grouped.values():
        if organ_group(lr.organ) is not None and lr.name in VOCAB:
            abnormalities.setdefault(lr.organ, set()).add(lr.name)
    lesions = [_lesion_summary(image, label, spacing, *r) for r in rendered]
    present = [ORGANS[i - 1] for i in np.nonzero(counts[1:105])[0] + 1]
    meta = dict(fov=fov, phase=phase, shape=shape, visible=sorted(visible), present=present,
                shares=shares, noise_sd=noise_sd, lesions=lesions)
    return dict(image=image, organ_mask=label, tumor_mask=tumor, affine=raster.affine,
                report=report, findings=findings,
                abnormalities={k: sorted(v) for k, v in sorted(abnormalities.items())}, meta=meta)


def _grid(rng, plan, body, z_lo, z_hi):
    """Voxel grid of the study and the pose of the body in it (``Raster``)."""
    spacing = np.asarray(plan.spacing, float)
    scale = _habitus(plan.patient_seed)
    rot, warp = _pose(rng)
    # table position: the scanner's z coordinates say nothing about the anatomy
    shift = np.array([rng.normal(0, 12), rng.normal(0, 12), rng.uniform(-600, 600)])
    shape_xy = np.round(np.asarray(plan.fov_mm, float) / spacing[:2]).astype(int)
    nz = int(np.ceil((z_hi - z_lo) * scale[2] / spacing[2])) + 1
    shape = (int(shape_xy[0]), int(shape_xy[1]), nz)
    center_y = 25.0 * scale[1]  # the middle of the body, front to back
    origin = np.array([shift[0] + rng.normal(0, 8) - (shape[0] - 1) * spacing[0] / 2,
                       shift[1] + center_y + rng.normal(0, 8) - (shape[1] - 1) * spacing[1] / 2,
                       shift[2] + z_lo * scale[2]])
    return Raster(shape, spacing, origin, rot, shift, scale, warp)


def _paint_couch(raster, body, tissue):
    """The CT couch under the patient (fixed in the world frame, not rotated with the body)."""
    back = raster.shift[1] - (118.0 * raster.scale[1] + body.outline['fat'])
    j1 = int(np.floor((back - 6 - raster.origin[1]) / raster.spacing[1]))
    j0 = int(np.floor((back - 36 - raster.origin[1]) / raster.spacing[1]))
    if j1 > 0:
        band = tissue[:, max(j0, 0):j1]
        band[band == 0] = TISSUE['couch']


def _paint_pieces(raster, body, label, tissue, tex):
    """Paint every piece in order; returns ``{label: voxel box}`` of what was painted."""
    ctx = dict(body=body, raster=raster, tex=tex)
    # the voxel boxes of all parts of all pieces in one go
    parts = [piece.parts for piece in body.pieces]
    sizes = [len(p.fns) for p in parts]
    los = np.concatenate([p.los for p in parts if p.fns])
    his = np.concatenate([p.his for p in parts if p.fns])
    starts, stops = raster.boxes(los, his)
    ends = np.cumsum(sizes)
    boxes = {}
    for piece, n, end in zip(body.pieces, sizes, ends):
        if not n:
            continue
        sl, f = raster.evaluate_parts(piece.parts, (starts[end - n:end], stops[end - n:end]))
        if sl is None:
            continue
        inside = f < 1.0
        if piece.within:
            inside &= label[sl] == LABEL[piece.within]
        if not inside.any():
            continue
        lab, tis = _shade(piece, f, inside, sl, ctx)
        label[sl][inside] = lab
        tissue[sl][inside] = tis
        if isinstance(lab, np.ndarray):  # lungs: one piece, several lobes
            values = np.nonzero(np.bincount(lab))[0]
        else:
            values = (lab, )
        for value in values:
            if value:
                boxes[int(value)] = _union(boxes.get(int(value)), sl)
    return boxes


def _diffuse_findings(findings, hu_lut, label, tissue, tex, boxes):
    """Steatosis lowers the liver's HU; emphysema lowers the lobe's HU and adds low-attenuation
    patches. Returns ``{lobe: share of its voxels in patches}`` of the emphysema shown."""
    emph_share = {}
    for f in findings:
        if f.name == 'hepatic steatosis':
            hu_lut[LABEL['liver']] -= f.size
        if f.name != 'emphysema' or LABEL[f.organ] not in boxes:
            continue
        lobe = LABEL[f.organ]
        bx = boxes[lobe]
        in_lobe = label[bx] == lobe
        patch = in_lobe & (tex[bx] < ndtri(f.size))
        share = float(patch.sum()) / max(1, int(in_lobe.sum()))
        if share < 0.02:  # the part of the lobe in view happens to be spared: not reported
            continue
        hu_lut[lobe] -= {'mild': 15, 'moderate': 30, 'marked': 45}[f.grade]
        tissue[bx][patch] = TISSUE['emphysema']
        emph_share[f.organ] = share
    return emph_share


def _focal_findings(raster, body, ref, findings, visible, hu, hu_lut, label, tissue, tex, boxes,
                    counts):
    """Blend the focal lesions of visible organs into ``hu``.

    Returns:
        tuple: ``(rendered, tumor)``: ``(finding, slices, mask, diameter, centre voxel, location)``
        per lesion shown, and the tumour mask (uint8) or None.
    """
    rendered, tumor = [], None
    occupied = np.zeros(raster.shape, bool)
    # big soft lesions first, dense foci (stones, calcifications) last so that nothing covers them
    for f in sorted(findings, key=lambda f: (bool(f.params.get('dense')), -f.size)):
        if not f.focal or f.organ not in visible:
            continue
        c = locate(raster, label, body, f)
        if c is None:
            continue
        org = LABEL[f.organ]
        sl, mask, size = render_focal(raster, hu, label, tissue, tex, f, c, hu_lut[org], occupied)
        if sl is None:
            continue
        # locations are named on the reference body, so that follow-up studies agree
        loc = _location(ref, f, organ_anchor(ref, f.organ) + f.offset)
        rendered.append((f, sl, mask, size, c, loc))
        if f.params.get('union'):  # adrenal nodules grow the gland
            boxes[org] = _union(boxes[org], sl)
            counts[org] = int((label[boxes[org]] == org).sum())
        if f.tumor:
            if tumor is None:
                tumor = np.zeros(raster.shape, np.uint8)
            tumor[sl][mask] = 1
    return rendered, tumor


def _scan(hu, noise_rng, spacing, noise_sd):
    """Add noise, blur with the scanner's point spread (which correlates the noise), round."""
    sigma_vox = np.maximum(0.4, 1.2 / spacing)
    kernels = [np.exp(-0.5 * (np.arange(-3, 4) / s)**2) for s in sigma_vox]
    gain = float(np.prod([np.sum((k / k.sum())**2) for k in kernels]))**0.5
    noise = noise_rng.random(hu.shape, dtype=np.float32)  # uniform: cheap, Gaussian after blur
    noise -= np.float32(0.5)
    noise *= np.float32(np.sqrt(12.0) * noise_sd / gain)
    hu += noise
    del noise
    hu = gaussian_filter(hu, sigma_vox, truncate=2.5)
    np.clip(hu, -1024, 3071, out=hu)
    return np.rint(hu).astype(np.int16)


def _spleen_cm(label, boxes, spacing, visible):
    """Craniocaudal extent of the spleen in view (cm), 0 when not reported."""
    if 'spleen' not in visible:
        return 0.0
    bx = boxes[LABEL['spleen']]
    zs = np.nonzero((label[bx] == LABEL['spleen']).any(axis=(0, 1)))[0]
    return (zs.max() - zs.min() + 1) * spacing[2] / 10.0


_DIFFUSE_CLASS = {'hydronephrosis': 'collecting_fluid', 'pancreatic duct dilation': 'duct_fluid',
                  'gallbladder wall thickening': 'gb_wall'}


def _study_findings(rendered, findings, visible, label, tissue, boxes, counts, hu_lut, emph_share,
                    spacing):
    """What the report says: findings of visible organs with a signature in this image.

    Returns:
        tuple: ``({(name, organ): LesionReport}, [(name, organ, voxel share of the organ)])``.
    """
    grouped, voxels, shares = {}, {}, []
    for f, sl, mask, size, c, loc in rendered:
        key = (f.name, f.organ)
        lr = grouped.setdefault(key, LesionReport(f.name, f.organ, params=f.params))
        lr.sizes.append(size)
        voxels[key] = voxels.get(key, 0) + int(mask.sum())
        if size >= max(lr.sizes):
            lr.location = loc
    for (name, organ), lr in grouped.items():
        lr.sizes.sort(reverse=True)
        shares.append((name, organ, voxels[name, organ] / max(1, int(counts[LABEL[organ]]))))
    for f in findings:
        if f.focal or f.organ not in visible:
            continue
        lr = LesionReport(f.name, f.organ, grade=f.grade, params=f.params)
        org = LABEL[f.organ]
        if f.name == 'hepatic steatosis':
            lr.value, share = float(hu_lut[org]), 1.0
        elif f.name == 'splenomegaly':
            lr.value, share = _spleen_cm(label, boxes, spacing, visible), 1.0
        elif f.name == 'emphysema':
            if f.organ not in emph_share:
                continue
            lr.value, share = f.size, emph_share[f.organ]
        else:
            bx = boxes[org]
            n = int(((label[bx] == org) & (tissue[bx] == TISSUE[_DIFFUSE_CLASS[f.name]])).sum())
            if n == 0:  # too thin to show at this voxel size
                continue
            share = n / max(1, int(counts[org]))
            lr.value = f.size if f.name != 'hydronephrosis' else 10 + 15 * f.size
        grouped[f.name, f.organ] = lr
        shares.append((f.name, f.organ, share))
    return grouped, shares


def _lesion_summary(image, label, spacing, f, sl, mask, size, c, loc):
    """HU of a lesion's core and of its organ around it (for statistics and tests)."""
    org = LABEL[f.organ]
    index = np.argwhere(mask) + np.array([x.start for x in sl])
    dist = np.linalg.norm((index - c) * spacing, axis=1)
    core = dist <= size / 2.0 - 0.75 * float(spacing.min())  # a voxel inside the edge
    if not core.any():
        core = dist == dist.min()
    ring = (label[sl] == org) & ~mask
    return dict(name=f.name, organ=f.organ, diameter_mm=round(float(size), 1),
                center_vox=[round(float(v), 1) for v in c], location=loc, voxels=int(mask.sum()),
                lesion_hu=float(image[tuple(index[core].T)].mean()),
                organ_hu=float(np.median(image[sl][ring])) if ring.any() else float('nan'),
                index=index)
