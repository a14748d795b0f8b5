"""Shape primitives of the phantom body and their rasterisation onto a voxel grid.

Every shape is an implicit function ``f(q)`` of body-frame coordinates ``q`` (mm) that is
below 1 inside the shape and grows with the distance from its centre or axis. A shape is
evaluated only inside its own bounding box, so the cost of an organ scales with its size, not
with the volume. :class:`Raster` holds the body-frame coordinates of every voxel of one study
(the inverse of the study's pose: rigid rotation and shift, habitus scaling and a smooth random
warp) and turns a list of primitives into ``(slices, f)`` over their joint bounding box.
"""
import numpy as np

__all__ = [
    'rotation', 'frame_from_axis', 'Ellipsoid', 'Cylinder', 'Tube', 'Raster', 'Parts',
    'transform_primitives'
]


def rotation(ax=0.0, ay=0.0, az=0.0):
    """Rotation matrix ``Rz @ Ry @ Rx`` from angles in degrees about the body axes."""
    ax, ay, az = np.deg2rad([ax, ay, az])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def frame_from_axis(axis, up=(0.0, 0.0, 1.0)):
    """Rotation whose third column is the unit vector along ``axis``.

    Used for shapes with a long axis (the heart's base-apex axis, a bone plate's normal).
    """
    w = np.asarray(axis, float)
    w = w / np.linalg.norm(w)
    up = np.asarray(up, float)
    if abs(np.dot(up, w)) > 0.95:
        up = np.array([1.0, 0.0, 0.0])
    u = np.cross(up, w)
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    return np.stack([u, v, w], axis=1)


def _harmonic(coef, nu, nv, nw):
    coef = np.asarray(coef, float).tolist()
    h = (coef[0] * nu + coef[1] * nv + coef[2] * nw + coef[3] * nu * nu + coef[4] * nv * nv +
         coef[5] * nw * nw + coef[6] * nu * nv + coef[7] * nu * nw + coef[8] * nv * nw +
         coef[9] * nu * nu * nu + coef[10] * nv * nv * nv + coef[11] * nw * nw * nw)
    return np.clip(h, -0.45, 0.6, out=h)


def _fibonacci_sphere(n):
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


_DIRECTIONS = _fibonacci_sphere(400)


class Ellipsoid:
    """An ellipsoid with optional low-order harmonic deformation of its radii.

    Args:
        center: body-frame centre (mm).
        radii: semi-axes (mm) along the columns of ``rot``.
        rot: 3 x 3 rotation whose columns are the local axes in the body frame.
        harm: 12 coefficients of the radius modulation ``h(n) = a . n + n^T B n + c . n**3``
            over unit directions ``n`` (linear, quadratic, cubic terms), or None.
    """

    def __init__(self, center, radii, rot=None, harm=None):
        self.center = np.asarray(center, float)
        self.radii = np.asarray(radii, float)
        self.rot = np.eye(3) if rot is None else np.asarray(rot, float)
        self.harm = harm
        self._hmax = 0.0
        if harm is not None:  # the largest outward modulation, over a dense set of directions
            n = _DIRECTIONS
            self._hmax = float(_harmonic(harm, n[:, 0], n[:, 1], n[:, 2]).max()) + 0.03

    def _grow(self):
        return 1.0 + self._hmax

    def bounds(self):
        half = np.sqrt(((self.rot * self.radii[None])**2).sum(1)) * self._grow()
        return self.center - half, self.center + half

    def parts(self):
        yield self.bounds(), self.field

    def local(self, x, y, z):
        """Local coordinates scaled by the radii (the unit sphere is the surface)."""
        c = self.center.tolist()
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        # python floats keep float32 arrays float32 (numpy scalars would upcast them)
        m = (self.rot / self.radii[None, :]).T.tolist()
        u = m[0][0] * dx + m[0][1] * dy + m[0][2] * dz
        v = m[1][0] * dx + m[1][1] * dy + m[1][2] * dz
        w = m[2][0] * dx + m[2][1] * dy + m[2][2] * dz
        return u, v, w

    def field(self, x, y, z):
        u, v, w = self.local(x, y, z)
        rho = np.sqrt(u * u + v * v + w * w)
        if self.harm is None:
            return rho
        inv = 1.0 / (rho + 1e-6)
        return rho / (1.0 + _harmonic(self.harm, u * inv, v * inv, w * inv))

    def transformed(self, fn, rot, scale):
        axes_scale = np.linalg.norm(np.asarray(scale)[:, None] * self.rot, axis=0)
        out = Ellipsoid(fn(self.center), self.radii * axes_scale, rot @ self.rot)
        out.harm, out._hmax = self.harm, self._hmax  # same modulation, no need to recompute
        return out


class Cylinder(Ellipsoid):
    """A rounded cylinder (vertebral bodies): elliptic cross-section, flat ends.

    ``radii[2]`` is the half-height along the third local axis; the cross-section and the ends
    meet in a superellipse of power 4 so that edges are rounded.
    """

    def bounds(self):
        half = np.sqrt(((self.rot * self.radii[None])**2).sum(1))
        return self.center - half, self.center + half

    def field(self, x, y, z):
        u, v, w = self.local(x, y, z)
        r2 = u * u + v * v
        w2 = w * w
        return np.sqrt(np.sqrt(r2 * r2 + w2 * w2))

    def transformed(self, fn, rot, scale):
        axes_scale = np.linalg.norm(np.asarray(scale)[:, None] * self.rot, axis=0)
        return Cylinder(fn(self.center), self.radii * axes_scale, rot @ self.rot)


class Tube:
    """A tube of varying radius around a polyline (vessels, bowel, ribs, long bones).

    Args:
        points: N x 3 body-frame points of the centre line.
        radii: N radii (mm), linearly interpolated along each segment, or one radius.
    """

    def __init__(self, points, radii):
        self.points = np.asarray(points, float)
        r = np.asarray(radii, float)
        self.radii = np.full(len(self.points), float(r)) if r.ndim == 0 else r
        if len(self.points) < 2 or len(self.radii) != len(self.points):
            raise ValueError(f'Tube needs >= 2 points and one radius per point, got '
                             f'{self.points.shape} points and {self.radii.shape} radii')

    def bounds(self):
        r = self.radii[:, None]
        return (self.points - r).min(0), (self.points + r).max(0)

    def parts(self):
        for i in range(len(self.points) - 1):
            a, b = self.points[i], self.points[i + 1]
            ra, rb = self.radii[i], self.radii[i + 1]
            rmax = max(ra, rb)
            box = (np.minimum(a, b) - rmax, np.maximum(a, b) + rmax)
            yield box, self._segment(a, b, ra, rb)

    def field(self, x, y, z):
        f = None
        for _, fn in self.parts():
            g = fn(x, y, z)
            f = g if f is None else np.minimum(f, g)
        return f

    @staticmethod
    def _segment(a, b, ra, rb):
        d = (b - a).tolist()
        inv = 1.0 / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 1e-9)
        a = a.tolist()
        ra, dr = float(ra), float(rb - ra)
        e = [c * inv for c in d]

        def field(x, y, z):
            px, py, pz = x - a[0], y - a[1], z - a[2]
            t = px * e[0]
            t += py * e[1]
            t += pz * e[2]
            np.maximum(t, 0.0, out=t)
            np.minimum(t, 1.0, out=t)
            px -= t * d[0]
            py -= t * d[1]
            pz -= t * d[2]
            px *= px
            py *= py
            pz *= pz
            px += py
            px += pz
            np.sqrt(px, out=px)
            if dr:
                t *= dr
                t += ra
                px /= t
            else:
                px *= 1.0 / ra
            return px

        return field

    def transformed(self, fn, rot, scale):
        return Tube(fn(self.points), self.radii * float(np.prod(scale))**(1 / 3))


def transform_primitives(prims, center, shift=(0, 0, 0), rot=None, scale=(1, 1, 1)):
    """Apply one similarity-like transform to a list of primitives (an organ's variation).

    ``p -> center + shift + rot @ (scale * (p - center))``: the organ is scaled per body axis
    and rotated about ``center``, then shifted.
    """
    center = np.asarray(center, float)
    shift = np.asarray(shift, float)
    rot = np.eye(3) if rot is None else np.asarray(rot, float)
    scale = np.broadcast_to(np.asarray(scale, float), (3, ))

    def fn(p):
        p = np.asarray(p, float)
        return center + shift + (scale * (p - center)) @ rot.T

    return [p.transformed(fn, rot, scale) for p in prims]


class Raster:
    """Body-frame coordinates of the voxels of one study and rasterisation of primitives.

    World (RAS, mm) -> body frame: ``v = R^T (p - t)``, ``v <- v - warp(v)``, ``q = v / S``
    with ``R`` a small rotation of the whole body, ``t`` its shift, ``S`` the habitus scale per
    axis and ``warp`` a smooth random displacement (bends of the spine and a few long-wave
    sinusoids). Only the inverse map is needed for rendering; bounding boxes use the forward
    map plus a margin for the warp.

    Because ``v`` is affine in the voxel indices, each warp sinusoid is separable:
    ``sin(a_i + b_j + c_k) = sin(a_i + b_j) cos(c_k) + cos(a_i + b_j) sin(c_k)``, which costs
    three array operations instead of a sine per voxel.

    Args:
        shape: volume shape (I, J, K) along RAS x, y, z.
        spacing: voxel size (mm) per axis.
        origin: world position of voxel (0, 0, 0).
        rot: 3 x 3 pose rotation ``R``.
        shift: pose shift ``t`` (mm).
        scale: habitus scale ``S`` per axis.
        warp: list of ``(amplitude vector (3,), wave vector (3,), phase)`` sinusoids.
    """

    def __init__(self, shape, spacing, origin, rot, shift, scale, warp=()):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = np.asarray(spacing, float)
        self.origin = np.asarray(origin, float)
        self.rot = np.asarray(rot, float)
        self.shift = np.asarray(shift, float)
        self.scale = np.asarray(scale, float)
        self.warp_margin = float(sum(np.abs(a).max() for a, _, _ in warp)) + 1.0
        # world offsets from the body centre along each voxel axis (1D)
        axes = [self.origin[d] - self.shift[d] + self.spacing[d] * np.arange(n)
                for d, n in enumerate(self.shape)]
        # v_c = sum_d R[d, c] * axes[d]: a 1D term per voxel axis
        terms = [[(self.rot[d, c] * axes[d]) for d in range(3)] for c in range(3)]
        q = []
        for c in range(3):
            inv = 1.0 / self.scale[c]
            qc = np.empty(self.shape, np.float32)
            ij = (terms[c][0][:, None] + terms[c][1][None, :]) * inv
            k = (terms[c][2] * inv).astype(np.float32)
            np.add(ij.astype(np.float32)[:, :, None], k[None, None, :], out=qc)
            q.append(qc)
        tmp = None
        for amp, wave, phase in warp:
            # argument of the sinusoid, separable over (i, j) and k
            a = [sum(float(wave[c]) * terms[c][d] for c in range(3)) for d in range(3)]
            ij = a[0][:, None] + a[1][None, :] + float(phase)
            gains = [float(amp[c]) / self.scale[c] for c in range(3)]
            if np.ptp(ij) < 0.05:  # a long wave along z: constant within a slice
                s_k = np.sin(a[2] + ij.mean())
                for c in range(3):
                    if gains[c]:
                        q[c] -= (gains[c] * s_k).astype(np.float32)[None, None, :]
                continue
            if tmp is None:
                tmp = np.empty(self.shape, np.float32)
            s_ij, c_ij = np.sin(ij).astype(np.float32), np.cos(ij).astype(np.float32)
            s_k, c_k = np.sin(a[2]).astype(np.float32), np.cos(a[2]).astype(np.float32)
            np.multiply(s_ij[:, :, None], c_k[None, None, :], out=tmp)
            tmp += c_ij[:, :, None] * s_k[None, None, :]
            for c in range(3):
                if gains[c]:
                    q[c] -= np.float32(gains[c]) * tmp
        self.q = q

    @property
    def affine(self):
        """4 x 4 voxel-to-world (RAS mm) matrix of the grid."""
        affine = np.diag(np.append(self.spacing, 1.0))
        affine[:3, 3] = self.origin
        return affine

    def body_to_world(self, q):
        """Forward map without the warp (accurate to ``warp_margin``): N x 3 -> N x 3."""
        return (np.asarray(q, float) * self.scale) @ self.rot.T + self.shift

    def world_to_voxel(self, p):
        return (np.asarray(p, float) - self.origin) / self.spacing

    def body_to_voxel(self, q):
        return self.world_to_voxel(self.body_to_world(q))

    _CORNERS = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)

    def boxes(self, lo, hi, margin=0.0):
        """Voxel index boxes ``(N x 3 start, N x 3 stop)`` of N body-frame boxes (clipped)."""
        lo, hi = np.atleast_2d(lo), np.atleast_2d(hi)
        corners = lo[:, None, :] + (hi - lo)[:, None, :] * self._CORNERS[None]
        vox = self.body_to_voxel(corners.reshape(-1, 3)).reshape(len(lo), 8, 3)
        pad = (self.warp_margin + margin) / self.spacing + 1.0
        a = np.maximum(np.floor(vox.min(1) - pad).astype(int), 0)
        b = np.minimum(np.ceil(vox.max(1) + pad).astype(int) + 1, self.shape)
        return a, b

    def box(self, lo, hi, margin=0.0):
        """Voxel slices covering a body-frame box, or None when it misses the volume."""
        a, b = self.boxes(lo, hi, margin)
        if np.any(b[0] <= a[0]):
            return None
        return tuple(slice(int(i), int(j)) for i, j in zip(a[0], b[0]))

    def coords(self, sl):
        return self.q[0][sl], self.q[1][sl], self.q[2][sl]

    def evaluate(self, prims):
        """Union of primitives: ``(slices, f)`` with ``f < 1`` inside, or ``(None, None)``."""
        return self.evaluate_parts(Parts(prims))

    def evaluate_parts(self, parts, boxes=None):
        """:meth:`evaluate` for precomputed :class:`Parts`; skips them early when out of view.

        Args:
            parts: :class:`Parts`.
            boxes: the parts' voxel boxes ``(start, stop)`` from :meth:`boxes`, if known.
        """
        if not parts.fns:
            return None, None
        if boxes is None:
            a, b = self.boxes(parts.lo[None], parts.hi[None])
            if np.any(b[0] <= a[0]):
                return None, None
            a, b = self.boxes(parts.los, parts.his)
        else:
            a, b = boxes
        keep = np.nonzero(np.all(b > a, axis=1))[0]
        if not len(keep):
            return None, None
        a, b = a[keep], b[keep]
        lo, hi = a.min(0), b.max(0)
        box = tuple(slice(int(i), int(j)) for i, j in zip(lo, hi))
        if len(keep) == 1:
            return box, parts.fns[keep[0]](*self.coords(box)).astype(np.float32, copy=False)
        f = np.full(tuple(hi - lo), np.inf, np.float32)
        for n, i in enumerate(keep.tolist()):
            sl = tuple(slice(int(x), int(y)) for x, y in zip(a[n], b[n]))
            rel = tuple(slice(int(x - o), int(y - o)) for x, y, o in zip(a[n], b[n], lo))
            np.minimum(f[rel], parts.fns[i](*self.coords(sl)), out=f[rel])
        return box, f


class Parts:
    """The implicit-function parts of a list of primitives with their body-frame boxes."""

    def __init__(self, prims):
        self.fns, los, his = [], [], []
        for prim in prims:
            for (lo, hi), fn in prim.parts():
                self.fns.append(fn)
                los.append(lo)
                his.append(hi)
        if self.fns:
            self.los, self.his = np.array(los, float), np.array(his, float)
            self.lo, self.hi = self.los.min(0), self.his.max(0)
