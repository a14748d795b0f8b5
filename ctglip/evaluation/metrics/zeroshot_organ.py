"""Zero-shot organ recognition: each organ embedding classified among the organ prompts."""
import logging
import os.path as osp

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ctglip.datasets.organs import organ_vocabulary
from ctglip.registry import METRICS
from ctglip.utils.errors import ConfigError, DataError

_MISSING = object()


def sample_field(sample, name, default=_MISSING, metric=None):
    """A field of a model output: a data sample (attribute or metainfo) or its ``to_dict()``.

    Args:
        sample (BaseDataElement | dict): one output of ``CTGLIP.predict``.
        name (str): the field.
        default: returned when the field is absent; without it an absent field raises.
        metric (str, optional): the metric asking, named in the error.

    Raises:
        DataError: the field is absent and no default was given.
    """
    value = sample.get(name, _MISSING)
    if value is _MISSING:
        if default is not _MISSING:
            return default
        case = sample.get('case_id', '?')
        raise DataError(f'{metric or "the metric"} needs the field {name!r} in the model '
                        f'output of case {case!r}, which has {_field_names(sample)}; the model '
                        "must set it in predict mode (see CTDataSample's docstring)")
    return value


def _field_names(sample):
    if isinstance(sample, dict):
        return sorted(sample)
    return sorted(set(sample.keys()) | set(sample.metainfo_keys()))


def to_numpy(value):
    """A tensor (any device, any float precision) or array-like as a numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return np.asarray(value)


@METRICS.register_module()
class ZeroShotOrganRecognition(BaseMetric):
    """Zero-shot organ recognition accuracy (top-k) over the organ vocabulary.

    Every valid organ row of a study (present in the mask and big enough) is classified among
    the V organ classes by its similarities to their prompt embeddings; row ``k`` is organ
    ``organ_vocab[k]`` and its correct class is column ``k``. A tie with the correct class
    counts against it, so a collapsed model (equal logits) scores 0, not 1.

    Metric keys (under ``prefix``): ``organ_top{k}`` for each k (macro: mean of the per-organ
    accuracies over the organs that occur), ``organ_top{k}_micro`` (over all organ rows),
    ``organ_top1/<organ>`` per organ that occurs, ``organ_num_rows``. Top-1 is always computed.
    A confusion matrix picture of the top-1 predictions is saved as
    ``out_dir/organ_confusion.png`` when ``out_dir`` is given and sent to the current mmengine
    Visualizer when one exists.

    Args:
        topk (Sequence[int]): the k of the top-k accuracies.
        organ_vocab (str | Sequence[str]): the model's organ vocabulary (see
            :func:`ctglip.datasets.organs.organ_vocabulary`); names the rows.
        out_dir (str, optional): folder for the confusion matrix picture.
        prefix (str): the metric key prefix.
        collect_device (str): ``cpu`` or ``gpu``, for gathering results across ranks.
        collect_dir (str, optional): the folder used to gather results on cpu.

    Example:
        >>> val_evaluator = [dict(type='ZeroShotOrganRecognition', topk=(1, 5)),
        ...                  dict(type='ZeroShotAbnormalityDetection')]
    """

    default_prefix = 'zeroshot'

    def __init__(self, topk=(1, 5), organ_vocab='totalseg_v1', out_dir=None,
                 prefix='zeroshot', collect_device='cpu', collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        topk = (topk,) if isinstance(topk, int) else tuple(topk)
        if not topk or not all(isinstance(k, int) and k >= 1 for k in topk):
            raise ConfigError(f'ZeroShotOrganRecognition topk must be positive integers, got '
                              f'{topk!r}')
        self.topk = tuple(sorted(set(topk) | {1}))
        self.organ_vocab = organ_vocabulary(organ_vocab)
        self.out_dir = out_dir

    def process(self, data_batch, data_samples):
        """Keep, per study, the valid rows, the rank of their correct class and the top-1 class.

        Args:
            data_batch: unused.
            data_samples (Sequence[BaseDataElement | dict]): model outputs with
                ``organ_logits`` (K x V) and ``organ_valid`` (K).
        """
        name = type(self).__name__
        for sample in data_samples:
            case = sample.get('case_id', '?')
            logits = to_numpy(sample_field(sample, 'organ_logits', metric=name))
            valid = to_numpy(sample_field(sample, 'organ_valid', metric=name)).astype(bool)
            self._check_shapes(case, logits, valid, sample.get('organ_vocab', None))
            rows = np.flatnonzero(valid)
            row_logits = logits[rows].astype(np.float64)
            if not np.isfinite(row_logits).all():
                raise DataError(f'organ_logits of case {case!r} hold NaN or inf in valid organ '
                                'rows; the model output is broken (check the loss and the '
                                'temperature)')
            correct = row_logits[np.arange(rows.size), rows]
            # ties with the correct class count against it (a collapsed model scores 0)
            rank = ((row_logits > correct[:, None]).sum(1)
                    + (row_logits == correct[:, None]).sum(1) - 1)
            pred = row_logits.argmax(1) if rows.size else np.zeros(0, np.int64)
            self.results.append(dict(rows=rows.astype(np.int32), rank=rank.astype(np.int32),
                                     pred=pred.astype(np.int32)))

    def _check_shapes(self, case, logits, valid, sample_vocab):
        n_organs = len(self.organ_vocab)
        if logits.ndim != 2 or logits.shape[0] != n_organs or logits.shape[1] < n_organs:
            raise ConfigError(
                f'organ_logits of case {case!r} has shape {logits.shape}, but the metric\'s '
                f'organ_vocab has {n_organs} organs: it needs K x V with K = {n_organs} rows '
                'and V >= K classes; set ZeroShotOrganRecognition(organ_vocab=...) to the '
                "model's vocabulary")
        if valid.shape != (logits.shape[0],):
            raise DataError(f'organ_valid of case {case!r} has shape {valid.shape}, expected '
                            f'({logits.shape[0]},) to match organ_logits {logits.shape}')
        if sample_vocab is not None and tuple(sample_vocab) != self.organ_vocab:
            raise ConfigError(f'case {case!r} carries organ_vocab with {len(sample_vocab)} '
                              f'organs that differs from the metric\'s ({n_organs} organs); '
                              'set ZeroShotOrganRecognition(organ_vocab=...) to the dataset\'s '
                              'vocabulary')

    def compute_metrics(self, results):
        """Top-k accuracies (macro and micro), per-organ top-1 and the confusion picture.

        Raises:
            DataError: no study has a valid organ row.
        """
        rows = np.concatenate([r['rows'] for r in results]) if results else np.zeros(0, int)
        if rows.size == 0:
            raise DataError(
                f'zero-shot organ recognition got {len(results)} studies but no valid organ '
                'row: organ_valid is False everywhere (organs absent from the masks or below '
                'the minimum size); check the organ masks and the pooler\'s minimum voxel count')
        rank = np.concatenate([r['rank'] for r in results])
        pred = np.concatenate([r['pred'] for r in results])
        n_organs = len(self.organ_vocab)
        counts = np.bincount(rows, minlength=n_organs)
        present = np.flatnonzero(counts)

        metrics = {}
        for k in self.topk:
            hits = np.bincount(rows, weights=rank < k, minlength=n_organs)
            per_organ = hits[present] / counts[present]
            metrics[f'organ_top{k}'] = float(per_organ.mean())
            metrics[f'organ_top{k}_micro'] = float((rank < k).mean())
            if k == 1:
                for organ_index, accuracy in zip(present, per_organ):
                    metrics[f'organ_top1/{self.organ_vocab[organ_index]}'] = float(accuracy)
        metrics['organ_num_rows'] = int(rows.size)
        print_log(f'zero-shot organ recognition: {rows.size} organ rows of {len(results)} '
                  f'studies, {present.size} of {n_organs} organs occur; top-1 macro '
                  f'{metrics["organ_top1"]:.4f}, micro {metrics["organ_top1_micro"]:.4f}',
                  logger='current')

        n_classes = int(max(pred.max() + 1, n_organs))
        confusion = np.bincount(rows.astype(np.int64) * n_classes + pred,
                                minlength=n_organs * n_classes).reshape(n_organs, n_classes)
        self._draw_confusion(confusion)
        return metrics

    def _draw_confusion(self, confusion):
        from ctglip.visualization.plots import (add_image_to_visualizer, has_visualizer,
                                                plot_confusion_matrix)
        if not (self.out_dir or has_visualizer()):
            return
        path = osp.join(self.out_dir, 'organ_confusion.png') if self.out_dir else None
        try:
            image = plot_confusion_matrix(confusion, self.organ_vocab, path=path)
        except Exception as e:  # noqa: BLE001 - a picture must not cost the metrics
            print_log(f'could not draw the organ confusion matrix ({path or "no file"}): {e!r}',
                      logger='current', level=logging.WARNING)
            return
        add_image_to_visualizer(f'{self.prefix or "zeroshot"}/organ_confusion', image)
