"""Organ intensity statistics at input resolution: a raw-HU skip beside the learned organ pooling.

Many CT findings are density findings that a learned feature map at stride 2 and a masked
mean dilute: a 7 mm gallstone is one or two bright voxels among hundreds of bile voxels, a
cyst a few water-density voxels in the liver, emphysema a shift of the lung's histogram,
steatosis a shift of the liver's mean. The statistics here read them directly from the
windowed input, per organ and at the label map's resolution, so that the projection can align
them with the text from the first iteration on, while the backbone learns organ identity and
shape. The paper's plain model has no such skip (``CTGLIP(intensity_skip=None)``, the default).
"""
import torch
from torch import nn

from ctglip.registry import MODELS
from ctglip.utils.errors import ConfigError

# HU bin edges: air and emphysema, lung, fat, water (cysts, bile, fluid), soft tissue in
# steps that separate fatty from normal liver, enhancing tissue, calcium and stones.
DEFAULT_HU_EDGES = (-950.0, -900.0, -850.0, -700.0, -500.0, -200.0, -50.0, 0.0, 20.0, 40.0,
                    60.0, 80.0, 100.0, 150.0, 250.0, 500.0)
# Edges relative to the mean of the organ's interior: lesions darker or brighter than their
# organ whatever the contrast phase.
DEFAULT_RELATIVE_EDGES = (-150.0, -80.0, -40.0, 40.0, 80.0, 150.0, 400.0)


@MODELS.register_module()
class OrganIntensityStats(nn.Module):
    """Per-organ statistics of the windowed CT at input resolution (no parameters).

    For each organ of the label map: the voxel count, the mean and spread of its HU, and
    log-counts of its voxels in fixed HU bins, over the whole organ and over its interior (the
    voxels whose six neighbours carry the same label, away from partial volume with the
    neighbouring tissue), plus log-counts of interior voxels in bins relative to the interior
    mean. Counts enter as ``log1p(count) / log1p(reference)`` and HU as ``HU / 500``, so every
    feature is of order one.

    Args:
        window (tuple[float, float]): the HU window that the pipeline mapped to [0, 1] in
            input channel ``channel`` (``ScaleIntensityRanged``'s ``a_min``, ``a_max``).
        channel (int): the input channel to read (0: the wide window of ``MultiWindowd``).
        hu_edges (tuple[float]): absolute HU bin edges.
        relative_edges (tuple[float]): bin edges relative to the interior mean (HU).
        reference_count (float): the voxel count that maps to 1.0 (an organ of 32^3 voxels).
        context_organs (Sequence[str]): reference organs of the same study (e.g. ``('spleen',
            'aorta')``). For each, two more features per organ: whether the reference is in
            view, and the organ's interior mean HU minus the reference's (/ 500; 0 when either
            is absent). A density finding is a difference between organs of one study (the
            radiologist's liver-minus-spleen for steatosis), while the contrast phase and the
            scanner move every organ's HU together; ``tools/analysis_tools/abnormality_oracle.py
            --features context`` measured steatosis AUC 0.846 -> 0.988 with such terms. Empty
            (the default): no context features.
        organ_vocab: the organ vocabulary of the label maps (names ``context_organs``).

    Shapes:
        ``inputs`` ``B x C x D x H x W`` float in [0, 1], ``organ_label`` ``B x D x H x W``
        long in ``0..K`` -> ``B x K x out_channels`` float32 (zeros for absent organs).
    """

    def __init__(self, window=(-1000.0, 1000.0), channel=0, hu_edges=DEFAULT_HU_EDGES,
                 relative_edges=DEFAULT_RELATIVE_EDGES, reference_count=32768.0,
                 context_organs=(), organ_vocab='totalseg_v1'):
        super().__init__()
        low, high = (float(w) for w in window)
        if not high > low:
            raise ConfigError(f'OrganIntensityStats: window={window!r} must be (low, high) HU '
                              'with high > low, as in the pipeline\'s ScaleIntensityRanged.')
        for name, edges in (('hu_edges', hu_edges), ('relative_edges', relative_edges)):
            if list(edges) != sorted(edges) or len(set(edges)) != len(edges):
                raise ConfigError(f'OrganIntensityStats: {name} must increase strictly, got '
                                  f'{edges!r}.')
        self.window = (low, high)
        self.channel = int(channel)
        self.register_buffer('hu_edges', torch.tensor(hu_edges, dtype=torch.float32),
                             persistent=False)
        self.register_buffer('relative_edges',
                             torch.tensor(relative_edges, dtype=torch.float32), persistent=False)
        self.log_reference = float(torch.log1p(torch.tensor(float(reference_count))))
        self.context_organs = tuple(context_organs)
        if self.context_organs:
            from ctglip.datasets.organs import organ_vocabulary
            vocab = organ_vocabulary(organ_vocab)
            unknown = [o for o in self.context_organs if o not in vocab]
            if unknown:
                raise ConfigError(f'OrganIntensityStats: context_organs {unknown} are not organs '
                                  f'of the organ vocabulary {organ_vocab!r}. Fix: use its '
                                  "names, e.g. 'spleen', 'aorta'.")
            self.context_index = [vocab.index(o) for o in self.context_organs]  # 0-based

    @property
    def out_channels(self):
        """Number of statistics per organ."""
        absolute = len(self.hu_edges) + 1
        return 2 * (absolute + 3) + len(self.relative_edges) + 1 + 2 * len(self.context_organs)

    def forward(self, inputs, organ_label, num_organs, context_label=None):
        """Statistics of every organ; see the class docstring.

        ``context_label``: the study's full organ label map (vocabulary labels), when
        ``organ_label`` is not one (the global pooler passes all labelled voxels as one
        region); the context organs are found in it. Default: ``organ_label``.
        """
        if inputs.dim() != 5 or inputs.shape[1] <= self.channel:
            raise ValueError(f'OrganIntensityStats expects inputs B x C x D x H x W with at least '
                             f'{self.channel + 1} channel(s), got shape {tuple(inputs.shape)}.')
        if organ_label.dim() == 5:
            organ_label = organ_label[:, 0]
        if organ_label.shape != inputs.shape[:1] + inputs.shape[2:]:
            raise ValueError(f'OrganIntensityStats: organ_label {tuple(organ_label.shape)} and '
                             f'inputs {tuple(inputs.shape)} differ in batch or spatial size.')
        low, high = self.window
        label = organ_label.long()
        batch_size = label.shape[0]
        num_segments = batch_size * num_organs
        # The labelled voxels are found once (nonzero, in raster order) and everything below
        # works on them: indexing the whole batch with boolean masks took most of the time.
        flat = label.reshape(-1)
        voxel = flat.nonzero().squeeze(1)
        per_study = flat.numel() // max(batch_size, 1)
        segment = (voxel // per_study) * num_organs + flat[voxel] - 1
        hu = inputs[:, self.channel].reshape(-1)[voxel].float() * (high - low) + low
        inside = _interior(label).reshape(-1)[voxel]
        seg_in, hu_in = segment[inside], hu[inside]

        whole = self._region(segment, hu, num_segments)
        inner = self._region(seg_in, hu_in, num_segments)
        # interior voxels against their organ's interior mean (phase-independent contrast)
        bins = torch.bucketize(hu_in - inner[0][seg_in], self.relative_edges)
        relative = self._log_count(
            _segment_hist(seg_in, bins, len(self.relative_edges) + 1, num_segments))
        feats = torch.cat([whole[1], inner[1], relative], dim=1)
        feats = feats.view(batch_size, num_organs, -1)
        if self.context_organs:
            organ_in = torch.bincount(seg_in, minlength=num_segments) > 0
            feats = torch.cat([feats, self._context(inputs, inner[0], organ_in, num_organs,
                                                    context_label)], dim=-1)
        return feats

    def _context(self, inputs, inner_mean, organ_in, num_organs, context_label):
        """``B x K x 2R``: per reference organ, in view (0/1) and the organ's interior mean
        minus the reference's interior mean, in units of 500 HU (0 when either is absent)."""
        batch_size = inputs.shape[0]
        organ_mean = inner_mean.view(batch_size, num_organs)
        organ_in = organ_in.view(batch_size, num_organs)
        index = torch.tensor(self.context_index, device=inputs.device)
        if context_label is None:  # organ_label is the vocabulary's label map
            if num_organs <= int(index.max()):
                raise ValueError(f'OrganIntensityStats: the context organs need the full organ '
                                 f'label map (labels up to {int(index.max()) + 1}), got '
                                 f'{num_organs} organ(s); pass context_label.')
            ref_mean, ref_in = organ_mean[:, index], organ_in[:, index]
        else:  # the study's full label map, for the global pooler's one region
            full = context_label[:, 0] if context_label.dim() == 5 else context_label
            full = full.long()
            k = max(int(full.max()) if full.numel() else 0, int(index.max()) + 1)
            low, high = self.window
            hu = inputs[:, self.channel].float() * (high - low) + low
            interior = _interior(full)
            batch = torch.arange(batch_size, device=full.device).view(-1, 1, 1, 1)
            seg = (batch * k + full - 1).expand_as(full)[interior]
            count = _segment_sum(seg, torch.ones_like(hu[interior]), batch_size * k)
            mean = _segment_sum(seg, hu[interior], batch_size * k) / count.clamp(min=1)
            ref_mean = mean.view(batch_size, k)[:, index]
            ref_in = count.view(batch_size, k)[:, index] > 0
        both = (organ_in[:, :, None] & ref_in[:, None, :]).float()
        diff = (organ_mean[:, :, None] - ref_mean[:, None, :]) / 500.0 * both
        present = ref_in[:, None, :].float().expand_as(diff)
        return torch.cat([present, diff], dim=-1)

    def _region(self, segment, values, num_segments):
        """(mean HU per segment, [log-count, mean, spread, log-counts per HU bin])."""
        count = _segment_sum(segment, torch.ones_like(values), num_segments)
        mean = _segment_sum(segment, values, num_segments) / count.clamp(min=1)
        var = _segment_sum(segment, (values - mean[segment]) ** 2,
                           num_segments) / count.clamp(min=1)
        hist = _segment_hist(segment, torch.bucketize(values, self.hu_edges),
                             len(self.hu_edges) + 1, num_segments)
        return mean, torch.cat([self._log_count(count)[:, None], (mean / 500.0)[:, None],
                                (var.sqrt() / 500.0)[:, None], self._log_count(hist)], dim=1)

    def _log_count(self, count):
        return torch.log1p(count) / self.log_reference


def _segment_sum(segment, values, num_segments):
    return values.new_zeros(num_segments).index_add_(0, segment, values)


def _segment_hist(segment, bins, num_bins, num_segments):
    flat = torch.bincount(segment * num_bins + bins, minlength=num_segments * num_bins)
    return flat.view(num_segments, num_bins).float()


def _interior(label):
    """Voxels of an organ whose six face neighbours carry the same label (``B x D x H x W``).

    The edge of the volume is not an organ boundary (a crop cuts the organ, no partial volume
    there), so voxels on it count as interior when their neighbours inside do."""
    same = label > 0
    for dim in (1, 2, 3):
        n = label.shape[dim]
        if n < 2:
            continue
        equal = label.narrow(dim, 1, n - 1) == label.narrow(dim, 0, n - 1)
        same.narrow(dim, 1, n - 1).logical_and_(equal)  # the neighbour before
        same.narrow(dim, 0, n - 1).logical_and_(equal)  # the neighbour after
    return same
