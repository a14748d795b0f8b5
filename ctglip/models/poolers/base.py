"""Organ-cell overlap of a label map with a feature grid, and the base class of organ poolers.

Every organ pooler reduces a feature map over the feature cells that each organ covers. The
overlap is kept sparse, as one row per (study, organ, cell) that share voxels, with the voxel
count as weight: a dense ``B x (K+1) x cells`` matrix would need ~1 GB per study at 104 organs
and a 128^3 grid, while the sparse rows never outnumber the labelled voxels or (in practice)
a small multiple of the cells.
"""
import functools
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ctglip.utils.errors import ConfigError


@dataclass
class OrganCells:
    """Which feature cells each organ covers, and by how many voxels.

    One row ``p`` per (study, organ, cell) with at least one voxel of the organ in the cell.

    Attributes:
        batch (LongTensor): ``P``, study index ``b``.
        cell (LongTensor): ``P``, flat cell index into ``d * h * w``.
        segment (LongTensor): ``P``, ``b * K + k`` with ``k`` the 0-based organ index
            (label ``k + 1``); the row of ``B*K x ...`` outputs this pair adds to.
        voxels (Tensor): ``P`` float, number of the organ's voxels in the cell (input
            resolution), the area weight of exact masked averaging.
        organ_voxels (Tensor): ``B x K`` float, voxels of each organ (the sum of its weights).
        num_organs (int): K.
    """

    batch: torch.Tensor
    cell: torch.Tensor
    segment: torch.Tensor
    voxels: torch.Tensor
    organ_voxels: torch.Tensor
    num_organs: int
    _bounds: list = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_samples(cls, parts, num_organs, device=None):
        """One batch's overlap from per-study overlaps (:func:`study_organ_cells`, computed
        in the data loader's workers by ``PackCTInputs(organ_cells_stride=...)``).

        Args:
            parts (list[dict]): one per study, with ``organ`` (0-based k), ``cell`` and
                ``voxels`` (all ``P_b``).
            num_organs (int): K; an organ index outside ``0..K-1`` is a ValueError.
            device: where the tensors go (default: where they are).
        """
        batch = torch.cat([torch.full((len(p['cell']),), b, dtype=torch.long)
                           for b, p in enumerate(parts)]).to(device)
        organ = torch.cat([p['organ'] for p in parts]).to(device=device, dtype=torch.long)
        if organ.numel() and int(organ.max()) >= num_organs:
            raise ValueError(f'precomputed organ cells name organ index {int(organ.max())} but '
                             f'num_organs={num_organs}; the label map holds labels outside '
                             'the organ vocabulary.')
        segment = batch * num_organs + organ
        voxels = torch.cat([p['voxels'] for p in parts]).to(device=device, dtype=torch.float32)
        organ_voxels = voxels.new_zeros(len(parts) * num_organs).index_add_(
            0, segment, voxels).view(len(parts), num_organs)
        return cls(batch=batch, cell=torch.cat([p['cell'] for p in parts]).to(device).long(),
                   segment=segment, voxels=voxels, organ_voxels=organ_voxels,
                   num_organs=num_organs)

    @property
    def num_segments(self):
        """``B * K``."""
        return self.organ_voxels.numel()

    def gather(self, cells):
        """Rows of a ``B x N x C`` per-cell tensor, one per pair: ``P x C``."""
        return cells[self.batch, self.cell]

    def gather_map(self, feats):
        """Rows of a ``B x C x d x h x w`` feature map, one per pair: ``P x C`` float32.

        The same values as ``gather(feature_cells(feats))``, read in the map's own layout:
        the gradient flows back into a contiguous ``B x C x d x h x w`` tensor instead of a
        transposed one, which the backbone's backward then runs on faster (measured: the
        MiT CT-GLIP step 5 % faster on the CPU), and in AMP only the ``P`` rows are cast.
        The backward adds each study's rows into its map with one ``index_add_`` over the
        cell axis (``_GatherMap``).
        """
        return _GatherMap.apply(feats, self).float()

    def study_bounds(self):
        """``B + 1`` row offsets: study ``b``'s rows are ``bounds[b]:bounds[b + 1]``.

        Raises:
            ValueError: the rows are not grouped by study in order (``organ_cells`` and
                ``from_samples`` always group them).
        """
        if self._bounds is None:
            if self.batch.numel() > 1 and bool((self.batch[1:] < self.batch[:-1]).any()):
                raise ValueError('OrganCells rows must be grouped by study in order (batch '
                                 'non-decreasing); build them with organ_cells() or '
                                 'OrganCells.from_samples().')
            counts = torch.bincount(self.batch, minlength=self.organ_voxels.shape[0])
            self._bounds = [0] + torch.cumsum(counts, 0).tolist()
        return self._bounds

    def segment_sum(self, values):
        """Sum ``P x ...`` values per (study, organ): ``B*K x ...``, zeros for absent organs."""
        out = values.new_zeros((self.num_segments,) + tuple(values.shape[1:]))
        return out.index_add_(0, self.segment, values)

    def segment_max(self, values):
        """Max of ``P x C`` values per (study, organ): ``B*K x C``, zeros for absent organs."""
        out = values.new_zeros(self.num_segments, values.shape[1])
        index = self.segment[:, None].expand_as(values)
        return out.scatter_reduce(0, index, values, 'amax', include_self=False)

    def weighted_mean(self, values):
        """Voxel-weighted mean of ``P x C`` values per (study, organ): ``B*K x C``.

        Equals the plain mean over the organ's voxels of the feature of the cell each voxel
        lies in (nearest upsampling of the features, then masked mean). Absent organs get 0.
        """
        sums = self.segment_sum(values * self.voxels[:, None])
        return sums / self.organ_voxels.reshape(-1, 1).clamp(min=1)


class _GatherMap(torch.autograd.Function):
    """``feats.flatten(2)[cells.batch, :, cells.cell]`` (``OrganCells.gather_map``), with a
    faster backward on the CPU.

    Autograd's backward of that indexing zeroes a map-sized gradient and accumulates every
    row into it one element at a time on a single thread (``index_put_`` with
    ``accumulate=True``). Here each study's rows are added along the cell axis of its
    ``C x cells`` gradient with one ``index_add_`` (cells that several organs share add up,
    as in autograd's): 8 ms instead of 18 ms on the CI CPU for the MiT's 4 x 64 x 32^3 map
    (docs/benchmarks.md). Same values as autograd's, up to the order of the additions.
    """

    @staticmethod
    def forward(ctx, feats, cells):
        cells.study_bounds()  # checks the row order now rather than in the backward
        ctx.cells, ctx.shape = cells, feats.shape
        return feats.flatten(2)[cells.batch, :, cells.cell]

    @staticmethod
    def backward(ctx, grad):
        cells, shape = ctx.cells, ctx.shape
        out = grad.new_zeros(shape[0], shape[1], math.prod(shape[2:]))
        bounds, grad_t = cells.study_bounds(), grad.t()
        for b in range(shape[0]):
            lo, hi = bounds[b], bounds[b + 1]
            if hi > lo:
                out[b].index_add_(1, cells.cell[lo:hi], grad_t[:, lo:hi])
        return out.view(shape), None


def feature_cells(feats):
    """``B x C x d x h x w`` -> ``B x (d*h*w) x C`` in float32 (pooled sums stay exact in AMP)."""
    return feats.flatten(2).transpose(1, 2).float()


def organ_cells(organ_label, grid, num_organs):
    """Overlap of an organ label map with a feature grid.

    Args:
        organ_label (LongTensor): ``B x D x H x W`` (or ``B x 1 x D x H x W``), values in
            ``0..K`` (0 = background, ``k`` = organ ``k`` of the vocabulary).
        grid (tuple[int]): the feature grid ``(d, h, w)``; D, H, W must be integer multiples
            of it (equal sizes are fine).
        num_organs (int): K.

    Returns:
        OrganCells: the sparse (study, organ, cell) overlap with voxel counts.

    Raises:
        ValueError: the label map is not integer-typed, its size is not a multiple of the
            grid, or it holds labels outside ``0..K``.
    """
    if organ_label.dim() == 5 and organ_label.shape[1] == 1:
        organ_label = organ_label[:, 0]
    if organ_label.dim() != 4:
        raise ValueError(f'organ_label must be B x D x H x W, got shape '
                         f'{tuple(organ_label.shape)}.')
    if organ_label.is_floating_point() or organ_label.dtype == torch.bool:
        raise ValueError(f'organ_label must hold integer labels (long), got {organ_label.dtype}; '
                         'resample label maps with nearest-neighbour interpolation.')
    size = tuple(organ_label.shape[1:])
    grid = tuple(int(g) for g in grid)
    if len(grid) != 3 or any(g < 1 or s % g for s, g in zip(size, grid)):
        raise ValueError(f'organ_label size {size} (shape {tuple(organ_label.shape)}) is not an '
                         f'integer multiple of the feature grid {grid}; pad the image and the '
                         "label map together to the backbone's size_divisor.")
    if organ_label.numel():
        low, high = int(organ_label.min()), int(organ_label.max())
        if low < 0 or high > num_organs:
            raise ValueError(f'organ_label values span {low}..{high} but num_organs={num_organs} '
                             f'allows 0..{num_organs}; map the label scheme into the organ '
                             'vocabulary first.')
    batch_size = organ_label.shape[0]
    d, h, w = grid
    num_cells = d * h * w
    # One key per labelled voxel, (study, organ) major and cell minor; its count is the voxel
    # weight. The voxels are found once (nonzero) and their keys read from a cached table of
    # each voxel's study-and-cell offset: boolean-mask indexing of expanded index tensors
    # took twice as long on the CPU.
    flat = organ_label.reshape(-1)
    voxel = flat.nonzero().squeeze(1)
    base = _voxel_keys(batch_size, size, grid, num_organs, organ_label.device)
    key = base[voxel] + (flat[voxel].to(base.dtype) - 1) * num_cells
    keys, counts = torch.unique(key, return_counts=True)
    keys = keys.long()
    segment = keys // num_cells
    voxels = counts.float()
    organ_voxels = torch.zeros(batch_size * num_organs, device=organ_label.device).index_add_(
        0, segment, voxels).view(batch_size, num_organs)
    return OrganCells(batch=segment // num_organs, cell=keys % num_cells, segment=segment,
                      voxels=voxels, organ_voxels=organ_voxels, num_organs=num_organs)


def study_organ_cells(organ_label, stride):
    """The organ-cell overlap of one study's label map with the feature grid of a backbone
    whose pooled map has ``stride``: what ``PackCTInputs(organ_cells_stride=...)`` computes
    in the data loader's workers, so that the training step does not.

    Args:
        organ_label (LongTensor): ``D x H x W``, 0 = background, ``k + 1`` = organ ``k``.
        stride (int | tuple[int]): the feature map's stride per axis.

    Returns:
        dict | None: ``grid`` (the feature grid, a tuple), ``organ`` (0-based k), ``cell``
        (flat cell index) and ``voxels`` (count), one entry per (organ, cell) pair; None
        when a size is not a multiple of the stride (the step then computes the overlap).
    """
    stride = (int(stride),) * 3 if isinstance(stride, (int, float)) else tuple(map(int, stride))
    size = tuple(organ_label.shape)
    if len(size) != 3 or len(stride) != 3 or any(s % t for s, t in zip(size, stride)):
        return None
    grid = tuple(s // t for s, t in zip(size, stride))
    num_organs = max(int(organ_label.max()), 1) if organ_label.numel() else 1
    cells = organ_cells(organ_label[None], grid, num_organs)
    return dict(grid=grid, organ=cells.segment.to(torch.int16 if num_organs < 2 ** 15 else
                                                  torch.long),
                cell=cells.cell.to(torch.int32), voxels=cells.voxels.to(torch.int32))


@functools.lru_cache(maxsize=8)
def _voxel_keys(batch_size, size, grid, num_organs, device):
    """``B*D*H*W`` table: ``b * K * cells + cell of the voxel`` for every voxel of the batch
    (int32 where the keys fit, which sorts faster)."""
    num_cells = grid[0] * grid[1] * grid[2]
    dtype = torch.int32 if batch_size * num_organs * num_cells < 2 ** 31 else torch.int64
    cz, cy, cx = (torch.arange(s, device=device) // (s // g) for s, g in zip(size, grid))
    cell = ((cz[:, None, None] * grid[1] + cy[None, :, None]) * grid[2] + cx[None, None, :])
    offset = torch.arange(batch_size, device=device) * (num_organs * num_cells)
    return (offset.view(-1, 1, 1, 1) + cell).reshape(-1).to(dtype)


class BaseOrganPooler(nn.Module):
    """Base of the poolers that turn a feature map and an organ label map into organ embeddings.

    Contract (what ``CTGLIP`` relies on)::

        organ_embeds, valid = pooler(feats, organ_label, num_organs=K, cells=None)
        # feats: B x C x d x h x w; organ_label: B x D x H x W long, 0..K; cells: the
        # OrganCells of organ_label on the feats grid when already known (else computed)
        # organ_embeds: B x K' x out_channels(C) float32; valid: B x K' bool

    ``K' = K`` for organ poolers. An organ is valid when it has at least ``min_voxels`` voxels
    (at the label map's resolution); invalid organs get all-zero embeddings, never NaN, so the
    loss masks them out with ``valid``.

    Args:
        min_voxels (int): fewest voxels of an organ for it to count as present (>= 1).
        num_organs (int | None): K, the organ vocabulary size; the model passes it at build
            time. ``forward``'s ``num_organs`` overrides it.
        in_channels (int | None): C of the feature map; the model passes it at build time.
            Poolers without parameters only keep it for ``out_channels()``.
    """

    def __init__(self, min_voxels=1, num_organs=None, in_channels=None):
        super().__init__()
        if int(min_voxels) < 1:
            raise ConfigError(f'{type(self).__name__}: min_voxels={min_voxels} must be >= 1 '
                              '(an organ with no voxel has nothing to pool).')
        self.min_voxels = int(min_voxels)
        self.num_organs = num_organs
        self.in_channels = in_channels

    def out_channels(self, in_channels):
        """Channels of the pooled embeddings for a ``in_channels``-channel feature map."""
        return in_channels

    def _num_organs(self, num_organs):
        num_organs = self.num_organs if num_organs is None else num_organs
        if num_organs is None:
            raise ValueError(f'{type(self).__name__}: num_organs is unknown; pass num_organs=K '
                             'to the constructor or to forward.')
        return int(num_organs)

    def _cells(self, feats, organ_label, num_organs, cells=None):
        """The overlap of ``organ_label`` with the grid of ``feats``; ``cells`` when given
        (precomputed in the data loader, see ``CTGLIP.pool``)."""
        if feats.dim() != 5:
            raise ValueError(f'{type(self).__name__} expects feats B x C x d x h x w, got shape '
                             f'{tuple(feats.shape)}.')
        if organ_label.shape[0] != feats.shape[0]:
            raise ValueError(f'{type(self).__name__}: feats batch {tuple(feats.shape)} and '
                             f'organ_label batch {tuple(organ_label.shape)} differ.')
        num_organs = self._num_organs(num_organs)
        if cells is not None:
            if cells.num_organs != num_organs or cells.organ_voxels.shape[0] != feats.shape[0]:
                raise ValueError(f'{type(self).__name__}: precomputed cells are for '
                                 f'{cells.organ_voxels.shape[0]} studies and {cells.num_organs} '
                                 f'organs, the call has {feats.shape[0]} and {num_organs}.')
            return cells
        return organ_cells(organ_label, feats.shape[2:], num_organs)

    def _finish(self, pooled, cells):
        """``B*K x C'`` -> (``B x K x C'`` zeroed where invalid, ``B x K`` valid)."""
        valid = cells.organ_voxels >= self.min_voxels
        pooled = pooled.view(*valid.shape, -1)
        return torch.where(valid[..., None], pooled, pooled.new_zeros(())), valid
