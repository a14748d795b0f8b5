"""Tumor transforms of fine-tuning pipelines: binary tumor masks from labelled segmentations
(Medical Segmentation Decathlon, KiTS, whose label maps hold the organ (and cysts) next to the
tumor), per-organ tumor labels for detection, tumor-aware crops, and the voxel-to-world affine
that predictions are written with."""
import numpy as np
import torch

from ctglip.datasets.organs import organ_vocabulary
from ctglip.datasets.transforms.loading import _case, _to_ras, read_volume
from ctglip.datasets.transforms.processing import _plain, crop_study
from ctglip.registry import TRANSFORMS
from ctglip.utils.errors import ConfigError, DataError


def _check_values(values, owner):
    """``values`` as a sorted tuple of distinct positive ints; ConfigError otherwise."""
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = (values,)
    try:
        checked = tuple(sorted({int(v) for v in values}))
        exact = all(not isinstance(v, bool) and int(v) == v for v in values)
    except (TypeError, ValueError):
        checked, exact = (), False
    if not checked or not exact or checked[0] < 1:
        raise ConfigError(f'{owner}: tumor label values must be positive integers such as '
                          f'(2,), got {values!r}; 0 is background.')
    return checked


@TRANSFORMS.register_module()
class SelectTumorLabels:
    """Replace ``tumor_mask`` by the voxels of ``tumor_path`` whose label is one of ``values``.

    ``LoadCTStudy`` reads ``tumor_path`` as a binary mask: every non-zero voxel is tumor. The
    segmentations of the Medical Segmentation Decathlon (1 organ, 2 tumor) and KiTS (1 kidney,
    2 tumor, 3 cyst) are label maps, for which that would count the whole organ as tumor. The
    datasets of :mod:`ctglip.datasets.tumor_layouts` write no derived files: they point
    ``tumor_path`` at the label map and add ``tumor_values`` (their tumor labels) and
    ``tumor_label_map`` (``{label: name}``, every value the file may hold) to the data info,
    and refuse a pipeline in which ``LoadCTStudy`` is not followed by this transform.

    Put it right after ``LoadCTStudy`` (inside ``CachedPreprocess`` when that holds the
    loading): it reads the label map again, reoriented to RAS, on the grid that ``LoadCTStudy``
    has just checked against the CT, and writes ``tumor_mask`` (1 x X x Y x Z int64, 0/1).
    ``values`` is an argument rather than read from the data info so that it is part of the
    preprocessing cache key. A study without ``tumor_path`` whose data info says
    ``tumor_free=True`` (``TumorManifestDataset(missing_tumor_mask='tumor_free')``) gets an
    all-zero ``tumor_mask`` on the image grid.

    Args:
        values: the labels that are tumor, e.g. ``(2,)``; ``(2, 3)`` counts KiTS cysts too.
            When the data info has ``tumor_values``, the two must agree.

    Raises:
        ConfigError: the transform does not follow ``LoadCTStudy``, or ``values`` disagrees
            with the dataset's ``tumor_values``.
        DataError: the label map holds non-integer values or labels outside
            ``tumor_label_map``.

    Example:
        >>> pipeline = [dict(type='LoadCTStudy'), dict(type='SelectTumorLabels', values=(2,)),
        ...             dict(type='PackCTInputs')]
    """

    def __init__(self, values):
        self.values = _check_values(values, 'SelectTumorLabels.values')

    def __call__(self, results):
        case_id = results.get('case_id')
        path = results.get('tumor_path')
        if not path and results.get('tumor_free') and 'image' in results:
            # a study its dataset declares tumor free (TumorManifestDataset with
            # missing_tumor_mask='tumor_free'): an empty mask on the image grid
            results['tumor_mask'] = torch.zeros_like(results['image']).long()
            return results
        if not path:
            raise DataError(f'{_case(case_id)}SelectTumorLabels needs tumor_path (a labelled '
                            'segmentation) in the data info and there is none. Fix: use a '
                            'dataset that sets it (MSDTumorDataset, KiTSTumorDataset, or a '
                            'manifest with "tumor_mask"), or remove SelectTumorLabels.')
        expected = results.get('tumor_values')
        if expected is not None and tuple(sorted(int(v) for v in expected)) != self.values:
            raise ConfigError(f'{_case(case_id)}SelectTumorLabels(values={self.values}) but the '
                              f'dataset marks labels {tuple(expected)} of {path} as tumor. Fix: '
                              'give the transform the same values as the dataset '
                              '(tumor_labels).')
        if 'image' not in results or 'tumor_mask' not in results:
            raise ConfigError(f'{_case(case_id)}SelectTumorLabels found no image and tumor_mask '
                              'in the data: it must come right after LoadCTStudy in the '
                              'pipeline. Fix: reorder the pipeline.')
        volume = read_volume(path, case_id, what='tumor_mask')
        labels = np.asarray(volume)
        int_labels = labels.astype(np.int64)
        if not np.array_equal(int_labels, labels):
            raise DataError(f'{_case(case_id)}tumor_mask {path} holds non-integer values; a '
                            'label map of integer classes is required. Fix: save it with an '
                            'integer data type.')
        label_map = results.get('tumor_label_map')
        if label_map is not None:
            known = {int(k) for k in label_map}
            unknown = sorted(set(np.unique(int_labels).tolist()) - known)
            if unknown:
                shown = dict(sorted((int(k), v) for k, v in label_map.items()))
                raise DataError(f'{_case(case_id)}tumor_mask {path} holds label values '
                                f'{unknown[:10]} outside its label map {shown}. Fix: check that '
                                'the file is this dataset\'s segmentation (or correct the label '
                                'map the dataset was given).')
        tumor = _to_ras(volume.new_tensor(np.isin(int_labels, self.values).astype(np.int64)))
        image = results['image'][0]
        if tuple(image.shape) != tuple(tumor.shape) or not np.allclose(
                np.asarray(image.affine), np.asarray(tumor.affine), atol=0.5):
            # LoadCTStudy has checked this very file against the CT: the image grid changed since
            raise ConfigError(f'{_case(case_id)}SelectTumorLabels: the image (shape '
                              f'{tuple(image.shape)}) is no longer on the grid of {path} (shape '
                              f'{tuple(tumor.shape)}); a transform between LoadCTStudy and '
                              'SelectTumorLabels changed it. Fix: put SelectTumorLabels right '
                              'after LoadCTStudy.')
        results['tumor_mask'] = tumor[None]
        return results

    def __repr__(self):
        return f'{type(self).__name__}(values={self.values})'


@TRANSFORMS.register_module()
class RecordAffine:
    """Keep the image's voxel-to-world affine (RAS mm) as ``image_affine`` (4 x 4 float64).

    MONAI's MetaTensors carry the affine through loading and resampling, but the preprocessing
    cache stores plain arrays and the crops return plain tensors. Put this transform after the
    last transform that changes the grid (``Spacingd``), inside ``CachedPreprocess`` when that
    holds the loading: the cache then stores the affine, crops shift it, and ``PackCTInputs``
    packs it as the metainfo ``affine``, from which predictions are written in the world
    (``TumorPredictionWriter``).

    Raises:
        ConfigError: the image carries no affine (not a MetaTensor: a crop or the cache came
            first).
    """

    def __call__(self, results):
        affine = getattr(results.get('image'), 'affine', None)
        if affine is None:
            raise ConfigError(f'{_case(results.get("case_id"))}RecordAffine found an image without '
                              'an affine: it must follow the loading and resampling transforms '
                              '(LoadCTStudy, Spacingd) before any crop, inside CachedPreprocess. '
                              'Fix: reorder the pipeline.')
        results['image_affine'] = np.asarray(affine, dtype=np.float64)
        return results

    def __repr__(self):
        return f'{type(self).__name__}()'


@TRANSFORMS.register_module()
class TumorOrganLabels:
    """Per-organ tumor ground truth for detection: ``tumor_labels`` ``{organ: 0 | 1}``.

    An organ of ``organs`` present in ``organ_label`` is 1 when at least ``min_voxels`` tumor
    voxels lie inside it, else 0; organs absent from the study get no label (nothing to
    detect). Put it after resampling and before any crop, so the labels describe the study.
    ``PackCTInputs`` packs them as metainfo, which ``TumorDetection`` reads.

    Args:
        organs (Sequence[str]): TotalSegmentator organ names.
        organ_vocab: the organ vocabulary of ``organ_label``.
        min_voxels (int): tumor voxels an organ must hold to count as having a tumor.

    Raises:
        ConfigError: an organ outside the vocabulary.
        DataError: the study has no ``tumor_mask``.
    """

    def __init__(self, organs=('liver', 'pancreas', 'kidney_left', 'kidney_right'),
                 organ_vocab='totalseg_v1', min_voxels=1):
        vocab = organ_vocabulary(organ_vocab)
        unknown = [o for o in organs if o not in vocab]
        if unknown:
            raise ConfigError(f'TumorOrganLabels organs {unknown} are not in the organ '
                              "vocabulary. Fix: use TotalSegmentator names such as 'liver'.")
        self.organs = tuple(organs)
        self.indices = [vocab.index(o) + 1 for o in self.organs]
        self.min_voxels = int(min_voxels)

    def __call__(self, results):
        if 'tumor_mask' not in results:
            raise DataError(f'{_case(results.get("case_id"))}TumorOrganLabels needs a tumor_mask '
                            'and the study has none. Fix: use a fine-tune dataset (every study '
                            'with a tumor mask) and load it before this transform.')
        organ = _plain(results['organ_label']).long().flatten()
        tumor = _plain(results['tumor_mask']).flatten() > 0
        n = max(self.indices) + 1
        present = torch.bincount(organ.clamp(max=n), minlength=n + 1)
        inside = torch.bincount(organ[tumor].clamp(max=n), minlength=n + 1)
        results['tumor_labels'] = {o: int(inside[i] >= self.min_voxels)
                                   for o, i in zip(self.organs, self.indices) if present[i] > 0}
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(organs={self.organs}, min_voxels={self.min_voxels})')


@TRANSFORMS.register_module()
class RandTumorCrop:
    """Random crop of a fixed size that holds a tumor voxel with probability ``tumor_prob``
    (when the study has one), else a voxel of ``organs`` (when present), else of any organ.

    Tumors fill a small share of a CT; crops centred on organs (``RandOrganCrop``) would show
    one rarely. The chosen voxel lies at a uniformly random place in the crop, not at its
    centre: a network trained on crops whose centre is always tumor learns the position (zero
    padding tells it where the border is) and marks the middle of every sliding window at test.
    Applied to image, organ label and tumor mask; pads volumes that are smaller.

    Args:
        spatial_size (Sequence[int]): crop size in voxels.
        tumor_prob (float): probability of centring on a tumor voxel.
        organs (Sequence[str] | None): the organs that tumors grow in (the other centres).
        organ_vocab: the organ vocabulary of ``organ_label``.
    """

    def __init__(self, spatial_size, tumor_prob=0.5, organs=None, organ_vocab='totalseg_v1'):
        self.spatial_size = tuple(int(s) for s in spatial_size)
        if not 0.0 <= float(tumor_prob) <= 1.0:
            raise ConfigError(f'RandTumorCrop tumor_prob={tumor_prob!r} must lie in [0, 1].')
        self.tumor_prob = float(tumor_prob)
        vocab = organ_vocabulary(organ_vocab)
        unknown = [o for o in organs or () if o not in vocab]
        if unknown:
            raise ConfigError(f'RandTumorCrop organs {unknown} are not in the organ vocabulary.')
        self.organ_indices = torch.as_tensor([vocab.index(o) + 1 for o in organs or ()])

    def __call__(self, results):
        label = _plain(results['organ_label'])[0]
        shape = np.array(label.shape)
        size = np.array(self.spatial_size)
        tumor = _plain(results['tumor_mask'])[0] > 0 if 'tumor_mask' in results else None
        candidates = []
        if tumor is not None and np.random.rand() < self.tumor_prob:
            candidates.append(tumor)
        if len(self.organ_indices):
            candidates.append(torch.isin(label, self.organ_indices))
        candidates.append(label > 0)
        voxel = None
        for mask in candidates:
            voxels = torch.nonzero(mask)
            if len(voxels):
                voxel = voxels[np.random.randint(len(voxels))].numpy()
                break
        if voxel is None:
            voxel = np.array([np.random.randint(s) for s in shape])
        offset = np.array([np.random.randint(n) for n in size])  # where the voxel lands
        start = np.clip(voxel - offset, 0, np.maximum(shape - size, 0))
        return crop_study(results, start, size)

    def __repr__(self):
        return (f'{type(self).__name__}(spatial_size={self.spatial_size}, '
                f'tumor_prob={self.tumor_prob})')
