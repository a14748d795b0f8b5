"""Zero-shot abnormality detection: AUC, and F1 / PPV / sensitivity at a calibrated threshold."""
import json
import logging
import os
import os.path as osp
from collections import Counter
from collections.abc import Mapping

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ctglip.evaluation.functional import (RATES, THRESHOLD_RULES, auc, bootstrap_ci,
                                          confusion_counts, macro_mean, rates_from_confusion,
                                          select_threshold, weighted_auc)
from ctglip.evaluation.metrics.zeroshot_organ import sample_field
from ctglip.registry import METRICS
from ctglip.utils.errors import ConfigError, DataError
from ctglip.vocabularies import default_vocabulary, load_abnormality_vocab

THRESHOLDS_FILE = 'abn_thresholds.json'
_RATES = ('f1', 'ppv', 'sensitivity')  # the default rates (fixed metric keys)
LEVELS = ('organ', 'study')
# warn when more than this fraction of bootstrap resamples lose an abnormality of the point
# estimate (one class absent) and are skipped: the interval then describes the resamples that
# keep every abnormality, a narrower question than the one asked
MAX_SKIPPED_FRACTION = 0.1
_DEFAULT_ORDER = default_vocabulary().order()


def load_thresholds(thresholds):
    """Operating thresholds from a dict or a JSON file.

    Args:
        thresholds (Mapping | str): ``{abnormality: threshold}`` (keys may also be
            ``group/abnormality``), or the path of a JSON file holding that object or the
            object that :class:`ZeroShotAbnormalityDetection` writes (``{"thresholds": {...},
            "rule": ...}``).

    Returns:
        dict: ``{abnormality: float}``.

    Raises:
        ConfigError: the file is missing or not such an object, or a value is not a finite
            number.
    """
    source = 'thresholds'
    if isinstance(thresholds, (str, os.PathLike)):
        source = str(thresholds)
        if not osp.isfile(source):
            raise ConfigError(
                f'ZeroShotAbnormalityDetection thresholds file {source!r} does not exist; '
                'evaluate the validation split with thresholds=None and out_dir=DIR to write '
                f'DIR/{THRESHOLDS_FILE}, then pass that file')
        try:
            with open(source) as f:
                thresholds = json.load(f)
        except ValueError as e:
            raise ConfigError(f'thresholds file {source!r} is not valid JSON: {e}') from None
        if isinstance(thresholds, Mapping) and isinstance(thresholds.get('thresholds'), Mapping):
            thresholds = thresholds['thresholds']
    if not isinstance(thresholds, Mapping):
        raise ConfigError(f'{source}: expected {{abnormality: threshold}}, got '
                          f'{type(thresholds).__name__}')
    checked = {}
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not np.isfinite(value):
            raise ConfigError(f'{source}: the threshold of {name!r} must be a finite number, '
                              f'got {value!r}')
        checked[str(name)] = float(value)
    return checked


@METRICS.register_module()
class ZeroShotAbnormalityDetection(BaseMetric):
    """Zero-shot abnormality detection over (study, organ, abnormality) units.

    With ``level='organ'`` (default) a unit is one abnormality of an organ's group in one
    study: its score is ``abn_scores[organ][abnormality]`` and its label whether the study's
    ground truth lists that abnormality for that organ. Units of one abnormality are pooled over
    the organs of its group (both kidneys, the five lung lobes) and over studies; an organ
    outside the groups of the abnormality vocabulary (custom prompts) is a group of its own.
    With ``level='study'`` a unit is one abnormality in one study, as in the CT-CLIP and fVLM
    tables of CT-RATE's per-volume labels: its score is the highest score of the abnormality
    over the organs of the study, and its label whether the ground truth lists the abnormality
    for any organ. Studies whose ``abnormalities`` is None are left out and counted.

    Per abnormality: AUC, and the ``rates`` (default F1, PPV and sensitivity) at the operating
    threshold
    (``score >= threshold`` is positive). The threshold is chosen on a calibration set (the
    validation split) by ``threshold_rule`` (see :func:`~ctglip.evaluation.functional.
    select_threshold`) and applied unchanged to the test split by passing ``thresholds``
    (``tools/test.py`` does this in every run with :meth:`use_validation_thresholds`). With
    ``thresholds=None`` they are chosen on the evaluated data itself (optimistic: the key
    ``abn_thresholds_self_calibrated`` is 1.0 then) and written to
    ``out_dir/abn_thresholds.json`` as a record of the run. An abnormality with one class absent
    is left out of the averages with a warning.

    The bootstrap intervals average every resample over exactly the abnormalities of the point
    estimate (AUC: all evaluable ones; F1 / PPV / sensitivity: those with a threshold). A
    resample in which one of them has one class absent is skipped as a whole, never averaged
    over the abnormalities that remain; ``abn_bootstrap_skipped`` counts these resamples and
    a warning names the abnormalities responsible when more than
    :data:`MAX_SKIPPED_FRACTION` of them are skipped.

    Metric keys (under ``prefix``), all numbers:

    - ``abn_auc``, ``abn_f1``, ``abn_ppv``, ``abn_sensitivity`` (and any other of ``rates``:
      ``abn_accuracy``, ``abn_specificity``, ``abn_f1_weighted``): macro over the evaluable
      abnormalities;
    - ``abn_<m>_ci_low`` / ``abn_<m>_ci_high``: percentile bootstrap over studies (or
      patients), ``abn_bootstrap_used`` / ``abn_bootstrap_skipped``: resamples used / skipped
      for them, ``abn_ci_level``: their coverage (these present when ``n_bootstrap > 0``);
    - ``abn_<m>/<group>`` (macro over the group's abnormalities; no interval),
      ``abn_<m>/<group>/<abnormality>``, ``abn_threshold/<group>/<abnormality>``;
    - the source of the thresholds: ``abn_thresholds_self_calibrated`` is 1.0 when they were
      chosen on the evaluated data, ``abn_thresholds_val_calibrated`` is 1.0 when they were
      chosen on the validation split of the same run (:meth:`use_validation_thresholds`);
      both 0.0: thresholds given in the config;
    - ``abn_num_studies``, ``abn_num_excluded_studies``, ``abn_num_evaluable``.

    A radar picture of the per-group AUC (paper Figure 4h) is saved as
    ``out_dir/abn_auc_radar.png`` and sent to the current mmengine Visualizer when one exists.

    Args:
        thresholds (Mapping | str, optional): ``{abnormality: threshold}`` or a JSON file of
            it; None chooses them on the evaluated data.
        threshold_rule (str): ``nearest_01`` (ROC point nearest (0, 1), the paper's rule),
            ``max_f1`` or ``youden``; used when ``thresholds`` is None.
        n_bootstrap (int): bootstrap resamples of studies for the confidence intervals; 0
            turns them off.
        bootstrap_unit (str): ``study`` resamples studies; ``patient`` resamples patients
            (metainfo ``patient_id``; a study without one is its own patient), so that several
            studies of one patient move together and the interval is not too narrow.
        seed (int): seed of the bootstrap.
        ci_level (float): coverage of the confidence intervals.
        out_dir (str, optional): folder for ``abn_thresholds.json`` and the radar picture.
        strict (bool): with nothing evaluable (no abnormality with both classes), raise
            (default) or, when False (validation during training), warn and report only the
            counts.
        prefix (str): the metric key prefix.
        collect_device (str): ``cpu`` or ``gpu``, for gathering results across ranks.
        collect_dir (str, optional): the folder used to gather results on cpu.
        abnormality_vocab: the abnormality vocabulary (groups of the metric keys and their
            order); configs set the top-level key ``abnormality_vocab``. None: the default.
        level (str): ``organ`` or ``study`` units (see above).
        rates (Sequence[str]): the threshold metrics, from ``f1``, ``ppv`` (precision),
            ``sensitivity``, ``specificity``, ``accuracy`` and ``f1_weighted`` (the support-
            weighted F1 of both classes that CT-CLIP and fVLM report as F1).

    Example:
        >>> val_evaluator = dict(type='ZeroShotAbnormalityDetection', out_dir='work_dirs/val')
        >>> test_evaluator = dict(type='ZeroShotAbnormalityDetection',
        ...                       thresholds='work_dirs/val/abn_thresholds.json')
    """

    default_prefix = 'zeroshot'

    def __init__(self, thresholds=None, threshold_rule='nearest_01', n_bootstrap=1000, seed=0,
                 bootstrap_unit='study',
                 ci_level=0.95, out_dir=None, strict=True, prefix='zeroshot',
                 collect_device='cpu', collect_dir=None, abnormality_vocab=None, level='organ',
                 rates=_RATES):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if level not in LEVELS:
            raise ConfigError(f"ZeroShotAbnormalityDetection level={level!r}; use 'organ' or "
                              "'study'.")
        unknown = [r for r in rates if r not in RATES] if not isinstance(rates, str) else [rates]
        if unknown or not rates:
            raise ConfigError(f'ZeroShotAbnormalityDetection rates={rates!r}: use a list of '
                              f'{", ".join(RATES)}')
        self.level = level
        self.rates = tuple(rates)
        self.abnormality_vocab = load_abnormality_vocab(abnormality_vocab)
        if threshold_rule not in THRESHOLD_RULES:
            raise ConfigError(f'ZeroShotAbnormalityDetection threshold_rule={threshold_rule!r} '
                              f'is unknown; use one of {", ".join(THRESHOLD_RULES)}')
        if not isinstance(n_bootstrap, int) or n_bootstrap < 0:
            raise ConfigError(f'ZeroShotAbnormalityDetection n_bootstrap must be an integer '
                              f'>= 0 (0 turns the confidence intervals off), got {n_bootstrap!r}')
        if not 0 < ci_level < 1:
            raise ConfigError(f'ZeroShotAbnormalityDetection ci_level must be in (0, 1), got '
                              f'{ci_level!r}')
        if isinstance(thresholds, Mapping):
            thresholds = load_thresholds(thresholds)  # validate now; files are read at use
        elif thresholds is not None and not isinstance(thresholds, (str, os.PathLike)):
            raise ConfigError('ZeroShotAbnormalityDetection thresholds must be None, a dict '
                              f'{{abnormality: threshold}} or a JSON path, got {thresholds!r}')
        self.thresholds = thresholds
        self.thresholds_from_val = False
        self.threshold_rule = threshold_rule
        self.n_bootstrap = n_bootstrap
        if bootstrap_unit not in ('study', 'patient'):
            raise ConfigError(f'ZeroShotAbnormalityDetection bootstrap_unit={bootstrap_unit!r}; '
                              "use 'study' or 'patient'.")
        self.bootstrap_unit = bootstrap_unit
        self.seed = seed
        self.ci_level = ci_level
        self.out_dir = out_dir
        self.strict = strict

    def use_validation_thresholds(self, thresholds):
        """Apply thresholds chosen on the validation split of this run.

        ``tools/test.py`` calls this with the thresholds that the validation run has just
        reported, so that no thresholds file of an earlier run can be picked up; the metrics
        then say ``abn_thresholds_val_calibrated=1``.

        Args:
            thresholds (Mapping): ``{abnormality: threshold}`` or ``{group/abnormality:
                threshold}``.

        Raises:
            ConfigError: ``thresholds`` is not such a mapping, or a value is not a finite
                number.
        """
        if not isinstance(thresholds, Mapping):
            raise ConfigError('use_validation_thresholds needs {abnormality: threshold} '
                              f'chosen in this run, got {type(thresholds).__name__}')
        self.thresholds = load_thresholds(thresholds)
        self.thresholds_from_val = True

    def process(self, data_batch, data_samples):
        """Turn each study into its units (small arrays of groups, names, scores, labels).

        Args:
            data_batch: unused.
            data_samples (Sequence[BaseDataElement | dict]): model outputs with ``abn_scores``
                ``{organ: {abnormality: probability}}``, ground truth ``abnormalities``
                ``{organ: [abnormality]}`` (None: study left out) and metainfo ``case_id``.
        """
        name = type(self).__name__
        for sample in data_samples:
            case = sample.get('case_id', '?')
            truth = sample_field(sample, 'abnormalities', default=None)
            if truth is None:
                self.results.append(dict(excluded=True))
                continue
            truth = self._check_truth(case, truth)
            abn_scores = sample_field(sample, 'abn_scores', metric=name)
            if not isinstance(abn_scores, Mapping):
                raise DataError(f'abn_scores of case {case!r} must be {{organ: {{abnormality: '
                                f'probability}}}}, got {type(abn_scores).__name__}')
            groups, names, scores, labels = [], [], [], []
            for organ, organ_scores in abn_scores.items():
                for abnormality, score in organ_scores.items():
                    score = float(score)
                    if not np.isfinite(score):
                        raise DataError(f'abn_scores of case {case!r} has a non-finite score '
                                        f'{score} for {organ!r} / {abnormality!r}; the model '
                                        'output is broken')
                    groups.append(self.abnormality_vocab.unit_group(organ, abnormality))
                    names.append(abnormality)
                    scores.append(score)
                    labels.append(abnormality in truth.get(organ, ()))
            if self.level == 'study':
                groups, names, scores, labels, unscored = self._study_units(
                    groups, names, scores, truth)
            else:
                unscored = [f'{organ}: {abnormality}' for organ, found in truth.items()
                            for abnormality in found
                            if abnormality not in abn_scores.get(organ, {})]
            self.results.append(dict(
                excluded=False, patient=sample.get('patient_id'),
                group=np.array(groups, dtype=str),
                abnormality=np.array(names, dtype=str),
                score=np.array(scores, dtype=np.float64), label=np.array(labels, dtype=bool),
                unscored=unscored))

    @staticmethod
    def _study_units(groups, names, scores, truth):
        """One unit per (group, abnormality) of a study: the highest score over its organs,
        positive when the ground truth lists the abnormality for any organ."""
        best = {}
        for key, score in zip(zip(groups, names), scores):
            best[key] = max(score, best.get(key, -np.inf))
        present = {a for found in truth.values() for a in found}
        keys = list(best)
        scored = {a for _, a in keys}
        unscored = [f'study: {a}' for a in sorted(present - scored)]
        return ([g for g, _ in keys], [a for _, a in keys], [best[k] for k in keys],
                [a in present for _, a in keys], unscored)

    @staticmethod
    def _check_truth(case, truth):
        if not isinstance(truth, Mapping):
            raise DataError(f'abnormalities of case {case!r} must be {{organ: [abnormality, '
                            f'...]}} or None, got {type(truth).__name__}')
        checked = {}
        for organ, names in truth.items():
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise DataError(f'abnormalities of case {case!r}: {organ!r} must map to a list '
                                f'of abnormality names, got {names!r}')
            checked[organ] = set(names)
        return checked

    def compute_metrics(self, results):
        """AUC / F1 / PPV / sensitivity per abnormality, group and overall, with bootstrap CIs.

        Raises:
            DataError: no abnormality has both positive and negative units.
            ConfigError: ``thresholds`` is given but names none of the evaluable abnormalities.
        """
        included = [r for r in results if not r['excluded']]
        n_excluded = len(results) - len(included)
        if n_excluded:
            print_log(f'zero-shot abnormality detection: {n_excluded} of {len(results)} studies '
                      'have no ground truth (abnormalities is None) and are left out',
                      logger='current', level=logging.WARNING)
        self._report_unscored(included)
        try:
            units = self._evaluable_units(included, n_excluded)
        except DataError as e:
            if self.strict:
                raise
            # validation during training: a small split without abnormal cases must not end
            # the run; the warning says why no abnormality metric is reported this time
            print_log(f'{e} (strict=False: no abnormality metrics this time)',
                      logger='current', level=logging.WARNING)
            return dict(abn_num_studies=len(included), abn_num_evaluable=0)
        thresholds, self_calibrated = self._thresholds(units)
        for unit in units:
            unit['threshold'] = thresholds.get(unit['key'])

        metrics = {}
        per_unit = {m: {} for m in ('auc',) + self.rates}
        for unit in units:
            group, abnormality = unit['key']
            values = dict(auc=auc(unit['score'], unit['label']))
            if unit['threshold'] is not None:
                counts = confusion_counts(unit['score'], unit['label'], unit['threshold'])
                rates = rates_from_confusion(counts['tp'], counts['fp'], counts['fn'],
                                             counts['tn'])
                values.update({m: float(rates[m]) for m in self.rates})
                metrics[f'abn_threshold/{group}/{abnormality}'] = unit['threshold']
            for m, value in values.items():
                per_unit[m][unit['key']] = value
                metrics[f'abn_{m}/{group}/{abnormality}'] = value
        for m, values in per_unit.items():
            if values:
                metrics[f'abn_{m}'] = macro_mean(list(values.values()))
            for group in dict.fromkeys(g for g, _ in values):
                metrics[f'abn_{m}/{group}'] = float(np.mean(
                    [v for (g, _), v in values.items() if g == group]))
        metrics.update(self._confidence_intervals(units, len(included),
                                                  self._clusters(included)))
        metrics['abn_thresholds_self_calibrated'] = float(self_calibrated)
        metrics['abn_thresholds_val_calibrated'] = float(self.thresholds_from_val)
        metrics['abn_num_studies'] = len(included)
        metrics['abn_num_excluded_studies'] = n_excluded
        metrics['abn_num_evaluable'] = len(units)
        self._log_table(units, per_unit, self.rates)

        if self_calibrated and self.out_dir:
            self._write_thresholds(units, len(included))
        groups = dict.fromkeys(g for g, _ in per_unit['auc'])
        group_auc = {g: metrics[f'abn_auc/{g}'] for g in groups}
        self._draw_radar(group_auc)
        return metrics

    @staticmethod
    def _report_unscored(included):
        unscored = Counter(s for r in included for s in r['unscored'])
        if unscored:
            shown = ', '.join(f'{name!r} x{n}' for name, n in unscored.most_common(10))
            print_log(f'zero-shot abnormality detection: {sum(unscored.values())} ground-truth '
                      'findings have no model score (the organ was not valid in the mask, or '
                      f'the prompts do not name the abnormality) and are not counted: {shown}',
                      logger='current', level=logging.WARNING)

    def _evaluable_units(self, included, n_excluded):
        """Group the units by (organ group, abnormality); keep those with both classes."""
        if included:
            study = np.concatenate([np.full(len(r['score']), i) for i, r in enumerate(included)])
            group = np.concatenate([r['group'] for r in included])
            name = np.concatenate([r['abnormality'] for r in included])
            score = np.concatenate([r['score'] for r in included])
            label = np.concatenate([r['label'] for r in included])
        else:
            study = group = name = score = label = np.zeros(0)
        order = self.abnormality_vocab.order()
        keys = sorted(set(zip(group.tolist(), name.tolist())),
                      key=lambda k: (order.get(k, len(order)), k))
        units, skipped = [], []
        for key in keys:
            mask = (group == key[0]) & (name == key[1])
            n_pos = int(label[mask].sum())
            n_neg = int(mask.sum()) - n_pos
            n_studies = np.unique(study[mask]).size
            if n_pos == 0 or n_neg == 0:
                skipped.append(f'{key[1]!r} ({key[0]}): {n_pos} positive / {n_neg} negative')
                print_log(f'zero-shot abnormality {key[1]!r} (organ group {key[0]}) has {n_pos} '
                          f'positive and {n_neg} negative organ units in {n_studies} studies: '
                          'AUC, F1, PPV and sensitivity are undefined, so it is left out of '
                          'the averages', logger='current', level=logging.WARNING)
                continue
            units.append(dict(key=key, score=score[mask], label=label[mask], study=study[mask],
                              n_pos=n_pos, n_neg=n_neg))
        if not units:
            why = ('; '.join(skipped) if skipped else
                   'no study has abn_scores for an organ of an organ group')
            raise DataError(
                f'zero-shot abnormality detection has nothing to evaluate: {len(included)} '
                f'studies with ground truth ({n_excluded} without, abnormalities=None), and no '
                f'abnormality has both positive and negative organ units ({why}). Evaluate on a '
                "split whose manifest fills the 'abnormalities' field and holds abnormal cases, "
                'or remove ZeroShotAbnormalityDetection from the evaluator')
        return units

    def _thresholds(self, units):
        """``{(group, abnormality): threshold}`` and whether they were chosen on this data."""
        if self.thresholds is None:
            print_log(f'zero-shot abnormality thresholds are chosen by {self.threshold_rule!r} '
                      'on the data being evaluated (optimistic for a test split); pass '
                      f'thresholds=<val out_dir>/{THRESHOLDS_FILE} to apply validation '
                      'thresholds', logger='current', level=logging.WARNING)
            return {u['key']: select_threshold(u['score'], u['label'], self.threshold_rule)
                    for u in units}, True
        given = load_thresholds(self.thresholds)
        chosen, missing = {}, []
        for unit in units:
            group, abnormality = unit['key']
            value = given.get(f'{group}/{abnormality}', given.get(abnormality))
            if value is None:
                missing.append(abnormality)
            else:
                chosen[unit['key']] = value
        source = 'thresholds' if isinstance(self.thresholds, Mapping) else str(self.thresholds)
        if not chosen:
            raise ConfigError(f'{source} names none of the evaluated abnormalities '
                              f'({", ".join(missing)}); it has {", ".join(sorted(given))}')
        if missing:
            print_log(f'{source} has no threshold for {", ".join(map(repr, missing))}: their '
                      'F1, PPV and sensitivity are not computed (their AUC is)',
                      logger='current', level=logging.WARNING)
        return chosen, False

    def _clusters(self, included):
        """The patient index of each study (``bootstrap_unit='patient'``), else None."""
        if self.bootstrap_unit != 'patient':
            return None
        index = {}
        return np.array([index.setdefault(r['patient'] if r['patient'] is not None
                                          else ('study', i), len(index))
                         for i, r in enumerate(included)], dtype=np.int64)

    def _confidence_intervals(self, units, n_studies, clusters=None):
        """Percentile bootstrap CIs of the four macro metrics, resampling studies (or the
        patients given by ``clusters``).

        Each resample averages over exactly the units of the point estimate; a resample where
        one of them has one class absent is skipped as a whole and counted.
        """
        if not self.n_bootstrap:
            return {}
        rate_names = self.rates
        names = ('auc',) + rate_names
        rated = [unit for unit in units if unit['threshold'] is not None]
        # resamples in which each unit had one class absent, for the warning below
        lost = np.zeros(len(units), dtype=np.int64)

        def statistic(weights):
            evaluable = np.ones((len(weights), len(units)), dtype=bool)
            auc_per = np.empty((len(weights), len(units)))
            rate_per = {m: np.empty((len(weights), len(rated))) for m in rate_names}
            k = 0
            for j, unit in enumerate(units):
                w = weights[:, unit['study']]
                label = unit['label']
                n_pos = w @ label.astype(np.float64)
                evaluable[:, j] = (n_pos > 0) & (w.sum(1) - n_pos > 0)
                auc_per[:, j] = weighted_auc(unit['score'], label, w)
                if unit['threshold'] is not None:
                    pred = unit['score'] >= unit['threshold']
                    tp = w @ (pred & label).astype(np.float64)
                    fp = w @ (pred & ~label).astype(np.float64)
                    tn = w.sum(1) - n_pos - fp
                    rates = rates_from_confusion(tp, fp, n_pos - tp, tn)
                    for m in rate_names:
                        rate_per[m][:, k] = rates[m]
                    k += 1
            lost[:] += (~evaluable).sum(0)
            out = np.full((len(weights), len(names)), np.nan)
            out[:, 0] = macro_mean(auc_per)
            if rated:
                for i, m in enumerate(rate_names, 1):
                    out[:, i] = macro_mean(rate_per[m])
            out[~evaluable.all(1)] = np.nan  # not over the same set as the point estimate
            return out

        low, high, n_valid = bootstrap_ci(statistic, n_studies, self.n_bootstrap, self.seed,
                                          self.ci_level, clusters=clusters)
        used = int(n_valid[0])
        skipped = self.n_bootstrap - used
        out = dict(abn_bootstrap_used=used, abn_bootstrap_skipped=skipped,
                   abn_ci_level=float(self.ci_level))
        if skipped > MAX_SKIPPED_FRACTION * self.n_bootstrap:
            worst = sorted(range(len(units)), key=lambda j: -lost[j])[:5]
            shown = ', '.join(f'{units[j]["key"][1]!r} ({units[j]["key"][0]}, '
                              f'{units[j]["n_pos"]} positive / {units[j]["n_neg"]} negative): '
                              f'{lost[j]}' for j in worst if lost[j])
            print_log(f'zero-shot abnormality bootstrap: {skipped} of {self.n_bootstrap} '
                      f'resamples are skipped because an abnormality of the point estimate has '
                      f'one class absent in them (resamples lost per abnormality: {shown}); '
                      + ('no interval is reported' if not used else
                         f'the intervals use the other {used}, so they describe resamples that '
                         'keep every abnormality and may be too narrow')
                      + '. Fix: evaluate on a split with more positive (and negative) studies '
                      'per abnormality', logger='current', level=logging.WARNING)
        for i, m in enumerate(names):
            if n_valid[i] == 0:
                continue  # no threshold metrics (thresholds missing) or no resample used
            out[f'abn_{m}_ci_low'] = float(low[i])
            out[f'abn_{m}_ci_high'] = float(high[i])
        return out

    @staticmethod
    def _log_table(units, per_unit, rates=_RATES):
        short = dict(f1='F1', ppv='PPV', sensitivity='sens', specificity='spec',
                     accuracy='acc', f1_weighted='F1w')
        lines = [f'{"group":<14}{"abnormality":<30}{"pos":>6}{"neg":>7}{"AUC":>8}{"thr":>8}'
                 + ''.join(f'{short[m]:>8}' for m in rates)]
        for unit in units:
            key = unit['key']
            cells = [per_unit[m].get(key) for m in ('auc',)] + [unit['threshold']] + \
                [per_unit[m].get(key) for m in rates]
            lines.append(f'{key[0]:<14}{key[1]:<30}{unit["n_pos"]:>6}{unit["n_neg"]:>7}'
                         + ''.join(f'{c:>8.3f}' if c is not None else f'{"-":>8}'
                                   for c in cells))
        print_log('zero-shot abnormality detection:\n' + '\n'.join(lines), logger='current')

    def _write_thresholds(self, units, n_studies):
        names = [u['key'][1] for u in units]
        thresholds = {}
        for unit in units:
            group, abnormality = unit['key']
            key = abnormality if names.count(abnormality) == 1 else f'{group}/{abnormality}'
            thresholds[key] = unit['threshold']
        os.makedirs(self.out_dir, exist_ok=True)
        path = osp.join(self.out_dir, THRESHOLDS_FILE)
        with open(path, 'w') as f:
            json.dump(dict(rule=self.threshold_rule, num_studies=n_studies,
                           note='chosen on the evaluated data; pass this file as '
                                'ZeroShotAbnormalityDetection(thresholds=...) for the test split',
                           thresholds=thresholds), f, indent=2)
        print_log(f'zero-shot abnormality thresholds written to {path}', logger='current')

    def _draw_radar(self, group_auc):
        from ctglip.visualization.plots import add_image_to_visualizer, has_visualizer, plot_radar
        if not group_auc or not (self.out_dir or has_visualizer()):
            return
        path = osp.join(self.out_dir, 'abn_auc_radar.png') if self.out_dir else None
        try:
            image = plot_radar({self.prefix or 'model': group_auc}, path=path)
        except Exception as e:  # noqa: BLE001 - a picture must not cost the metrics
            print_log(f'could not draw the abnormality AUC radar ({path or "no file"}): {e!r}',
                      logger='current', level=logging.WARNING)
            return
        add_image_to_visualizer(f'{self.prefix or "zeroshot"}/abn_auc_radar', image)
