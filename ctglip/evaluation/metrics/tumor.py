"""Fine-tuning benchmarks of tumors: detection AUC per organ and segmentation Dice per organ."""
import logging
from collections.abc import Mapping

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ctglip.datasets.organs import ORGAN_GROUPS, organ_group, organ_vocabulary
from ctglip.evaluation.functional import bootstrap_ci, macro_mean, weighted_auc
from ctglip.evaluation.metrics.zeroshot_organ import sample_field
from ctglip.registry import METRICS
from ctglip.utils.errors import ConfigError, DataError

# warn when more than this fraction of bootstrap resamples is skipped (one class absent)
MAX_SKIPPED_FRACTION = 0.1


def _organ_key(organ):
    """The per-organ metric key of an organ: its organ group (``kidney_left`` -> ``kidney``)."""
    return organ_group(organ) or organ


@METRICS.register_module()
class TumorDetection(BaseMetric):
    """Tumor detection AUC over (study, organ) units, per organ and overall.

    Contract, per data sample (a ``CTDataSample`` or its ``to_dict()``):

    - ``tumor_scores`` ``{organ: probability}``, set by the model: how likely the organ holds a
      tumor (any finite number; only the ranking matters);
    - ``tumor_labels`` ``{organ: 0 | 1}``, the ground truth, set by the dataset; None leaves the
      study out (counted). Every organ of ``tumor_labels`` must have a score; scores of organs
      without a label are ignored.

    Organ names are TotalSegmentator's, and per-organ keys use the organ groups of
    :data:`~ctglip.datasets.organs.ORGAN_GROUPS` (``kidney_left`` and ``kidney_right`` pool
    into ``kidney``), as the zero-shot metrics do; another name is a group of its own. AUCs are
    ``sklearn.metrics.roc_auc_score``. An organ group whose units hold one class only is left
    out of the per-organ keys and of ``auc_macro``, with a warning, and counted.

    Metric keys (under ``prefix``, ``tumor`` by default), all numbers:

    - ``auc``: pooled over every (study, organ) unit; ``auc_macro``: mean over the evaluable
      organ groups; ``auc/<organ group>``;
    - ``auc_ci_low`` / ``auc_ci_high`` and ``auc_macro_ci_low`` / ``auc_macro_ci_high``:
      percentile bootstrap over studies (all organs of a study move together), with
      ``auc_bootstrap_used`` (resamples where the statistic is defined) and ``auc_ci_level``,
      when ``n_bootstrap > 0``; a resample in which an evaluable group has one class absent is
      skipped for the macro interval, never averaged over the groups that remain;
    - ``auc_num_studies``, ``auc_num_excluded_studies``, ``auc_num_units``,
      ``auc_num_skipped_organs``.

    Args:
        n_bootstrap (int): bootstrap resamples of studies; 0 turns the intervals off.
        seed (int): seed of the bootstrap.
        ci_level (float): coverage of the intervals.
        strict (bool): with no evaluable organ group (none with both classes), raise (default)
            or, when False (validation during training), warn and report only the counts.
        prefix (str, optional): the key prefix; None uses ``default_prefix``.
        collect_device (str): ``cpu`` or ``gpu``, for gathering results across ranks.
        collect_dir (str, optional): the folder used to gather results on cpu.

    Example:
        >>> val_evaluator = [dict(type='TumorDetection'), dict(type='TumorDice')]
    """

    default_prefix = 'tumor'

    def __init__(self, n_bootstrap=1000, seed=0, ci_level=0.95, strict=True, prefix=None,
                 collect_device='cpu', collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
            raise ConfigError(f'TumorDetection n_bootstrap must be an integer >= 0 (0 turns the '
                              f'confidence intervals off), got {n_bootstrap!r}')
        if not 0 < ci_level < 1:
            raise ConfigError(f'TumorDetection ci_level must be in (0, 1), got {ci_level!r}')
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.ci_level = ci_level
        self.strict = strict

    def process(self, data_batch, data_samples):
        """Turn each study into its (organ group, score, label) units.

        Args:
            data_batch: unused.
            data_samples (Sequence[BaseDataElement | dict]): see the class docstring.

        Raises:
            DataError: a malformed ``tumor_scores`` or ``tumor_labels``, a non-finite score, a
                label other than 0 / 1, or a labelled organ without a score.
        """
        name = type(self).__name__
        for sample in data_samples:
            case = sample.get('case_id', '?')
            truth = sample_field(sample, 'tumor_labels', metric=name)
            if truth is None:
                self.results.append(dict(excluded=True))
                continue
            scores = sample_field(sample, 'tumor_scores', metric=name)
            for field, value, form in (('tumor_labels', truth, '{organ: 0 | 1}'),
                                       ('tumor_scores', scores, '{organ: probability}')):
                if not isinstance(value, Mapping):
                    raise DataError(f'{field} of case {case!r} must be {form}, got '
                                    f'{type(value).__name__}')
            groups, values, labels = [], [], []
            for organ, label in truth.items():
                label = _scalar(label)
                if label not in (0, 1):
                    raise DataError(f'tumor_labels of case {case!r}: {organ!r} is {label!r}; '
                                    'a label is 0 (no tumor) or 1 (tumor)')
                if organ not in scores:
                    raise DataError(f'tumor_scores of case {case!r} has no score for {organ!r}, '
                                    f'which tumor_labels labels (scored: {sorted(scores)}); the '
                                    'model must score every labelled organ')
                score = float(_scalar(scores[organ]))
                if not np.isfinite(score):
                    raise DataError(f'tumor_scores of case {case!r} has a non-finite score '
                                    f'{score} for {organ!r}; the model output is broken')
                groups.append(_organ_key(organ))
                values.append(score)
                labels.append(bool(label))
            self.results.append(dict(excluded=False, group=np.array(groups, dtype=str),
                                     score=np.array(values, dtype=np.float64),
                                     label=np.array(labels, dtype=bool)))

    def compute_metrics(self, results):
        """Pooled, macro and per-organ AUC with bootstrap intervals.

        Raises:
            DataError: no organ group has both tumor and tumor-free units (``strict=True``).
        """
        included = [r for r in results if not r['excluded']]
        n_excluded = len(results) - len(included)
        if n_excluded:
            print_log(f'tumor detection: {n_excluded} of {len(results)} studies have no ground '
                      'truth (tumor_labels is None) and are left out', logger='current',
                      level=logging.WARNING)
        counts = dict(auc_num_studies=len(included), auc_num_excluded_studies=n_excluded)
        if included:
            study = np.concatenate([np.full(len(r['score']), i) for i, r in enumerate(included)])
            group = np.concatenate([r['group'] for r in included])
            score = np.concatenate([r['score'] for r in included])
            label = np.concatenate([r['label'] for r in included])
        else:
            study = group = score = label = np.zeros(0)
        counts['auc_num_units'] = int(label.size)
        units, skipped = [], []
        for key in sorted(set(group.tolist()), key=_group_order):
            mask = group == key
            n_pos = int(label[mask].sum())
            n_neg = int(mask.sum()) - n_pos
            if n_pos == 0 or n_neg == 0:
                skipped.append(f'{key} ({n_pos} with tumor / {n_neg} without)')
                continue
            units.append(dict(key=key, mask=mask))
        counts['auc_num_skipped_organs'] = len(skipped)
        if skipped:
            print_log('tumor detection: AUC is undefined for organ groups with one class only, '
                      f'left out of the per-organ keys and auc_macro: {", ".join(skipped)}',
                      logger='current', level=logging.WARNING)
        if not units:
            error = DataError(
                f'tumor detection has nothing to evaluate: {len(included)} studies with ground '
                f'truth ({n_excluded} without) and no organ group has units with and without '
                f'tumor ({", ".join(skipped) or "no labelled organ"}). Evaluate on a split that '
                'holds studies with and without tumor, or remove TumorDetection from the '
                'evaluator')
            if self.strict:
                raise error
            print_log(f'{error} (strict=False: no tumor AUC this time)', logger='current',
                      level=logging.WARNING)
            return counts
        from sklearn.metrics import roc_auc_score
        metrics = dict(auc=float(roc_auc_score(label, score)))
        per_group = {u['key']: float(roc_auc_score(label[u['mask']], score[u['mask']]))
                     for u in units}
        metrics['auc_macro'] = float(np.mean(list(per_group.values())))
        metrics.update({f'auc/{key}': value for key, value in per_group.items()})
        metrics.update(self._confidence_intervals(study, score, label, units, len(included)))
        metrics.update(counts)
        return metrics

    def _confidence_intervals(self, study, score, label, units, n_studies):
        if not self.n_bootstrap:
            return {}

        def statistic(weights):
            w = weights[:, study]
            pooled = weighted_auc(score, label, w)
            per_group = np.stack([weighted_auc(score[u['mask']], label[u['mask']],
                                               w[:, u['mask']]) for u in units], axis=-1)
            return np.stack([pooled, macro_mean(per_group)], axis=-1)

        low, high, n_valid = bootstrap_ci(statistic, n_studies, self.n_bootstrap, self.seed,
                                          self.ci_level)
        out = dict(auc_bootstrap_used=int(n_valid[0]), auc_ci_level=float(self.ci_level))
        for i, name in enumerate(('auc', 'auc_macro')):
            skipped = self.n_bootstrap - int(n_valid[i])
            if skipped > MAX_SKIPPED_FRACTION * self.n_bootstrap:
                print_log(f'tumor detection bootstrap: {name} is undefined in {skipped} of '
                          f'{self.n_bootstrap} resamples (an organ group with one class only); '
                          + ('no interval is reported' if not n_valid[i] else
                             'the interval uses the others and may be too narrow')
                          + '. Fix: evaluate on more studies with and without tumor',
                          logger='current', level=logging.WARNING)
            if n_valid[i]:
                out[f'{name}_ci_low'] = float(low[i])
                out[f'{name}_ci_high'] = float(high[i])
        return out


def _group_order(key):
    groups = list(ORGAN_GROUPS)
    return (groups.index(key) if key in groups else len(groups), key)


def _scalar(value):
    """A Python number from a number, a 0-d tensor or a 0-d array."""
    if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
        value = value.item()
    return value


def dice_from_counts(intersection, n_pred, n_gt):
    """Dice ``2 |P & G| / (|P| + |G|)`` from voxel counts; 1 when both masks are empty.

    Args:
        intersection (int | np.ndarray): ``|P & G|``.
        n_pred (int | np.ndarray): ``|P|``.
        n_gt (int | np.ndarray): ``|G|``.

    Returns:
        float | np.ndarray: the Dice, in [0, 1].

    Example:
        >>> dice_from_counts(2, 4, 4), dice_from_counts(0, 0, 0), dice_from_counts(0, 0, 3)
        (0.5, 1.0, 0.0)
    """
    intersection, n_pred, n_gt = (np.asarray(x, dtype=np.float64)
                                  for x in (intersection, n_pred, n_gt))
    total = n_pred + n_gt
    dice = np.divide(2 * intersection, total, out=np.ones_like(total), where=total > 0)
    return float(dice) if dice.ndim == 0 else dice


@METRICS.register_module()
class TumorDice(BaseMetric):
    """Tumor segmentation Dice per study, and per organ within each organ's region.

    Contract, per data sample (a ``CTDataSample`` or its ``to_dict()``), all D x H x W on one
    grid:

    - ``pred_tumor_mask`` (``pred_key``): the model's binary tumor mask (0/1 or bool);
    - ``gt_tumor_mask`` (``gt_key``): the true tumor mask (0/1 or bool). The pipeline packs it
      as ``tumor_mask``: set ``gt_key='tumor_mask'`` to read it there;
    - ``organ_label`` (int): the organ label map in vocabulary indices (0 background,
      ``i + 1`` = ``organ_vocab[i]``); metainfo ``organ_vocab``, when present, must equal the
      metric's ``organ_vocab``.

    A study's Dice is MONAI's ``compute_dice(include_background=True, ignore_empty=False)`` on
    the two masks. Convention, made explicit here whatever the MONAI version: an empty
    prediction on an empty truth scores 1 (nothing to find, nothing found); any prediction on
    an empty truth scores 0, as does an empty prediction on a non-empty truth.

    Per organ: a tumor voxel (true or predicted) belongs to the organ whose label it lies in,
    so the organ's Dice is ``2 |P & G & O| / (|P & O| + |G & O|)`` with ``O`` the organ's
    voxels (the union of a group's organs, e.g. both kidneys for ``kidney``), with the same
    convention. Tumor voxels outside every organ count for ``dice`` only; their share of the
    true tumor voxels is ``dice_unassigned_fraction`` (TotalSegmentator's organ masks may leave
    out large tumors; a large share means the per-organ Dice misses them).

    Metric keys (under ``prefix``, ``tumor`` by default), all numbers:

    - ``dice``: mean over studies; ``dice_num_studies``;
    - ``dice/<organ>``: mean over the studies in which the organ is present in
      ``organ_label``; ``dice_num_studies/<organ>``;
    - ``dice_unassigned_fraction``.

    Args:
        organ_vocab: the model's organ vocabulary (see
            :func:`~ctglip.datasets.organs.organ_vocabulary`), for the organ names.
        organs (Sequence[str], optional): the organs or organ groups (``liver``, ``kidney``)
            of the per-organ keys; None reports the group of every organ that holds a true
            tumor voxel in some study.
        pred_key (str): the field of the predicted mask.
        gt_key (str): the field of the true mask.
        prefix (str, optional): the key prefix; None uses ``default_prefix``.
        collect_device (str): ``cpu`` or ``gpu``, for gathering results across ranks.
        collect_dir (str, optional): the folder used to gather results on cpu.

    Raises:
        ConfigError: an organ of ``organs`` is neither in the vocabulary nor an organ group.

    Example:
        >>> test_evaluator = dict(type='TumorDice', organs=['liver'], gt_key='tumor_mask')
    """

    default_prefix = 'tumor'

    def __init__(self, organ_vocab='totalseg_v1', organs=None, pred_key='pred_tumor_mask',
                 gt_key='gt_tumor_mask', prefix=None, collect_device='cpu', collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.organ_vocab = organ_vocabulary(organ_vocab)
        self.pred_key = pred_key
        self.gt_key = gt_key
        if isinstance(organs, str):
            organs = [organs]
        self.organs = None if organs is None else {name: self._members(name) for name in organs}

    def _members(self, name):
        """Vocabulary labels (1-based) of an organ or organ group."""
        index = {organ: i + 1 for i, organ in enumerate(self.organ_vocab)}
        members = [index[o] for o in ORGAN_GROUPS.get(name, ()) if o in index]
        if name in index:
            members = [index[name]]
        if not members:
            raise ConfigError(f'TumorDice organs: {name!r} is neither an organ of the organ '
                              f'vocabulary ({len(self.organ_vocab)} organs, e.g. '
                              f'{", ".join(self.organ_vocab[:3])}) nor an organ group '
                              f'({", ".join(ORGAN_GROUPS)}). Fix: correct the name.')
        return members

    def process(self, data_batch, data_samples):
        """Reduce each study to its Dice and its per-organ voxel counts.

        Args:
            data_batch: unused.
            data_samples (Sequence[BaseDataElement | dict]): see the class docstring.

        Raises:
            DataError (a ValueError): a missing field, masks or label map of different shapes
                (both named), a mask that is not binary, or organ labels outside the
                vocabulary.
        """
        from monai.metrics import compute_dice
        for sample in data_samples:
            case = sample.get('case_id', '?')
            pred, gt, organ = self._fields(sample, case)
            pred, gt = pred.bool(), gt.bool()
            num_labels = len(self.organ_vocab) + 1
            n_pred, n_gt = int(pred.sum()), int(gt.sum())
            dice = float(compute_dice(pred[None, None].float(), gt[None, None].float(),
                                      include_background=True, ignore_empty=False)[0, 0])
            if n_pred == 0 and n_gt == 0:
                dice = 1.0  # the convention, whatever the MONAI version says
            counts = [torch.bincount(organ[m].flatten(), minlength=num_labels).cpu().numpy()
                      for m in (pred & gt, pred, gt)]
            present = torch.bincount(organ.flatten(), minlength=num_labels).cpu().numpy() > 0
            self.results.append(dict(dice=dice, intersection=counts[0], pred=counts[1],
                                     gt=counts[2], present=present))

    def _fields(self, sample, case):
        name = type(self).__name__
        if self.gt_key not in sample and 'tumor_mask' in sample and self.gt_key != 'tumor_mask':
            raise DataError(f'{name} needs the true tumor mask in {self.gt_key!r} (case '
                            f'{case!r}), which is absent; the pipeline packs it as '
                            "'tumor_mask'. Fix: set gt_key='tumor_mask' in the TumorDice "
                            'config.')
        vocab = sample.get('organ_vocab')
        if vocab is not None and tuple(vocab) != self.organ_vocab:
            raise DataError(f'{name}: case {case!r} has organ_vocab of {len(vocab)} organs, but '
                            f'the metric has {len(self.organ_vocab)}. Fix: give TumorDice the '
                            "model's organ_vocab.")
        arrays = {}
        for key in (self.pred_key, self.gt_key, 'organ_label'):
            value = sample_field(sample, key, metric=name)
            arrays[key] = value if isinstance(value, torch.Tensor) else torch.as_tensor(
                np.asarray(value))
        pred, gt, organ = arrays[self.pred_key], arrays[self.gt_key], arrays['organ_label']
        if pred.ndim != 3 or pred.shape != gt.shape:
            raise DataError(f'{name}: case {case!r} has {self.pred_key} of shape '
                            f'{tuple(pred.shape)} and {self.gt_key} of shape {tuple(gt.shape)}; '
                            'both must be D x H x W on one grid. Fix: resample the prediction '
                            'onto the grid of the truth.')
        if organ.shape != gt.shape:
            raise DataError(f'{name}: case {case!r} has organ_label of shape '
                            f'{tuple(organ.shape)} and {self.gt_key} of shape '
                            f'{tuple(gt.shape)}; they must share one grid.')
        for key, mask in ((self.pred_key, pred), (self.gt_key, gt)):
            if mask.dtype != torch.bool and bool(((mask != 0) & (mask != 1)).any()):
                raise DataError(f'{name}: {key} of case {case!r} is not binary (values such as '
                                f'{mask[(mask != 0) & (mask != 1)][:3].tolist()}). Fix: '
                                'threshold or argmax the prediction into a 0/1 mask.')
        if organ.is_floating_point() or organ.dtype == torch.bool:
            raise DataError(f'{name}: organ_label of case {case!r} has dtype {organ.dtype}; an '
                            'integer label map is required')
        organ = organ.long()
        if organ.numel() and (int(organ.min()) < 0 or int(organ.max()) > len(self.organ_vocab)):
            raise DataError(f'{name}: organ_label of case {case!r} holds labels outside '
                            f'0..{len(self.organ_vocab)} (min {int(organ.min())}, max '
                            f'{int(organ.max())}). Fix: give TumorDice the model\'s organ_vocab.')
        gt = gt.to(pred.device)
        return pred, gt, organ.to(pred.device)

    def compute_metrics(self, results):
        """Mean Dice over studies, per organ over the studies where it is present.

        Raises:
            DataError: no study was processed.
        """
        if not results:
            raise DataError('tumor Dice has no study to evaluate. Fix: check the evaluation '
                            'dataloader.')
        metrics = dict(dice=float(np.mean([r['dice'] for r in results])),
                       dice_num_studies=len(results))
        inter, pred, gt = (np.stack([r[k] for r in results]) for k in
                           ('intersection', 'pred', 'gt'))
        present = np.stack([r['present'] for r in results])
        total_gt = int(gt.sum())
        metrics['dice_unassigned_fraction'] = float(gt[:, 0].sum() / total_gt) if total_gt else 0.0
        organs = self.organs if self.organs is not None else self._tumor_organs(gt)
        absent = []
        for name, members in organs.items():
            studies = present[:, members].any(1)
            if not studies.any():
                absent.append(name)
                continue
            dice = dice_from_counts(inter[:, members].sum(1), pred[:, members].sum(1),
                                    gt[:, members].sum(1))
            metrics[f'dice/{name}'] = float(dice[studies].mean())
            metrics[f'dice_num_studies/{name}'] = int(studies.sum())
        if absent:
            print_log(f'tumor Dice: {", ".join(absent)} is present in no study\'s organ_label; '
                      'no per-organ Dice for it', logger='current', level=logging.WARNING)
        return metrics

    def _tumor_organs(self, gt):
        """``{organ group: labels}`` of every organ holding a true tumor voxel somewhere."""
        with_tumor = np.flatnonzero(gt[:, 1:].sum(0)) + 1
        keys = dict.fromkeys(_organ_key(self.organ_vocab[k - 1]) for k in with_tumor)
        return {key: self._members(key) for key in sorted(keys, key=_group_order)}
