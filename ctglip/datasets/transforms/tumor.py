"""Binary tumor masks from labelled segmentations (Medical Segmentation Decathlon, KiTS), whose
label maps hold the organ (and cysts) next to the tumor."""
import numpy as np

from ctglip.datasets.transforms.loading import _case, _to_ras, read_volume
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
    preprocessing cache key.

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
