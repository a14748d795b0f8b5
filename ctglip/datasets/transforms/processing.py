"""ctglip's own spatial transforms: organ-aware random crop, left/right flip that swaps organ
labels and report laterality, and packing into model inputs. Everything else in a pipeline is
a MONAI dictionary transform (see ``ctglip.datasets.transforms.__init__``).

Random choices use numpy's global generator, which mmengine seeds per data-loader worker.
"""
import re

import numpy as np
import torch

from ctglip.datasets.organs import flip_lut, organ_vocabulary, swap_side
from ctglip.registry import TRANSFORMS
from ctglip.structures import CTDataSample

SPATIAL_KEYS = ('image', 'organ_label', 'tumor_mask')


def _plain(t):
    """A MONAI MetaTensor as a plain tensor (drops the metadata, keeps the data)."""
    return t.as_tensor() if hasattr(t, 'as_tensor') else torch.as_tensor(t)


@TRANSFORMS.register_module()
class RandOrganCrop:
    """Random crop of a fixed size that keeps organs in view; pads volumes that are smaller.

    With probability ``organ_prob`` the crop is centred on a random organ voxel (so the crop
    never shows only air), otherwise anywhere. Applied to image, organ label and tumor mask.

    Args:
        spatial_size: crop size in voxels (X, Y, Z) after resampling.
        organ_prob: probability of centring on an organ voxel.
        min_visible: an organ of which less than this fraction of its voxels stays in the
            crop is removed from the cropped label map (label 0): its report findings may
            describe a lesion that the crop cut away. 0 keeps every organ (the default).
    """

    def __init__(self, spatial_size, organ_prob=1.0, min_visible=0.0):
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.organ_prob = organ_prob
        self.min_visible = check_min_visible(min_visible, type(self).__name__)

    def __call__(self, results):
        label = _plain(results['organ_label'])[0]
        shape = np.array(label.shape)
        size = np.array(self.spatial_size)
        if np.random.rand() < self.organ_prob and bool((label > 0).any()):
            fg = torch.nonzero(label > 0)
            center = fg[np.random.randint(len(fg))].numpy()
        else:
            center = np.array([np.random.randint(s) for s in shape])
        start = np.clip(center - size // 2, 0, np.maximum(shape - size, 0))
        return crop_study(results, start, size, self.min_visible)

    def __repr__(self):
        return (f'{type(self).__name__}(spatial_size={self.spatial_size}, '
                f'min_visible={self.min_visible})')


def check_min_visible(value, owner):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{owner}: min_visible={value} must lie in [0, 1] (the fraction of an '
                         "organ's voxels that must stay in the crop).")
    return value


def crop_study(results, start, size, min_visible=0.0):
    """Crop every spatial key at ``start`` to ``size``; remove organs cut below ``min_visible``."""
    full = _plain(results['organ_label'])
    for key in SPATIAL_KEYS:
        if key in results:
            results[key] = crop_or_pad(_plain(results[key]), start, size)
    if results.get('image_affine') is not None:  # RecordAffine's: voxel 0 moves to ``start``
        affine = np.array(results['image_affine'], dtype=np.float64)
        affine[:3, 3] += affine[:3, :3] @ np.asarray(start, dtype=np.float64)
        results['image_affine'] = affine
    if min_visible > 0:
        results['organ_label'] = drop_cut_organs(full, results['organ_label'], min_visible)
    return results


def drop_cut_organs(full_label, cropped_label, min_visible):
    """Set to 0 the organs of ``cropped_label`` that keep less than ``min_visible`` of the
    voxels they have in ``full_label`` (both integer label maps, any shape)."""
    full_label, cropped_label = full_label.long(), cropped_label.long()
    n = int(max(full_label.max(), cropped_label.max())) + 1 if full_label.numel() else 1
    before = torch.bincount(full_label.flatten(), minlength=n).float()
    after = torch.bincount(cropped_label.flatten(), minlength=n).float()
    cut = after < min_visible * before
    cut[0] = False
    return torch.where(cut[cropped_label], torch.zeros_like(cropped_label), cropped_label)


def crop_or_pad(volume, start, size):
    """Crop ``C x X x Y x Z`` at ``start`` to ``size``, zero-padding where the volume ends."""
    slices = tuple(slice(int(s), int(s) + int(n)) for s, n in zip(start, size))
    cropped = volume[(slice(None),) + slices]
    pad = [int(n) - c for n, c in zip(size, cropped.shape[1:])]
    if any(pad):
        cropped = torch.nn.functional.pad(cropped, [p for d in reversed(pad) for p in (0, d)])
    return cropped


@TRANSFORMS.register_module()
class CenterPadCrop:
    """Deterministic version of RandOrganCrop for validation and test: crop or pad around the
    centre of the organs' bounding box to a fixed size.

    Args:
        spatial_size: crop size in voxels.
        min_visible: as in ``RandOrganCrop``: organs cut below this fraction are removed.
    """

    def __init__(self, spatial_size, min_visible=0.0):
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.min_visible = check_min_visible(min_visible, type(self).__name__)

    def __call__(self, results):
        label = _plain(results['organ_label'])[0]
        size = np.array(self.spatial_size)
        shape = np.array(label.shape)
        fg = torch.nonzero(label > 0)
        center = ((fg.min(0).values + fg.max(0).values) // 2).numpy() if len(fg) else shape // 2
        start = np.clip(center - size // 2, 0, np.maximum(shape - size, 0))
        return crop_study(results, start, size, self.min_visible)


@TRANSFORMS.register_module()
class OrganBoxCrop:
    """Whole-study view for validation and test: crop to the bounding box of all organ labels
    plus a margin (as fVLM does), so that no organ is cut, with an optional cap per axis.

    Sizes vary between studies; ``CTDataPreprocessor`` pads a batch to its largest member
    (rounded up to the backbone's ``size_divisor``), so batch sizes of 1-2 keep the padding
    small. Larger views cost time and memory in proportion to their voxels.

    Args:
        margin (int): voxels added on each side of the box (clipped at the volume's edge).
        max_size (tuple[int] | None): largest view per axis; a box larger than this is cut
            around its centre (then ``min_visible`` applies).
        min_visible (float): as in ``RandOrganCrop``.
    """

    def __init__(self, margin=2, max_size=None, min_visible=0.0):
        self.margin = int(margin)
        self.max_size = None if max_size is None else tuple(int(s) for s in max_size)
        self.min_visible = check_min_visible(min_visible, type(self).__name__)

    def __call__(self, results):
        label = _plain(results['organ_label'])[0]
        shape = np.array(label.shape)
        fg = torch.nonzero(label > 0)
        if not len(fg):
            return results
        low = np.maximum(fg.min(0).values.numpy() - self.margin, 0)
        high = np.minimum(fg.max(0).values.numpy() + 1 + self.margin, shape)
        size = high - low
        if self.max_size is not None:
            cap = np.array(self.max_size)
            low = np.where(size > cap, (low + high) // 2 - cap // 2, low)
            size = np.minimum(size, cap)
        return crop_study(results, low, size, self.min_visible)

    def __repr__(self):
        return (f'{type(self).__name__}(margin={self.margin}, max_size={self.max_size}, '
                f'min_visible={self.min_visible})')


_SIDE = re.compile(r'\b(left|right|Left|Right|LEFT|RIGHT)\b')
_SWAP = {'left': 'right', 'right': 'left', 'Left': 'Right', 'Right': 'Left',
         'LEFT': 'RIGHT', 'RIGHT': 'LEFT'}


def swap_laterality_words(text):
    """'left kidney' -> 'right kidney' (and back) in report text."""
    return _SIDE.sub(lambda m: _SWAP[m.group(0)], text)


@TRANSFORMS.register_module()
class RandFlipLR:
    """Mirror the patient left/right (the RAS x axis) and keep every label consistent.

    A flipped ``kidney_left`` becomes ``kidney_right``: the organ label map is permuted with
    ``flip_lut``, the keys of ``findings`` and ``abnormalities`` are swapped, and 'left'/'right'
    in the findings and report are exchanged, so texts still describe the organ they pair with.

    Args:
        prob: probability of flipping.
        organ_vocab: the model's organ vocabulary.
    """

    def __init__(self, prob=0.5, organ_vocab='totalseg_v1'):
        self.prob = prob
        self.vocab = organ_vocabulary(organ_vocab)
        self.lut = torch.as_tensor(flip_lut(self.vocab))

    def __call__(self, results):
        if np.random.rand() >= self.prob:
            return results
        for key in SPATIAL_KEYS:
            if key in results:
                results[key] = torch.flip(_plain(results[key]), dims=(1,))
        results['organ_label'] = self.lut[results['organ_label'].long()]
        for key in ('findings', 'abnormalities', 'status'):
            if results.get(key):
                results[key] = {swap_side(o, self.vocab): v for o, v in results[key].items()}
        if results.get('findings'):
            results['findings'] = {o: [swap_laterality_words(s) for s in v]
                                   for o, v in results['findings'].items()}
        if results.get('report'):
            results['report'] = swap_laterality_words(results['report'])
        results['flipped'] = True
        return results


@TRANSFORMS.register_module()
class PackCTInputs:
    """Pack a study into ``dict(inputs=1 x X x Y x Z float tensor, data_samples=CTDataSample)``.

    Metainfo: ``case_id``, ``patient_id``, ``split``, ``img_path``, ``flipped``, the texts,
    ``img_shape`` (X, Y, Z of the volume), and when present ``affine`` (from ``RecordAffine``)
    and ``tumor_labels`` (from ``TumorOrganLabels``). Data: ``organ_label`` and ``tumor_mask``.

    Args:
        organ_cells_stride (int | tuple[int] | None): the stride of the backbone's pooled
            feature map (2 for the shipped nnU-Net and MiT configs). When set, the overlap of
            the label map with that grid (``organ_cells`` in the metainfo, see
            :func:`~ctglip.models.poolers.base.study_organ_cells`) is computed here, in the
            data loader's workers, and the pooler uses it instead of computing it in the
            training step. A stride that does not match the backbone is caught by the model,
            which then computes the overlap itself and says which stride to set.
    """

    META_KEYS = ('case_id', 'patient_id', 'split', 'img_path', 'flipped')
    TEXT_KEYS = ('report', 'findings', 'abnormalities', 'status')

    def __init__(self, organ_cells_stride=None):
        if organ_cells_stride is not None:
            strides = ((organ_cells_stride,) * 3 if isinstance(organ_cells_stride, int)
                       else tuple(organ_cells_stride))
            if len(strides) != 3 or any(not isinstance(t, int) or t < 1 for t in strides):
                raise ValueError(f'PackCTInputs.organ_cells_stride={organ_cells_stride!r}: give '
                                 "the stride of the backbone's pooled map, an int or 3 ints "
                                 '>= 1 (2 for the nnU-Net and MiT presets), or None.')
        self.organ_cells_stride = organ_cells_stride

    def __call__(self, results):
        image = _plain(results['image']).float().contiguous()
        sample = CTDataSample(metainfo={k: results[k] for k in self.META_KEYS if k in results})
        # the volume's own shape (a batch is padded) and, from RecordAffine, its affine
        sample.set_metainfo(dict(img_shape=tuple(int(s) for s in image.shape[1:])))
        if results.get('image_affine') is not None:
            sample.set_metainfo(dict(affine=np.asarray(results['image_affine'])))
        sample.organ_label = _plain(results['organ_label'])[0].long()
        if self.organ_cells_stride is not None:
            from ctglip.models.poolers.base import study_organ_cells
            cells = study_organ_cells(sample.organ_label, self.organ_cells_stride)
            if cells is not None:  # else a size the stride does not divide: the step computes
                sample.set_metainfo(dict(organ_cells=cells))
        if 'tumor_mask' in results:
            sample.tumor_mask = _plain(results['tumor_mask'])[0].long()
        if 'tumor_labels' in results:  # TumorOrganLabels': {organ: 0 | 1}
            sample.set_metainfo(dict(tumor_labels=dict(results['tumor_labels'])))
        for key in self.TEXT_KEYS:
            sample.set_field(results.get(key), key, field_type='metainfo')
        return dict(inputs=image, data_samples=sample)


@TRANSFORMS.register_module()
class MultiWindowd:
    """Map a CT volume in HU to one channel per intensity window, each clipped and scaled to
    [0, 1], as a radiologist reads one scan in several windows.

    One wide window squeezes the soft-tissue range (where liver lesions, steatosis and masses
    differ by 20-80 HU) into a few hundredths of the input range; a soft-tissue channel next to
    a wide (lung and bone) channel gives the network those differences at full contrast. The
    backbone's ``in_channels`` must equal the number of windows.

    Args:
        keys: the image keys (``C x X x Y x Z``, HU; C must be 1).
        windows: ``[(low, high), ...]`` in HU; one output channel each, in this order.
    """

    def __init__(self, keys=('image',), windows=((-1000.0, 1000.0), (-160.0, 240.0))):
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.windows = [(float(lo), float(hi)) for lo, hi in windows]
        bad = [w for w in self.windows if not w[1] > w[0]]
        if not self.windows or bad:
            raise ValueError(f'MultiWindowd.windows={windows!r}: give (low, high) pairs in HU '
                             'with high > low.')

    def __call__(self, results):
        for key in self.keys:
            volume = results[key]
            if volume.shape[0] != 1:
                raise ValueError(f'MultiWindowd: {key!r} has {volume.shape[0]} channels; it '
                                 'expects one channel in HU (put it before any other intensity '
                                 'transform).')
            if isinstance(volume, torch.Tensor):
                results[key] = torch.cat([((volume - lo) / (hi - lo)).clamp(0.0, 1.0)
                                          for lo, hi in self.windows], 0)
            else:
                results[key] = np.concatenate([np.clip((volume - lo) / (hi - lo), 0.0, 1.0)
                                               for lo, hi in self.windows], 0)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(keys={self.keys}, windows={self.windows})'
