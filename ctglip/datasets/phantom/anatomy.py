"""The anatomy model of the phantom: where each of the 104 TotalSegmentator v1 organs lies.

The body frame is RAS in millimetres for an average adult (about 175 cm): ``+x`` is the
patient's right, ``+y`` anterior, ``+z`` superior. The origin lies between the femoral heads;
the vertebral body centres lie near ``y = 0`` (see :func:`spine_y`). A patient's anatomy is
the average one with per-organ variation (shift, per-axis scale, rotation, harmonic shape
deformation), all drawn from random generators keyed by the organ name so that the same
patient gets the same organs in every study. A study then adds what changes between scans:
breathing (diaphragm level), bowel loops and gas, bladder filling, stomach distension and
arm position.

The model is a compromise between anatomical plausibility and speed: organs are unions of
ellipsoids, rounded cylinders and tubes; lungs are cut by a diaphragm dome and split into lobes
by fissure planes; ribs follow the thoracic cage; vertebrae are a body plus a neural arch,
spinous and transverse processes. It is not a segmentation atlas: proportions are right to a
centimetre or two, not to the millimetre.
"""
import random
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .geometry import (Cylinder, Ellipsoid, Parts, Tube, frame_from_axis, rotation,
                       transform_primitives)

__all__ = ['Piece', 'Body', 'build_body', 'spine_y', 'VERTEBRAE', 'LOBE_ORGANS']

VERTEBRAE = tuple([f'C{i}' for i in range(1, 8)] + [f'T{i}' for i in range(1, 13)]
                  + [f'L{i}' for i in range(1, 6)])
# Segment heights (vertebral body + disc, mm) from C1 down to L5; S1 starts at z = 130.
_SEGMENT = dict(C1=16, C2=32, C3=16, C4=16, C5=16, C6=16, C7=17, T1=21, T2=21, T3=22, T4=22,
                T5=23, T6=23, T7=24, T8=24, T9=24, T10=25, T11=26, T12=28, L1=34, L2=35, L3=35,
                L4=35, L5=35)
_SACRUM_TOP = 130.0

LOBE_ORGANS = {
    1: ('lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right'),
    -1: ('lung_upper_lobe_left', 'lung_lower_lobe_left')
}

_SPINE_Z = np.array([-40, 60, 110, 147, 217, 287, 345, 420, 500, 566, 620, 680, 716, 760.0])
_SPINE_Y = np.array([-45, -40, -15, 5, 12, 5, -5, -15, -12, -2, 8, 12, 8, 5.0])


def spine_y(z, curvature=1.0):
    """AP position (mm) of the vertebral body centre line at height ``z``."""
    return np.interp(z, _SPINE_Z, _SPINE_Y * curvature)


def _side_name(side):
    return 'right' if side > 0 else 'left'


@dataclass
class Piece:
    """One painted part of the body.

    Args:
        organ: TotalSegmentator organ name, or ``''`` for tissue without a label (fat, the
            skull, the sternum, the spinal canal, ...).
        prims: body-frame primitives whose union is the piece.
        shader: how its voxels look (``generator._shade``: bone, kidney, bowel, lung, ...).
        within: paint only over voxels already labelled with this organ (internal structure).
        params: shader parameters.
    """
    organ: str
    prims: list
    shader: str
    within: str = None
    params: dict = field(default_factory=dict)

    @property
    def parts(self):
        """The primitives' parts and boxes, computed once (see ``geometry.Parts``)."""
        if '_parts' not in self.__dict__:
            self.__dict__['_parts'] = Parts(self.prims)
        return self.__dict__['_parts']


@dataclass
class Body:
    """A patient's body for one study: painted pieces in order, plus landmarks for findings."""
    pieces: list
    outline: dict
    landmarks: dict
    organ_prims: dict
    arms_up: bool


class _Var:
    """Per-organ random variation drawn from a generator keyed by ``(patient seed, name)``.

    Python's ``random.Random`` is used because hundreds of these are made per study and it is
    cheap to seed; its sequence is fixed across platforms for a given integer seed.
    """

    def __init__(self, patient_seed, name):
        self.rng = random.Random((int(patient_seed) << 32) + zlib.crc32(name.encode()))

    def normals(self, n):
        g = self.rng.gauss
        return np.array([g(0.0, 1.0) for _ in range(n)])

    def vec(self, sigma):
        return self.normals(3) * np.broadcast_to(np.asarray(sigma, float), (3, ))

    def scale(self, sigma, common=0.0):
        return np.exp(self.normals(3) * sigma + self.rng.gauss(0.0, 1.0) * common)

    def rot(self, sigma_deg):
        return rotation(*(self.normals(3) * sigma_deg))

    def harm(self, amplitude):
        coef = self.normals(12) * amplitude
        coef[3:6] -= coef[3:6].mean()  # a traceless quadratic term leaves the mean size alone
        coef[9:] *= 0.6
        return coef

    def uniform(self, lo, hi):
        return self.rng.uniform(lo, hi)

    def normal(self, mu, sigma):
        return self.rng.gauss(mu, sigma)


def _vary(prims, var, center, shift=5.0, scale=0.08, rot=5.0, extra=(0, 0, 0), scale_mul=1.0):
    return transform_primitives(prims, center,
                                var.vec(shift) + np.asarray(extra, float), var.rot(rot),
                                var.scale(scale) * scale_mul)


def _jitter_points(points, var, sigma, ends=True):
    pts = np.asarray(points, float) + var.normals(3 * len(points)).reshape(-1, 3) * sigma
    if not ends:
        pts[[0, -1]] = np.asarray(points, float)[[0, -1]]
    return pts


# ---------------------------------------------------------------------------- thoracic cage
class Cage:
    """Inner surface of the thoracic cage: an elliptic cross-section that narrows to the apex."""

    def __init__(self, apex, half_width, half_depth, center_y, round_len, posterior=0.8):
        self.apex, self.a, self.b = apex, half_width, half_depth
        self.cy, self.length = center_y, round_len
        self.b_post = half_depth * posterior  # the cage is shallower behind its centre

    def profile(self, z):
        t = np.clip((self.apex - np.asarray(z, float)) / self.length, 0.0, 1.0)
        g = np.sqrt(t * (2.0 - t))
        return self.a * g, self.b * g


class Lung:
    """One lung: the cage half on one side, above the diaphragm dome, lateral to the mediastinum.

    ``field`` returns the implicit function; :meth:`lobe_index` splits it into lobes by the
    oblique fissure (a plane descending from posterior-superior to anterior-inferior) and, on
    the right, the horizontal fissure.
    """

    def __init__(self, side, cage, margin, medial, dome, dome_xy, dome_k, fissure, horizontal):
        self.side, self.cage, self.margin, self.medial = side, cage, margin, medial
        self.dome, self.dome_xy, self.dome_k = dome, dome_xy, dome_k
        self.fissure, self.horizontal = fissure, horizontal

    def bounds(self):
        c = self.cage
        lo_z = self.dome - self.dome_k * ((c.a + 40)**2 + 0.6 * (c.b + 40)**2) - 5
        lo_z = max(lo_z, self.dome - 130)
        xs = sorted([self.side * self.medial, self.side * (c.a + 2)])
        return (np.array([xs[0], c.cy - c.b_post - 2,
                          lo_z]), np.array([xs[1], c.cy + c.b + 2, c.apex + 2]))

    def parts(self):
        yield self.bounds(), self.field

    def field(self, x, y, z):
        c = self.cage
        t = np.clip((c.apex - z) * (1.0 / c.length), 0.0, 1.0)
        g = np.sqrt(t * (2.0 - t)) + 1e-3
        ax = c.a * g - self.margin
        ay = np.where(y < c.cy, np.float32(c.b_post), np.float32(c.b)) * g - self.margin
        np.maximum(ax, 1.0, out=ax)
        np.maximum(ay, 1.0, out=ay)
        ex, ey = x / ax, (y - c.cy) / ay
        f = np.sqrt(ex * ex + ey * ey)
        np.maximum(f, 1.0 + (self.medial - self.side * x) * 0.1, out=f)
        dx, dy = x - self.side * self.dome_xy[0], y - self.dome_xy[1]
        zd = self.dome - self.dome_k * (dx * dx + 0.6 * dy * dy)
        np.maximum(f, 1.0 + (zd - z) * 0.1, out=f)
        return f

    def lobe_index(self, x, y, z):
        """0 = upper, 1 = middle (right only), 2 = lower lobe, per voxel."""
        z0, slope, y0 = self.fissure
        lower = z < z0 - slope * (y - y0)
        idx = np.where(lower, 2, 0).astype(np.uint8)
        if self.side > 0:
            idx[(~lower) & (z < self.horizontal) & (y > y0 + 20)] = 1
        return idx

    def lobe_z_range(self, lobe):
        """Approximate (bottom, top) z of a lobe (0 upper, 1 middle, 2 lower) in mm."""
        lo, hi = self.bounds()
        z0, slope, y0 = self.fissure
        ant = z0 - slope * (hi[1] - y0)  # the oblique fissure is lowest anteriorly
        post = z0 - slope * (lo[1] - y0)
        if lobe == 0:
            return (max(ant, self.horizontal) if self.side > 0 else ant), hi[2]
        if lobe == 1:
            return ant, self.horizontal
        return lo[2], min(post, hi[2])

    def shifted(self, dz):
        """The same lung with the diaphragm ``dz`` mm higher (breathing)."""
        if not dz:
            return self
        lung = Lung.__new__(Lung)
        lung.__dict__.update(self.__dict__)
        lung.dome = self.dome + dz
        return lung


# ---------------------------------------------------------------------------- body builder
def _vertebra(name, zc, seg, curv, var):
    region = name[0]
    n = int(name[1:])
    yb = float(spine_y(zc, curv))
    if region == 'C':
        rx, ry, disc, canal, tr = 9 + 0.5 * n, 7.5 + 0.25 * n, 4.0, 9.0, 3.5
        sp_len, sp_drop, tp_len = (12 + 2 * n) if n < 7 else 28, 6.0, 12.0
    elif region == 'T':
        rx, ry, disc, canal, tr = 13 + 0.6 * n, 11 + 0.4 * n, 5.0, 7.5, 4.0
        sp_len, sp_drop, tp_len = 30.0, 18.0, 20.0
    else:
        rx, ry, disc, canal, tr = 21 + 0.8 * n, 15 + 0.6 * n, 9.0, 9.0, 4.5
        sp_len, sp_drop, tp_len = 30.0, 4.0, 28.0 if n != 5 else 22.0
    h = seg - disc
    prims = []
    ring_r = canal + tr
    cy = yb - ry - canal * 0.85
    if name == 'C1':
        ring = [(ring_r * 1.5 * np.sin(a), yb + 6 + ring_r * 1.3 * np.cos(a), zc)
                for a in np.deg2rad(np.arange(0, 361, 45))]
        prims += [Tube(ring, tr + 0.5)]
        for s in (1, -1):
            prims.append(Ellipsoid((s * 20, yb, zc), (8, 10, 7)))
            prims.append(Tube([(s * 20, yb, zc), (s * 38, yb - 5, zc)], 4.0))
    else:
        prims.append(Cylinder((0, yb, zc), (rx, ry, h / 2)))
        # neural arch: a solid block that the spinal canal (painted later) hollows into a ring
        prims.append(Ellipsoid((0, cy - 1, zc), (ring_r + 1.5, ring_r + 0.5, min(h / 2, 10.0))))
        sp_r = 6.0 if region == 'L' else tr
        prims.append(
            Tube([(0, cy - ring_r + 2, zc), (0, cy - ring_r - sp_len, zc - sp_drop)],
                 [sp_r, sp_r * 0.8]))
        back = 12.0 if region == 'T' else 6.0
        prims.append(
            Tube([(-(ring_r + tp_len), cy - back, zc), (ring_r + tp_len, cy - back, zc)], tr))
        if name == 'C2':
            prims.append(Tube([(0, yb + 2, zc + h / 2 - 2), (0, yb + 4, zc + h / 2 + 16)], 5.0))
    prims = transform_primitives(prims, (0, yb, zc), var.vec(1.0), var.rot(1.5), var.scale(0.03))
    return prims, dict(center=(0.0, yb, zc), ry=ry, canal_y=cy, canal=canal, tp=ring_r + tp_len)


# Painting order (lower first; later pieces overwrite earlier ones where they overlap).
ORDER = dict(limbs=1, lungs=10, bronchi=12, bowel=20, bladder=25, muscle=30, renal_vessels=35,
             liver=40, gallbladder=41, spleen=42, pancreas=43, pancreas_inner=44, kidney=45,
             kidney_inner=46, adrenal=48, heart=50, skull=55, brain=56, brain_inner=57, face=58,
             face_inner=59, neck=60, vessels=70, cartilage=79, bones=80, canal=90)


def build_body(patient_seed, study_rng, geometry=None, breath=None, arms_up=None):
    """Build the body of one study.

    The patient's anatomy (:func:`patient_anatomy`, cached) is moved by the study's breathing
    and completed with what changes between scans: stomach, bowel, bladder and arms.

    Args:
        patient_seed: integer seed of the patient (same anatomy in every study of a patient).
        study_rng: ``numpy.random.Generator`` of the study (breathing, bowel, bladder, arms).
        geometry: the patient's findings that change the anatomy, e.g.
            ``{'splenomegaly': 1.4, ('hydronephrosis', 'kidney_left'): 0.6,
            'pancreatic duct dilation': 3.5, 'gallbladder wall thickening': 6.0}``.
        breath: diaphragm offset in mm (positive: expiration); drawn from ``study_rng`` if None.
        arms_up: arms raised above the head (chest and abdomen CT) or down along the body;
            drawn from ``study_rng`` if None.

    Returns:
        Body: the pieces in painting order and the landmarks that findings and reports use.
    """
    geo = tuple(
        sorted(((k if isinstance(k, str) else '/'.join(k)), float(v))
               for k, v in (geometry or {}).items()))
    staged, lm0, outline = patient_anatomy(int(patient_seed), geo)
    drawn = float(study_rng.normal(0.0, 8.0))  # positive: expiration, the diaphragm is higher
    breath = drawn if breath is None else float(breath)
    drawn = bool(study_rng.random() < 0.6)
    arms_up = drawn if arms_up is None else bool(arms_up)
    lm = dict(lm0)
    lm['breath'] = breath
    lm['dome'] = {side: z + breath for side, z in lm0['dome'].items()}
    pieces = []
    for order, idx, piece, factor in staged:
        if factor and breath:
            prims = [
                prim.shifted(breath) if isinstance(prim, Lung) else prim for prim in piece.prims
            ]
            if not isinstance(piece.prims[0], Lung):
                prims = transform_primitives(prims, (0, 0, 0), (0, 0, factor * breath))
            piece = Piece(piece.organ, prims, piece.shader, piece.within, piece.params)
        pieces.append((order, idx, piece))
    for side in (1, -1):
        lm['lung', side] = lm0['lung', side].shifted(breath)
    extra = []

    def S(layer, organ, prims, shader=None, **kw):
        extra.append(
            (ORDER[layer], 100000 + len(extra), Piece(organ, list(prims), shader or organ, **kw)))

    _study_organs(patient_seed, study_rng, lm, breath, arms_up, S)
    pieces = sorted(pieces + extra, key=lambda t: (t[0], t[1]))
    pieces = [p for _, _, p in pieces]
    organ_prims = {}
    for p in pieces:
        if p.organ and not p.within:
            organ_prims.setdefault(p.organ, []).extend(p.prims)
    for side in (1, -1):
        for name in LOBE_ORGANS[side]:
            organ_prims[name] = [lm['lung', side]]
    return Body(pieces=pieces, outline=outline, landmarks=lm, organ_prims=organ_prims,
                arms_up=arms_up)


@lru_cache(maxsize=4)
def patient_anatomy(patient_seed, geometry=()):
    """The patient-level anatomy at rest breathing (cached per process).

    Returns:
        tuple: ``(staged, landmarks, outline)`` where ``staged`` holds ``(order, index, piece,
        breath factor)``; a piece moves ``factor * breath`` mm along z with the diaphragm.
    """
    geo = {}
    for k, v in geometry:
        geo[tuple(k.split('/')) if '/' in k else k] = v
    V = lambda name: _Var(patient_seed, name)  # noqa: E731
    hab = V('habitus')
    curv = hab.uniform(0.7, 1.3)
    ys = lambda zz, dy: float(spine_y(zz, curv)) + dy  # noqa: E731
    staged, lm = [], {}
    lm['curv'] = curv

    def S(layer, organ, prims, shader=None, breath=0.0, **kw):
        staged.append((ORDER[layer], len(staged), Piece(organ, list(prims), shader or organ,
                                                        **kw), breath))

    # ---- spine levels
    seg_scale = hab.uniform(0.96, 1.04)
    z = _SACRUM_TOP
    levels = {}
    for name in reversed(VERTEBRAE):
        seg = _SEGMENT[name] * seg_scale * V('seg' + name).uniform(0.97, 1.03)
        levels[name] = (z + seg / 2.0, seg)
        z += seg
    lm['levels'] = levels
    lz = {name: zc for name, (zc, _) in levels.items()}

    # ---- body outline: cross-section ellipses of the muscle boundary (fat added outside)
    fat = hab.uniform(6.0, 42.0)
    vfat = max(0.0, fat - 15.0) * hab.uniform(0.3, 1.0)
    head_top = lz['C1'] + 172.0
    neck = lz['C7'] + 25.0
    c1 = lz['C1']
    # z, half-width, half-depth and centre y of the muscle boundary, pelvis to vertex
    profile = np.array([(-75, 0, 0, 10), (-60, 150, 100, 10), (0, 165, 108, 12),
                        (100, 162, 110, 18), (170, 152, 115 + vfat, 28),
                        (250, 150 + vfat * 0.5, 122 + vfat, 30 + vfat * 0.7),
                        (330, 168, 122 + vfat * 0.6, 28), (420, 180, 125, 22), (500, 182, 122, 18),
                        (560, 186, 112, 12), (590, 165, 90, 10), (neck, 90, 70, 16),
                        (neck + 13, 62, 58, 22), (lz['C3'], 58, 60, 26), (c1 - 8, 64, 84, 40),
                        (c1 + 40, 74, 96, 30), (c1 + 90, 76, 96, 15), (c1 + 150, 70, 90, 12),
                        (head_top - 20, 50, 62, 10), (head_top - 2, 20, 25, 10),
                        (head_top + 3, 0, 0, 10)], float)
    oz, oa, ob, oy = profile.T
    outline = dict(z=oz, a=oa, b=ob, y=oy, fat=fat, neck_fat=min(fat, 8.0) * 0.7,
                   wall=hab.uniform(9.0, 15.0),
                   cavity=((lz['T12'] + 40, 'visceral_fat'), (neck - 30, 'mediastinal_fat'),
                           (1e9, 'muscle')))

    # ---- thoracic cage and lungs
    cage = Cage(apex=lz['T1'] + 24 + hab.normal(0, 4), half_width=150 * hab.uniform(0.93, 1.07),
                half_depth=100 * hab.uniform(0.9, 1.1), center_y=20.0, round_len=200.0)
    lm['cage'] = cage
    dome_r = lz['T9'] + 8 + hab.normal(0, 8)
    dome_l = dome_r - 12 + hab.normal(0, 4)
    lm['dome'] = {1: dome_r, -1: dome_l}
    for side in (1, -1):
        lv = V('lung' + _side_name(side))
        fissure = (lz['T4'] + lv.normal(0, 8), lv.uniform(0.75, 0.95), -60.0)
        lung = Lung(side, cage, margin=7.0, medial=14.0 + lv.normal(0, 2), dome=lm['dome'][side],
                    dome_xy=(72.0, 30.0), dome_k=0.0095 * lv.uniform(0.85, 1.15),
                    fissure=fissure, horizontal=lz['T7'] + lv.normal(0, 8))
        lm['lung', side] = lung
        S('lungs', LOBE_ORGANS[side][0], [lung], 'lung', breath=1.0, params=dict(side=side))

    # ---- head
    bv = V('brain')
    brain_c = np.array([0.0, 15.0, lz['C1'] + 90.0])
    brain = _vary([
        Ellipsoid(brain_c, (68, 84, 60), harm=bv.harm(0.03)),
        Ellipsoid(brain_c + (0, -45, -48), (48, 30, 24)),
        Tube([brain_c + (0, -5, -30), brain_c + (0, -12, -75)], [13, 10])
    ], bv, brain_c, 2, 0.05, 2)
    lm['brain'] = brain_c
    S('skull', '', [Ellipsoid(p.center, p.radii + 7, p.rot, p.harm)
                    for p in brain[:2]] + [Ellipsoid(brain_c + (0, 5, -62), (58, 62, 9))], 'skull')
    S('brain', 'brain', brain)
    ventricles = [Ellipsoid(brain_c + (s * 9, 5, 8), (5, 26, 9)) for s in (1, -1)]
    S('brain_inner', 'brain', ventricles, 'csf', within='brain')
    fv = V('face')
    fc = brain_c + (0, 72, -70)
    face = [Ellipsoid(fc, (56, 32, 58), harm=fv.harm(0.06)),
            Ellipsoid(fc + (0, 28, 0), (12, 14, 26))]
    S('face', 'face', _vary(face, fv, fc, 3, 0.06, 3))
    mandible = [Tube([fc + (s * 50, -45, -30), fc + (s * 45, -15, -55), fc + (s * 20, 15, -62),
                      fc + (0, 22, -64)], 6.0) for s in (1, -1)]
    sinuses = [Ellipsoid(fc + (s * 24, 5, 2), (12, 14, 15)) for s in (1, -1)]
    nasal = Tube([fc + (0, 22, -10), fc + (0, 10, 25)], 5.0)
    eyes = [Ellipsoid(fc + (s * 32, 8, 38), (12, 12, 11)) for s in (1, -1)]
    S('face_inner', 'face', mandible, 'bone_dense', within='face')
    S('face_inner', 'face', sinuses + [nasal], 'air', within='face')
    S('face_inner', 'face', eyes, 'eye', within='face')

    # ---- neck and mediastinum: trachea, esophagus, carotids and jugular veins
    c3z, c6z, t2z, t4z, t8z = lz['C3'], lz['C6'], lz['T2'], lz['T4'], lz['T8']
    tv = V('trachea')
    carina = np.array([2.0, ys(t4z, 48), t4z + 5])
    trachea = _jitter_points([(0, ys(c3z, 50), c3z - 5), (0, ys(c6z, 48), c6z),
                              (0, ys(t2z, 45), t2z), carina], tv, 2)
    trachea_r = np.array([8, 9, 9.5, 9.5]) * np.exp(tv.normal(0, 0.08))
    S('neck', 'trachea', [Tube(trachea, trachea_r)], 'airway')
    S('bronchi', '', [Tube([carina, carina + (s * 35, -8, -22)], 6.5) for s in (1, -1)], 'airway')
    ev = V('esophagus')
    ge = np.array([-45.0, 42.0, dome_l - 30])
    esophagus = _jitter_points([(0, ys(c6z, 30), c6z), (-3, ys(t2z, 28), t2z),
                                (-5, ys(t4z, 27), t4z), (-10, ys(t8z, 30), t8z),
                                (-25, 32, dome_l - 12), ge], ev, 2.5)
    S('neck', 'esophagus', [Tube(esophagus, 7.5 * np.exp(ev.normal(0, 0.08)))], 'esophagus')
    for s in (1, -1):
        carotid = Tube([(s * 22, ys(c3z, 40), c3z), (s * 25, ys(t2z, 42), t2z)], 4.0)
        jugular = Tube([(s * 32, ys(c3z, 38), c3z), (s * 35, ys(t2z, 40), t2z)], 5.0)
        S('neck', '', [carotid], 'artery')
        S('neck', '', [jugular], 'vein')

    # ---- heart
    hv = V('heart')
    hc = np.array([-18.0, 72.0, dome_l + 38.0])
    apex_dir = np.array([-0.6, 0.45, -0.45]) + hv.vec(0.08)
    apex_dir /= np.linalg.norm(apex_dir)
    hframe = frame_from_axis(apex_dir)
    lv_c = hc + apex_dir * 12
    heart = [('heart_ventricle_right',
              Ellipsoid(hc + (12, 22, -12), (34, 15, 38),
                        frame_from_axis(apex_dir + (0.5, 0.3, 0)))),
             ('heart_myocardium', Ellipsoid(lv_c, (32, 32, 48), hframe, hv.harm(0.03))),
             ('heart_ventricle_left', Ellipsoid(lv_c + apex_dir * 2, (21, 21, 36), hframe)),
             ('heart_atrium_right', Ellipsoid(hc + (45, -10, 10), (24, 22, 27),
                                              harm=hv.harm(0.05))),
             ('heart_atrium_left', Ellipsoid(hc + (2, -38, 25), (28, 17, 19), harm=hv.harm(0.05)))]
    hrot, hshift = hv.rot(5), hv.vec(4)
    hscale = hv.uniform(0.9, 1.1) * geo.get('cardiomegaly', 1.0)
    for name, prim in heart:
        shader = 'myocardium' if name == 'heart_myocardium' else 'blood'
        S('heart', name, transform_primitives([prim], hc, hshift, hrot, hscale), shader, breath=0.7)
    hc = hc + hshift
    lm['heart'] = hc

    # ---- great vessels
    av = V('aorta')
    t11z, l1z, l4z, l5z = lz['T11'], lz['L1'], lz['L4'], lz['L5']
    root = hc + (20, -5, 25)
    aorta_pts = [root, root + (4, -2, 35), (6, ys(t2z, 42), t2z - 8),
                 (-12, ys(lz['T3'], 25), lz['T3']), (-24, ys(t4z, 14), t4z - 10),
                 (-24, ys(t8z, 18), t8z), (-16, ys(t11z, 24), t11z), (-10, ys(l1z, 28), l1z),
                 (-8, ys(l4z, 27), l4z + 10)]
    aorta_pts = _jitter_points(aorta_pts, av, 2.0)
    aorta_r = np.array([15, 15, 13.5, 12.5, 12, 11.5, 11, 10.5, 9.5]) * np.exp(av.normal(0, 0.08))
    S('vessels', 'aorta', [Tube(aorta_pts, aorta_r)], 'artery')
    lm['aorta'] = (aorta_pts, aorta_r)
    bif = aorta_pts[-1]
    pv = V('pulmonary_artery')
    pa0 = hc + (-2, 30, 22)
    pab = pa0 + (-6, -28, 38)  # bifurcation of the pulmonary trunk
    trunk = Tube(_jitter_points([pa0, pa0 + (-6, -12, 22), pab], pv, 2), [13, 13.5, 12])
    right_pa = Tube([pab, pab + (40, -8, -2), pab + (62, -15, -8)], [10, 9, 8])
    left_pa = Tube([pab, pab + (-30, -10, 6), pab + (-50, -22, 0)], [10, 9, 8])
    S('vessels', 'pulmonary_artery', [trunk, right_pa, left_pa], 'artery_pulmonary', breath=0.5)
    iv = V('inferior_vena_cava')
    ivc_pts = _jitter_points([(18, ys(l5z, 18), l5z + 5), (20, ys(lz['L3'], 24), lz['L3']),
                              (24, ys(l1z, 30), l1z), (28, ys(t11z, 35), t11z),
                              (30, 38, dome_r - 10), hc + (40, -10, -2)], iv, 2.5)
    ivc_r = np.array([10, 11, 12, 12.5, 13, 13]) * np.exp(iv.normal(0, 0.1))
    S('vessels', 'inferior_vena_cava', [Tube(ivc_pts, ivc_r)], 'vein_ivc')
    for s in (1, -1):
        side = _side_name(s)
        ia = V('iliac_artery_' + side)
        pts = [bif, (s * 35, ys(l5z, 30), l5z - 15), (s * 60, 28, 110), (s * 75, 38, 60),
               (s * 85, 52, 10), (s * 88, 56, -25)]
        radii = np.array([7.5, 6.5, 6, 5.5, 5.5, 5.5]) * np.exp(ia.normal(0, 0.08))
        S('vessels', 'iliac_artery_' + side,
          [Tube(_jitter_points(pts, ia, 2.5, ends=False), radii)], 'artery')
        ivn = V('iliac_vena_' + side)
        pts = [ivc_pts[0], (s * 30, ys(l5z, 12), l5z - 25), (s * 55, 12, 110), (s * 72, 25, 60),
               (s * 80, 42, 10), (s * 83, 47, -25)]
        radii = np.array([9, 8, 7.5, 7, 7, 7]) * np.exp(ivn.normal(0, 0.08))
        S('vessels', 'iliac_vena_' + side,
          [Tube(_jitter_points(pts, ivn, 2.5, ends=False), radii)], 'vein')

    # ---- upper abdomen (moves with the diaphragm)
    lvv = V('liver')
    lc = np.array([72.0, 30.0, dome_r - 62.0])
    liver = [Ellipsoid(lc, (70, 75, 62), rotation(0, 0, -10), lvv.harm(0.08)),  # right lobe
             Ellipsoid(lc + (-60, 38, 8), (45, 34, 38), rotation(0, -15, 15), lvv.harm(0.1)),
             Ellipsoid(lc + (-95, 45, 12), (30, 25, 22), rotation(0, -20, 10), lvv.harm(0.1)),
             Ellipsoid(lc + (10, 20, -40), (45, 45, 40), harm=lvv.harm(0.12))]  # inferior tip
    liver = _vary(liver, lvv, lc, 5, 0.08, 4)
    S('liver', 'liver', liver, breath=1.0)
    lm['liver'] = liver[0].center
    gv = V('gallbladder')
    gc = liver[0].center + (-18, 52, -48)
    gb = _vary([Ellipsoid(gc, (16, 17, 38), rotation(30, 0, 20), gv.harm(0.1))], gv, gc,
               6, 0.15, 10)
    wall = geo.get('gallbladder wall thickening', 0.0)
    S('gallbladder', 'gallbladder', gb, 'gallbladder', breath=1.0, params=dict(wall=wall))
    lm['gallbladder'] = gb[0]
    sv = V('spleen')
    sc = np.array([-98.0, -15.0, dome_l - 55.0])
    smeg = geo.get('splenomegaly', 1.0)  # an enlarged spleen grows forwards and down
    grow = (-(smeg - 1) * 15, (smeg - 1) * 30, -(smeg - 1) * 35)
    spleen = _vary([Ellipsoid(sc, (24, 55, 45), rotation(-10, 0, 38), sv.harm(0.1))], sv, sc,
                   6, 0.1, 8, extra=grow, scale_mul=smeg)
    S('spleen', 'spleen', spleen, breath=1.0)
    lm['spleen'] = spleen[0]
    kidneys = {}
    for s in (1, -1):
        name = 'kidney_' + _side_name(s)
        kv = V(name)
        kc = np.array([s * 74.0, -4.0, l1z - (22 if s > 0 else 8)])  # the right one is lower
        kid = Ellipsoid(kc, (27, 22, 54), rotation(-15, s * 14, s * 28), kv.harm(0.06))
        k = _vary([kid], kv, kc, (5, 5, 10), 0.07, 6)[0]
        S('kidney', name, [k], 'kidney', breath=0.6)
        hilum = k.rot @ np.array([-s * 1.0, 0.6, 0.0])
        hilum /= np.linalg.norm(hilum)
        sinus_c = k.center + hilum * k.radii[0] * 0.45
        hyd = geo.get(('hydronephrosis', name), 0.0)
        sinus = Ellipsoid(sinus_c, k.radii * np.array([0.33, 0.38, 0.5]) * (1 + 0.5 * hyd), k.rot)
        shader = 'collecting_fluid' if hyd else 'renal_sinus'
        S('kidney_inner', name, [sinus], shader, within=name, breath=0.6)
        if hyd:  # dilated calyces towards the poles and the middle
            calyces = [Tube([sinus_c, k.center + k.rot @ (np.array([0.1 * s, 0.1, d]) * k.radii)],
                            3.5 + 3.5 * hyd) for d in (-0.62, 0.0, 0.62)]
            S('kidney_inner', name, calyces, 'collecting_fluid', within=name, breath=0.6)
        kidneys[name] = dict(ellipsoid=k, sinus=sinus, hilum=hilum)
        renal_vein = Tube([sinus_c, (s * 18, ys(l1z, 30), kc[2] + 5)], 4.5)
        S('renal_vessels', '', [renal_vein], 'vein', breath=0.6)
    lm['kidneys'] = kidneys
    for s in (1, -1):
        name = 'adrenal_gland_' + _side_name(s)
        adv = V(name)
        k = kidneys['kidney_' + _side_name(s)]['ellipsoid']
        ac = k.center + k.rot @ np.array([0, 0, k.radii[2]]) + (-s * 12, 16, 10)
        limbs = [Ellipsoid(ac, (4.5, 14, 18), rotation(0, 0, s * 30), adv.harm(0.1)),
                 Ellipsoid(ac + (-s * 4, -8, -8), (4, 10, 10), rotation(0, 0, -s * 30))]
        ad = _vary(limbs, adv, ac, 3, 0.1, 10)
        S('adrenal', name, ad, 'adrenal', breath=0.6)
        lm[name] = ad[0]
    pcv = V('pancreas')
    panc_pts = _jitter_points([(40, 56, l1z - 20), (12, 72, l1z - 8), (-20, 66, l1z + 2),
                               (-58, 40, l1z + 12), (-82, 18, l1z + 18)], pcv, 4)  # head to tail
    panc_r = np.array([16, 11, 10.5, 9.5, 8]) * np.exp(pcv.normal(0, 0.08))
    S('pancreas', 'pancreas', [Tube(panc_pts, panc_r)], breath=0.6)
    lm['pancreas'] = (panc_pts, panc_r)
    duct = geo.get('pancreatic duct dilation', 0.0)
    if duct:
        S('pancreas_inner', 'pancreas', [Tube(panc_pts[1:] + (0, 2, 0), duct)], 'duct_fluid',
          within='pancreas', breath=0.6)
    pvv = V('portal_vein_and_splenic_vein')
    conf = (panc_pts[1] + panc_pts[2]) / 2 + (4, -16, 0)  # behind the pancreatic neck
    hil = liver[0].center + (-30, 20, -10)
    splen_hil = spleen[0].center + (22, 25, 0)
    splenic = Tube(_jitter_points([splen_hil, panc_pts[3] + (2, -14, 2), panc_pts[2] + (0, -14, 0),
                                   conf], pvv, 2), [6, 5.5, 5.5, 7])
    portal = Tube(_jitter_points([conf, conf + (15, 0, 18), hil], pvv, 2), [8, 8, 7])
    S('vessels', 'portal_vein_and_splenic_vein', [splenic, portal], 'vein_portal', breath=0.7)
    lm['ge'] = ge
    lm['l1z'] = l1z

    # ---- muscles
    for s in (1, -1):
        side = _side_name(s)
        mv = V('autochthon_' + side)  # erector spinae: beside the spinous processes
        zs = [l5z - 40, l4z, lz['L2'], lz['T12'], t8z, t4z, lz['T1'], lz['C4']]
        pts = [(s * (32 if zz < 400 else 27), ys(zz, -52 if zz < 320 else -46), zz) for zz in zs]
        rr = np.array([22, 28, 29, 25, 20, 17, 14, 11]) * mv.uniform(0.85, 1.15)
        S('muscle', 'autochthon_' + side, [Tube(_jitter_points(pts, mv, 2), rr)], 'muscle_organ')
        pv_ = V('iliopsoas_' + side)  # psoas along the lumbar spine, iliacus in the iliac fossa
        pts = [(s * 22, ys(lz['T12'], 4), lz['T12'] - 8), (s * 36, ys(lz['L2'], 10), lz['L2']),
               (s * 46, ys(l4z, 16), l4z), (s * 56, 24, 125), (s * 68, 38, 62), (s * 74, 50, 12),
               (s * 80, 42, -40)]
        rr = np.array([7, 13, 19, 22, 24, 19, 14]) * pv_.uniform(0.85, 1.15)
        iliacus = Ellipsoid((s * 72, 10, 118), (14, 32, 42), rotation(0, 0, -s * 40),
                            pv_.harm(0.08))
        S('muscle', 'iliopsoas_' + side, [Tube(_jitter_points(pts, pv_, 2), rr), iliacus],
          'muscle_organ')
        for gname, c, r, ang in (('gluteus_maximus_', (s * 78, -66, 35), (58, 28, 82), 20),
                                 ('gluteus_medius_', (s * 118, -25, 115), (24, 48, 45), 40),
                                 ('gluteus_minimus_', (s * 106, -5, 92), (14, 36, 32), 40)):
            gmv = V(gname + side)
            muscle = Ellipsoid(c, r, rotation(0, -s * 10, -s * ang), gmv.harm(0.08))
            S('muscle', gname + side, _vary([muscle], gmv, c, 4, 0.08, 4), 'muscle_organ')

    # ---- spine, pelvis, femurs
    vinfo = {}
    for name in VERTEBRAE:
        zc, seg = levels[name]
        prims, vinfo[name] = _vertebra(name, zc, seg, curv, V('vertebrae_' + name))
        S('bones', 'vertebrae_' + name, prims, 'bone', params=dict(cortex=0.8))
    lm['vertebrae'] = vinfo
    sv_ = V('sacrum')
    s1 = np.array([0.0, ys(_SACRUM_TOP - 15, 0), _SACRUM_TOP - 18])
    sac = [Ellipsoid(s1, (30, 18, 20), rotation(-35, 0, 0)),  # tilted, curving backwards
           Ellipsoid(s1 + (0, -22, -45), (24, 13, 30), rotation(-25, 0, 0)),
           Ellipsoid(s1 + (0, -38, -90), (12, 9, 22), rotation(-10, 0, 0))]
    sac += [Ellipsoid(s1 + (s * 36, -10, -8), (22, 16, 22), rotation(-25, 0, s * 10))
            for s in (1, -1)]  # alae
    sac = transform_primitives(sac, s1, sv_.vec(2), sv_.rot(2), sv_.scale(0.04))
    S('bones', 'sacrum', sac, 'bone', params=dict(cortex=0.75))
    for s in (1, -1):
        side = _side_name(s)
        hv_ = V('hip_' + side)
        acet = np.array([s * 84.0, 12.0, 12.0])  # acetabulum
        wing = frame_from_axis((-s * 0.72, 0.62, 0.12))  # the iliac fossa faces forwards-inwards
        hip = [Ellipsoid((s * 88, -2, 112), (48, 58, 7), wing, hv_.harm(0.05)),
               Tube([(s * 50, -38, 118), (s * 90, -20, 165), (s * 118, 30, 150),
                     (s * 120, 48, 128)], [9, 8, 8, 9]),  # iliac crest
               Ellipsoid(acet + (s * 2, -4, 10), (27, 30, 34)),
               Tube([acet + (-s * 10, 20, -5), (s * 40, 52, -8), (s * 14, 62, -14)],
                    [10, 9, 9]),  # superior pubic ramus
               Tube([acet + (-s * 5, -20, -15), (s * 62, -24, -55), (s * 45, -5, -62),
                     (s * 22, 45, -30)], [12, 13, 9, 8])]  # ischium and inferior ramus
        hip = transform_primitives(hip, acet, hv_.vec(2), hv_.rot(2), hv_.scale(0.05))
        S('bones', 'hip_' + side, hip, 'bone', params=dict(cortex=0.62))
        fv_ = V('femur_' + side)
        head = acet + (s * 1, 2, -2)
        femur = [Ellipsoid(head, (24, 24, 24)),
                 Tube([head, head + (s * 32, -6, -32)], [15, 16]),  # neck
                 Ellipsoid(head + (s * 42, -14, -30), (17, 20, 26)),  # greater trochanter
                 Tube([head + (s * 30, -4, -48), head + (s * 18, 8, -250),
                       head + (s * 8, 14, -430)], [15, 13.5, 14]),  # shaft
                 Ellipsoid(head + (s * 24, -5, -62), (10, 10, 14))]  # lesser trochanter
        femur = transform_primitives(femur, head, fv_.vec(2), fv_.rot(2), fv_.scale(0.04))
        S('bones', 'femur_' + side, femur, 'bone', params=dict(cortex=0.6))
        S('limbs', '', [Tube([head + (s * 12, 0, 10), head + (s * 12, 6, -460)], 78)], 'muscle')

    _ribs_and_shoulders(V, lz, curv, cage, S, lm)

    # spinal canal (label 0) through the neural arches
    levels_c = VERTEBRAE[1:][::-1][::2]  # L5 up to C2, every other level
    canal_pts = [(0.0, ys(_SACRUM_TOP - 30, -22), _SACRUM_TOP - 30)]  # sacral canal
    canal_pts += [(0.0, vinfo[n]['canal_y'], vinfo[n]['center'][2]) for n in levels_c]
    canal_r = [6.0] + [vinfo[n]['canal'] * 0.92 for n in levels_c]
    S('canal', '', [Tube(canal_pts, canal_r)], 'canal')
    return staged, lm, outline


def _study_organs(patient_seed, study_rng, lm, breath, arms_up, S):
    """Organs that change between studies: stomach, bowel, bladder, arms."""
    V = lambda name: _Var(patient_seed, name)  # noqa: E731
    dome_l = lm['dome'][-1]  # already moved by the breathing
    l1z = lm['l1z'] + 0.6 * breath
    ge = lm['ge'] + (0, 0, 0.5 * breath)

    # stomach: fundus under the left dome, antrum and pylorus in front of the pancreas
    st_pts = np.array([ge + (-12, -10, 8), (-70, 40, dome_l - 55), (-55, 75, dome_l - 92),
                       (-20, 95, l1z + 5), (15, 85, l1z - 3), (32, 68, l1z - 6)])
    st_pts = _jitter_points(st_pts, V('stomach'), 4) + study_rng.normal(0, 4, (6, 3))
    st_r = np.array([32, 34, 29, 21, 14, 10]) * study_rng.uniform(0.75, 1.25)
    oral = bool(study_rng.random() < 0.15)  # positive oral contrast in stomach and small bowel
    level = float(study_rng.uniform(0.25, 0.7))
    S('bowel', 'stomach', [Tube(st_pts, st_r)], 'stomach', params=dict(level=level, oral=oral))

    # duodenal C-loop from the pylorus around the pancreatic head
    d0 = st_pts[-1]
    dv = V('duodenum')
    duo = _jitter_points([d0, d0 + (18, -12, -6), (55, 45, l1z - 35), (50, 38, l1z - 62),
                          (15, 55, l1z - 72), (-20, 55, l1z - 66), (-30, 58, l1z - 42)], dv, 3)
    S('bowel', 'duodenum', [Tube(duo, 11.5 * np.exp(dv.normal(0, 0.08)))], 'bowel',
      params=dict(gas=0.1, oral=oral))

    # small bowel loops (new every study) and the colon frame (the patient's, jittered)
    loops = Tube(_small_bowel(study_rng, lm['l1z']), study_rng.uniform(10, 13.5))
    S('bowel', 'small_bowel', [loops], 'bowel', params=dict(gas=0.08, oral=oral))
    colon_pts = np.array([(68, 45, 150), (80, 25, 205), (80, 25, 260), (66, 55, 295),
                          (25, 112, 262), (-30, 110, 268), (-80, 40, 318), (-92, 12, 262),
                          (-88, 15, 180), (-60, 52, 120), (-20, 60, 98), (5, 18, 80), (0, -28, 62),
                          (0, -42, 25), (0, -45, -15.0)])
    colon_pts = _jitter_points(colon_pts, V('colon'), 6) + study_rng.normal(0, 6, colon_pts.shape)
    colon_r = np.array([27, 24, 23, 22, 22, 21, 21, 19, 19, 17, 16, 16, 19, 18, 10.0])
    colon_r = colon_r * np.exp(study_rng.normal(0, 0.1, len(colon_r)))
    S('bowel', 'colon', [Tube(colon_pts, colon_r)], 'bowel', params=dict(gas=0.35, stool=True))

    # urinary bladder: its filling changes its size; it grows upwards from the pelvic floor
    fill = float(study_rng.uniform(0.45, 1.6))
    lm['bladder'] = ('well distended' if fill > 1.1 else
                     'decompressed' if fill < 0.7 else 'partially distended')
    brad = np.array([38, 34, 30]) * fill**(1 / 3)
    bc = np.array([0.0, 52.0, 22.0 + brad[2]])
    ubv = V('urinary_bladder')
    S('bladder', 'urinary_bladder',
      _vary([Ellipsoid(bc, brad, harm=ubv.harm(0.06))], ubv, bc, 4, 0.05, 4), 'urinary_bladder')

    # arms: raised beside the head or hanging along the body
    for s in (1, -1):
        side = _side_name(s)
        head = lm['humeral_head', s]
        hv = V('humerus_' + side)
        if arms_up:
            elbow = head + (-s * 40, 30, 290) + hv.vec(10)
        else:
            elbow = head + (s * 32, 5, -290) + hv.vec(10)
        axis = (elbow - head) / np.linalg.norm(elbow - head)
        condyles = frame_from_axis(np.cross(axis, (0, 1, 0)) + 1e-3)
        humerus = [Ellipsoid(head, (24, 24, 24)),
                   Tube([head + axis * 10, head + axis * 60, elbow], [14, 11, 11]),
                   Ellipsoid(elbow, (22, 12, 12), condyles)]
        S('bones', 'humerus_' + side, humerus, 'bone', params=dict(cortex=0.6))
        wrist = elbow + axis * 250
        S('limbs', '', [Tube([head - axis * 10, elbow, wrist], [50, 40, 28])], 'muscle')


def _small_bowel(rng, l1z):
    """A random smooth loop path in the mid and lower abdomen (changes with every study)."""
    lo = np.array([-75.0, 15.0, 95.0])
    hi = np.array([70.0, 105.0, l1z - 45.0])
    p = rng.uniform(lo, hi)
    d = rng.normal(0, 1, 3)
    pts = [p.copy()]
    for _ in range(26):
        d = 0.55 * d / np.linalg.norm(d) + rng.normal(0, 0.6, 3)
        d /= np.linalg.norm(d)
        p = p + d * 30.0
        for k in range(3):
            if p[k] < lo[k]:
                p[k], d[k] = 2 * lo[k] - p[k], abs(d[k])
            elif p[k] > hi[k]:
                p[k], d[k] = 2 * hi[k] - p[k], -abs(d[k])
        pts.append(p.copy())
    return np.array(pts)


def _rib_path(k, side, zk, yb, cage, var):
    """Centre line of rib ``k`` (1..12): from the costovertebral joint around the cage."""
    theta_end = {
        1: 0.80,
        2: 0.82,
        3: 0.84,
        4: 0.85,
        5: 0.85,
        6: 0.85,
        7: 0.84,
        8: 0.76,
        9: 0.70,
        10: 0.64,
        11: 0.50,
        12: 0.38
    }[k] * np.pi
    drop = {
        1: 30,
        2: 55,
        3: 70,
        4: 82,
        5: 92,
        6: 100,
        7: 105,
        8: 100,
        9: 92,
        10: 80,
        11: 50,
        12: 32
    }[k] * var.uniform(0.9, 1.1)
    th0 = 0.16 * np.pi
    thetas = np.linspace(th0, theta_end, 6)
    pts = [(side * 32.0, yb - 28, zk + 2)]
    for th in thetas:
        u = (th - th0) / (np.pi - th0)
        z = zk - drop * u**1.3
        a, b = cage.profile(z)
        if th < np.pi / 2:
            b = b * cage.b_post / cage.b
        pts.append((side * (a + 7) * np.sin(th), cage.cy - (b + 7) * np.cos(th), z))
    return np.array(pts)


def _ribs_and_shoulders(V, lz, curv, cage, S, lm):
    """Ribs, costal cartilages, sternum, scapulae and clavicles (the humeri are per study)."""
    stern_y = cage.cy + cage.b + 12
    t1z, t2z = lz['T1'], lz['T2']
    for s in (1, -1):
        side = _side_name(s)
        ends = {}
        for k in range(1, 13):
            name = f'rib_{side}_{k}'
            rv = V(name)
            zk = lz[f'T{k}']
            pts = _rib_path(k, s, zk, spine_y(zk, curv), cage, rv) + (0, 0, rv.normal(0, 1.5))
            radius = (4.5 if k in (1, 11, 12) else 5.5) * rv.uniform(0.9, 1.1)
            S('bones', name, [Tube(pts, radius)], 'bone', params=dict(cortex=0.72))
            ends[k] = pts[-1]
        lm['rib_ends', s] = ends
        cartilages = [Tube([ends[k], (s * 16, stern_y - 2,
                                      min(ends[k][2] + 12, t2z - 10 - (k - 1) * 24))], 5.0)
                      for k in range(1, 8)]  # true ribs reach the sternum through cartilage
        S('cartilage', '', cartilages, 'cartilage')
        shv = V('shoulder_' + side)
        hum_head = np.array([s * 172.0, -5.0, t1z + 6]) + shv.vec(4)
        sc = np.array([s * 92.0, -82.0, lz['T4']])
        scapula = [Ellipsoid(sc, (45, 72, 6), frame_from_axis((s * 0.42, -0.9, 0.0)),
                             shv.harm(0.06)),  # blade on the back of the chest
                   Tube([sc + (-s * 30, 0, 40), hum_head + (-s * 30, -55, 18),
                         hum_head + (-s * 8, -25, 22)], [6, 7, 8]),  # spine and acromion
                   Ellipsoid(hum_head + (-s * 26, 0, 0), (8, 14, 19)),  # glenoid
                   Tube([hum_head + (-s * 26, 10, 10), hum_head + (-s * 40, 38, 12)], 6.0)]
        S('bones', 'scapula_' + side, scapula, 'bone', params=dict(cortex=0.55))
        clavicle = Tube([(s * 20, stern_y - 2, t1z - 20), (s * 60, stern_y, t1z - 12),
                         (s * 110, 58, t1z - 4), hum_head + (-s * 20, 10, 20)], [9, 8, 7, 7])
        S('bones', 'clavicula_' + side, [clavicle], 'bone', params=dict(cortex=0.55))
        lm['humeral_head', s] = hum_head
    sternum = [Ellipsoid((0, stern_y - 4, t2z - 30), (24, 8, 22)),  # manubrium
               Ellipsoid((0, stern_y, t2z - 110), (14, 8, 62)),  # body
               Ellipsoid((0, stern_y - 4, t2z - 185), (8, 5, 14))]  # xiphoid
    S('bones', '', sternum, 'bone', params=dict(cortex=0.75))
