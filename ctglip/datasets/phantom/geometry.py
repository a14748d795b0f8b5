"""Shape primitives of the phantom body and their rasterisation onto a voxel grid.

Every shape is an implicit function ``f(q)`` of body-frame coordinates ``q`` (mm) that is
below 1 inside the shape and grows with the distance from its centre or axis. A shape is
evaluated only inside its own bounding box, so the cost of an organ scales with its size, not
with the volume. :class:`Raster` holds the body-frame coordinates of every voxel of one study
(the inverse of the study's pose: rigid rotation and shift, habitus scaling and a smooth random
warp) and turns a list of primitives into ``(slices, f)`` over their joint bounding box.
"""
import numpy as np

__all__ = ['rotation', 'frame_from_axis', 'random_harmonics', 'Ellipsoid', 'Cylinder', 'Tube',
           'Raster', 'transform_primitives']


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


def random_harmonics(rng, amplitude):
    """Coefficients of a smooth random radius modulation over directions.

    The modulation is ``h(n) = a . n + n^T B n + c . n**3`` for a unit direction ``n``: degree 1
    shifts the bulk, degree 2 makes the shape egg- or saddle-like, degree 3 adds lobulation.
    The 12 coefficients are zero-mean Gaussians scaled by ``amplitude`` (a fraction of the
    radius, 0.05-0.15 for organs).
    """
    coef = rng.normal(0.0, amplitude, 12)
    coef[3:6] -= coef[3:6].mean()  # a traceless B leaves the mean size alone
    coef[9:] *= 0.6
    return coef


def _harmonic(coef, nu, nv, nw):
    h = (coef[0] * nu + coef[1] * nv + coef[2] * nw
         + coef[3] * nu * nu + coef[4] * nv * nv + coef[5] * nw * nw
         + coef[6] * nu * nv + coef[7] * nu * nw + coef[8] * nv * nw
         + coef[9] * nu * nu * nu + coef[10] * nv * nv * nv + coef[11] * nw * nw * nw)
    return np.clip(h, -0.45, 0.6, out=h)


class Ellipsoid:
    """An ellipsoid with optional low-order harmonic deformation of its radii.

    Args:
        center: body-frame centre (mm).
        radii: semi-axes (mm) along the columns of ``rot``.
        rot: 3 x 3 rotation whose columns are the local axes in the body frame.
        harm: 12 coefficients from :func:`random_harmonics`, or None.
    """

    def __init__(self, center, radii, rot=None, harm=None):
        self.center = np.asarray(center, float)
        self.radii = np.asarray(radii, float)
        self.rot = np.eye(3) if rot is None else np.asarray(rot, float)
        self.harm = harm

    def _grow(self):
        return 1.0 + (min(0.6, float(np.abs(self.harm).sum())) if self.harm is not None else 0.0)

    def bounds(self):
        half = np.sqrt(((self.rot * self.radii[None]) ** 2).sum(1)) * self._grow()
        return self.center - half, self.center + half

    def parts(self):
        yield self.bounds(), self.field

    def local(self, x, y, z):
        """Local coordinates scaled by the radii (the unit sphere is the surface)."""
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        r, s = self.rot, 1.0 / self.radii
        u = (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz) * s[0]
        v = (r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz) * s[1]
        w = (r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz) * s[2]
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
        return Ellipsoid(fn(self.center), self.radii * axes_scale, rot @ self.rot, self.harm)


class Cylinder(Ellipsoid):
    """A rounded cylinder (vertebral bodies): elliptic cross-section, flat ends.

    ``radii[2]`` is the half-height along the third local axis; the cross-section and the ends
    meet in a superellipse of power 4 so that edges are rounded.
    """

    def bounds(self):
        half = np.sqrt(((self.rot * self.radii[None]) ** 2).sum(1))
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

    @staticmethod
    def _segment(a, b, ra, rb):
        d = b - a
        dd = float(d @ d) + 1e-9

        def field(x, y, z):
            px, py, pz = x - a[0], y - a[1], z - a[2]
            t = (px * d[0] + py * d[1] + pz * d[2]) * (1.0 / dd)
            np.clip(t, 0.0, 1.0, out=t)
            ex, ey, ez = px - t * d[0], py - t * d[1], pz - t * d[2]
            return np.sqrt(ex * ex + ey * ey + ez * ez) / (ra + t * (rb - ra))
        return field

    def transformed(self, fn, rot, scale):
        return Tube(fn(self.points), self.radii * float(np.prod(scale)) ** (1 / 3))


def transform_primitives(prims, center, shift=(0, 0, 0), rot=None, scale=(1, 1, 1)):
    """Apply one similarity-like transform to a list of primitives (an organ's variation).

    ``p -> center + shift + rot @ (scale * (p - center))``: the organ is scaled per body axis
    and rotated about ``center``, then shifted.
    """
    center = np.asarray(center, float)
    shift = np.asarray(shift, float)
    rot = np.eye(3) if rot is None else np.asarray(rot, float)
    scale = np.broadcast_to(np.asarray(scale, float), (3,))

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
        axes = [(self.origin[d] - self.shift[d] + self.spacing[d] * np.arange(n)).astype(np.float32)
                for d, n in enumerate(self.shape)]
        px, py, pz = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
        r = self.rot.astype(np.float32)
        v = [r[0, c] * px + r[1, c] * py + r[2, c] * pz for c in range(3)]
        for amp, wave, phase in warp:
            arg = wave[0] * v[0] + wave[1] * v[1] + wave[2] * v[2] + np.float32(phase)
            s = np.sin(arg)
            v = [vc - np.float32(amp[c]) * s if amp[c] else vc for c, vc in enumerate(v)]
        self.q = [np.ascontiguousarray(np.broadcast_to(vc / np.float32(self.scale[c]), self.shape),
                                       dtype=np.float32) for c, vc in enumerate(v)]

    def body_to_world(self, q):
        """Forward map without the warp (accurate to ``warp_margin``): N x 3 -> N x 3."""
        return (np.asarray(q, float) * self.scale) @ self.rot.T + self.shift

    def world_to_voxel(self, p):
        return (np.asarray(p, float) - self.origin) / self.spacing

    def body_to_voxel(self, q):
        return self.world_to_voxel(self.body_to_world(q))

    def box(self, lo, hi, margin=0.0):
        """Voxel slices covering a body-frame box, or None when it misses the volume."""
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        vox = self.body_to_voxel(corners)
        pad = (self.warp_margin + margin) / self.spacing + 1.0
        a = np.floor(vox.min(0) - pad).astype(int)
        b = np.ceil(vox.max(0) + pad).astype(int) + 1
        a = np.maximum(a, 0)
        b = np.minimum(b, self.shape)
        if np.any(b <= a):
            return None
        return tuple(slice(int(i), int(j)) for i, j in zip(a, b))

    def coords(self, sl):
        return self.q[0][sl], self.q[1][sl], self.q[2][sl]

    def evaluate(self, prims):
        """Union of primitives: ``(slices, f)`` with ``f < 1`` inside, or ``(None, None)``."""
        parts = []
        for prim in prims:
            for (lo, hi), fn in prim.parts():
                sl = self.box(lo, hi)
                if sl is not None:
                    parts.append((sl, fn))
        if not parts:
            return None, None
        a = np.min([[s.start for s in sl] for sl, _ in parts], 0)
        b = np.max([[s.stop for s in sl] for sl, _ in parts], 0)
        box = tuple(slice(int(i), int(j)) for i, j in zip(a, b))
        if len(parts) == 1:
            sl, fn = parts[0]
            return sl, fn(*self.coords(sl)).astype(np.float32, copy=False)
        f = np.full(tuple(b - a), np.inf, np.float32)
        for sl, fn in parts:
            rel = tuple(slice(s.start - int(o), s.stop - int(o)) for s, o in zip(sl, a))
            np.minimum(f[rel], fn(*self.coords(sl)), out=f[rel])
        return box, f
