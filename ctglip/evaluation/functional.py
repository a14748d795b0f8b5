"""Binary-classification metrics for zero-shot abnormality detection, in plain numpy.

AUC, F1 / PPV / sensitivity at an operating threshold, the rules that choose that threshold on
a calibration split, and study-level bootstrap confidence intervals. The functions are checked
against scikit-learn in ``tests/evaluation/test_functional.py``; scikit-learn is not needed here.

Conventions, shared by every function below:

- ``scores`` are 1-D floats (higher = more likely abnormal), ``labels`` 1-D 0/1 or bool.
- A unit is predicted positive when ``score >= threshold``.
- A metric that is undefined because one class is absent (AUC, sensitivity without positives)
  raises :class:`SingleClassError` with the counts; it never returns NaN.
- PPV without any predicted positive, and F1 without any true or predicted positive, are 0
  (scikit-learn's ``zero_division=0``).
"""
from collections.abc import Mapping

import numpy as np

from ctglip.utils.errors import ConfigError, DataError

THRESHOLD_RULES = ('nearest_01', 'max_f1', 'youden')


class SingleClassError(DataError):
    """A metric is undefined because the labels hold one class only."""


def _check_binary(scores, labels, sample_weight=None):
    """Validate and convert ``scores``, ``labels`` (and ``sample_weight``) to numpy arrays."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError('scores and labels must be 1-D arrays of one length, got shapes '
                         f'{scores.shape} and {labels.shape}')
    if labels.dtype != bool:
        if labels.size and not np.isin(labels, (0, 1)).all():
            bad = np.unique(labels[~np.isin(labels, (0, 1))])[:5]
            raise ValueError(f'labels must be 0/1 or bool, got values such as {bad.tolist()}')
        labels = labels.astype(bool)
    finite = np.isfinite(scores)
    if not finite.all():
        raise ValueError(f'scores hold {int((~finite).sum())} non-finite values (NaN or inf) '
                         f'among {scores.size}; check the model outputs')
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != scores.shape or (sample_weight < 0).any():
            raise ValueError('sample_weight must be non-negative with the shape of scores '
                             f'{scores.shape}, got shape {sample_weight.shape}')
    return scores, labels, sample_weight


def _require_both_classes(labels, what, weight=None):
    n_pos = int(labels.sum()) if weight is None else float(weight[labels].sum())
    n_neg = int((~labels).sum()) if weight is None else float(weight[~labels].sum())
    if n_pos == 0 or n_neg == 0:
        raise SingleClassError(f'{what} is undefined: the labels hold {n_pos} positive and '
                               f'{n_neg} negative units; it needs both classes')


def weighted_auc(scores, labels, weights):
    """ROC AUC under per-unit weights, for many weight vectors at once (bootstrap building block).

    The AUC is the Mann-Whitney probability that a positive outscores a negative, ties counting
    one half; it equals the trapezoidal area under the ROC curve.

    Args:
        scores (np.ndarray): N scores.
        labels (np.ndarray): N bools.
        weights (np.ndarray): N or B x N non-negative weights (e.g. bootstrap counts).

    Returns:
        float | np.ndarray: the AUC (shape ``weights.shape[:-1]``); NaN where the weighted
        labels hold one class only.
    """
    weights = np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind='mergesort')
    sorted_scores = scores[order]
    tie_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[..., order]
    pos = np.add.reduceat(w * labels[order], tie_starts, axis=-1)
    neg = np.add.reduceat(w * ~labels[order], tie_starts, axis=-1)
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(-1)
    pairs = pos.sum(-1) * neg.sum(-1)
    with np.errstate(invalid='ignore', divide='ignore'):
        result = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)
    return float(result) if result.ndim == 0 else result


def auc(scores, labels, sample_weight=None):
    """Area under the ROC curve (ties count one half).

    Args:
        scores (array-like): N scores.
        labels (array-like): N labels, 0/1 or bool.
        sample_weight (array-like, optional): N non-negative weights.

    Returns:
        float: the AUC in [0, 1].

    Raises:
        SingleClassError: the labels hold one class only.

    Example:
        >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    scores, labels, sample_weight = _check_binary(scores, labels, sample_weight)
    _require_both_classes(labels, 'AUC', sample_weight)
    weights = np.ones_like(scores) if sample_weight is None else sample_weight
    return weighted_auc(scores, labels, weights)


def _roc_points(scores, labels):
    """True- and false-positive counts at each distinct score, thresholds descending."""
    order = np.argsort(-scores, kind='mergesort')
    sorted_scores = scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    tps = np.cumsum(labels[order])[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return tps, fps, sorted_scores[last_of_tie]


def roc_curve(scores, labels):
    """The ROC curve at every distinct score (scikit-learn's ``drop_intermediate=False``).

    Returns:
        tuple: ``(fpr, tpr, thresholds)``, thresholds descending; the first point is
        ``(0, 0)`` at threshold ``inf`` (nothing predicted positive).

    Raises:
        SingleClassError: the labels hold one class only.
    """
    scores, labels, _ = _check_binary(scores, labels)
    _require_both_classes(labels, 'the ROC curve')
    tps, fps, thresholds = _roc_points(scores, labels)
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


def confusion_counts(scores, labels, threshold, sample_weight=None):
    """Counts of the confusion matrix when ``score >= threshold`` is predicted positive.

    Returns:
        dict: ``tp``, ``fp``, ``fn``, ``tn`` (ints, or floats when weighted).
    """
    scores, labels, sample_weight = _check_binary(scores, labels, sample_weight)
    pred = scores >= threshold
    weights = np.ones_like(scores) if sample_weight is None else sample_weight
    counts = dict(tp=weights[pred & labels].sum(), fp=weights[pred & ~labels].sum(),
                  fn=weights[~pred & labels].sum(), tn=weights[~pred & ~labels].sum())
    cast = int if sample_weight is None else float
    return {k: cast(v) for k, v in counts.items()}


def _safe_ratio(num, den):
    """``num / den`` with 0 where ``den == 0`` (element-wise)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def rates_from_counts(tp, fp, fn):
    """F1, PPV and sensitivity from (arrays of) counts, 0 where a denominator is 0.

    Returns:
        dict: ``f1``, ``ppv``, ``sensitivity`` with the shape of the inputs.
    """
    return dict(f1=_safe_ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn),
                ppv=_safe_ratio(tp, np.asarray(tp) + fp),
                sensitivity=_safe_ratio(tp, np.asarray(tp) + fn))


RATES = ('f1', 'ppv', 'sensitivity', 'specificity', 'accuracy', 'f1_weighted')


def rates_from_confusion(tp, fp, fn, tn):
    """Every rate of :data:`RATES` from (arrays of) the four counts, 0 where a denominator is 0.

    ``f1_weighted`` is scikit-learn's ``f1_score(average='weighted')``: the F1 of the positive
    and of the negative class, weighted by their support (the "F1" of the CT-CLIP / fVLM
    zero-shot tables); ``ppv`` is the precision.

    Returns:
        dict: ``f1``, ``ppv``, ``sensitivity``, ``specificity``, ``accuracy``, ``f1_weighted``.
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    out = rates_from_counts(tp, fp, fn)
    f1_negative = _safe_ratio(2 * tn, 2 * tn + fn + fp)
    total = tp + fp + fn + tn
    out['specificity'] = _safe_ratio(tn, tn + fp)
    out['accuracy'] = _safe_ratio(tp + tn, total)
    out['f1_weighted'] = _safe_ratio(out['f1'] * (tp + fn) + f1_negative * (tn + fp), total)
    return out


def f1_at_threshold(scores, labels, threshold, sample_weight=None):
    """F1 score when ``score >= threshold`` is predicted positive (0 without any positive)."""
    c = confusion_counts(scores, labels, threshold, sample_weight)
    return float(rates_from_counts(c['tp'], c['fp'], c['fn'])['f1'])


def ppv_at_threshold(scores, labels, threshold, sample_weight=None):
    """Positive predictive value (precision); 0 when nothing is predicted positive."""
    c = confusion_counts(scores, labels, threshold, sample_weight)
    return float(rates_from_counts(c['tp'], c['fp'], c['fn'])['ppv'])


def sensitivity_at_threshold(scores, labels, threshold, sample_weight=None):
    """Sensitivity (recall, true-positive rate).

    Raises:
        SingleClassError: there is no positive unit.
    """
    c = confusion_counts(scores, labels, threshold, sample_weight)
    if c['tp'] + c['fn'] == 0:
        raise SingleClassError(f'sensitivity is undefined: the labels hold 0 positive and '
                               f'{c["fp"] + c["tn"]} negative units')
    return float(rates_from_counts(c['tp'], c['fp'], c['fn'])['sensitivity'])


def specificity_at_threshold(scores, labels, threshold, sample_weight=None):
    """Specificity (true-negative rate).

    Raises:
        SingleClassError: there is no negative unit.
    """
    c = confusion_counts(scores, labels, threshold, sample_weight)
    if c['tn'] + c['fp'] == 0:
        raise SingleClassError(f'specificity is undefined: the labels hold {c["tp"] + c["fn"]} '
                               'positive and 0 negative units')
    return float(c['tn'] / (c['tn'] + c['fp']))


def select_threshold(scores, labels, rule='nearest_01'):
    """Choose an operating threshold on a calibration set.

    The candidates are the distinct scores (the points of the ROC curve); the threshold
    returned is one of them, so ``score >= threshold`` reproduces the chosen ROC point.
    Rules:

    - ``nearest_01``: the ROC point nearest to (FPR 0, TPR 1), Euclidean distance (the rule of
      the CT-GLIP / fVLM zero-shot evaluation);
    - ``youden``: the largest Youden index ``TPR - FPR``;
    - ``max_f1``: the largest F1 score.

    Ties go to the highest threshold (the fewest positive predictions).

    Args:
        scores (array-like): N calibration scores.
        labels (array-like): N labels, 0/1 or bool.
        rule (str): one of ``nearest_01``, ``max_f1``, ``youden``.

    Returns:
        float: the threshold.

    Raises:
        SingleClassError: the labels hold one class only.
        ConfigError: an unknown rule.
    """
    if rule not in THRESHOLD_RULES:
        raise ConfigError(f'unknown threshold_rule {rule!r}; use one of '
                          + ', '.join(THRESHOLD_RULES))
    scores, labels, _ = _check_binary(scores, labels)
    _require_both_classes(labels, 'a threshold')
    tps, fps, thresholds = _roc_points(scores, labels)
    n_pos, n_neg = tps[-1], fps[-1]
    tpr, fpr = tps / n_pos, fps / n_neg
    if rule == 'nearest_01':
        best = np.argmin(fpr ** 2 + (1 - tpr) ** 2)
    elif rule == 'youden':
        best = np.argmax(tpr - fpr)
    else:
        best = np.argmax(2 * tps / (tps + fps + n_pos))
    return float(thresholds[best])


def compute_thresholds(scores, labels, rule='nearest_01'):
    """Operating thresholds for one or several abnormalities (see :func:`select_threshold`).

    Args:
        scores (array-like | Mapping): the scores of one abnormality, or ``{abnormality:
            scores}``.
        labels (array-like | Mapping): the labels, shaped like ``scores``.
        rule (str): one of ``nearest_01``, ``max_f1``, ``youden``.

    Returns:
        float | dict: the threshold, or ``{abnormality: threshold}``.

    Raises:
        SingleClassError: an abnormality whose labels hold one class only (named in the
            message): its threshold cannot be chosen.

    Example:
        >>> compute_thresholds({'gallstone': [0.2, 0.9, 0.6]}, {'gallstone': [0, 1, 1]})
        {'gallstone': 0.6}
    """
    if not isinstance(scores, Mapping):
        return select_threshold(scores, labels, rule)
    if not isinstance(labels, Mapping) or set(labels) != set(scores):
        raise ValueError('scores and labels must be mappings with the same keys, got '
                         f'{sorted(scores)} and '
                         f'{sorted(labels) if isinstance(labels, Mapping) else type(labels)}')
    thresholds = {}
    for name in scores:
        try:
            thresholds[name] = select_threshold(scores[name], labels[name], rule)
        except SingleClassError as e:
            raise SingleClassError(f'{name!r}: {e}') from None
    return thresholds


def macro_mean(per_unit):
    """Mean over the last axis (the units of a macro average), NaN where any unit is NaN.

    A bootstrap interval of a macro average must average every resample over the same units as
    its point estimate. Where one unit is undefined in a resample (one class absent), the macro
    value of that resample is undefined as a whole, so that :func:`bootstrap_ci` skips it and
    counts it; it is never averaged over the units that remain, as ``np.nanmean`` would, which
    would mix averages over different sets of units into one interval.

    Args:
        per_unit (array-like): ``... x U`` values (U >= 1 units), NaN where undefined.

    Returns:
        float | np.ndarray: the means, shape ``per_unit.shape[:-1]``.

    Example:
        >>> macro_mean([[0.5, 1.0], [0.5, float('nan')]])
        array([0.75,  nan])
    """
    per_unit = np.asarray(per_unit, dtype=np.float64)
    if per_unit.ndim == 0 or per_unit.shape[-1] == 0:
        raise ValueError(f'a macro average needs at least one unit on the last axis, got shape '
                         f'{per_unit.shape}')
    result = per_unit.mean(axis=-1)
    return float(result) if result.ndim == 0 else result


def bootstrap_weights(n_studies, n_bootstrap, rng):
    """Study multiplicities of ``n_bootstrap`` resamples (with replacement) of ``n_studies``.

    Returns:
        np.ndarray: n_bootstrap x n_studies counts; each row sums to ``n_studies``.
    """
    draws = rng.integers(0, n_studies, size=(n_bootstrap, n_studies))
    offsets = np.arange(n_bootstrap)[:, None] * n_studies
    return np.bincount((draws + offsets).ravel(),
                       minlength=n_bootstrap * n_studies).reshape(n_bootstrap, n_studies)


def bootstrap_ci(statistic, n_studies, n_bootstrap=1000, seed=0, level=0.95, chunk_size=100,
                 clusters=None):
    """Percentile bootstrap confidence interval over resampled studies (or patients).

    A resample draws ``n_studies`` studies with replacement; ``statistic`` sees it as per-study
    multiplicities, so that all units of a study (its organs, its abnormalities) move together.
    With ``clusters`` (e.g. the patient of each study) it draws clusters instead, and all
    studies of a drawn cluster come along: the interval then accounts for studies of one
    patient being alike. Resamples where the statistic is undefined (NaN, e.g. one class
    absent) are left out and counted (``n_bootstrap - n_valid``). A macro statistic must be NaN
    when any of its units is (see :func:`macro_mean`), so that every resample used averages
    over the same units as the point estimate.

    Args:
        statistic (callable): maps a B x n_studies array of study counts to B values (or
            B x M for M statistics at once), NaN where undefined.
        n_studies (int): the number of studies.
        n_bootstrap (int): the number of resamples.
        seed (int): seed of the resampling; the same seed gives the same interval.
        level (float): the coverage of the interval, e.g. 0.95.
        chunk_size (int): resamples evaluated at once (bounds the memory).
        clusters (array-like, optional): n_studies cluster indices ``0..G-1`` (every index
            used); None resamples studies.

    Returns:
        tuple: ``(low, high, n_valid)``: floats (or M-arrays), and the number of resamples
        where the statistic was defined (per statistic). ``low``/``high`` are NaN where
        ``n_valid`` is 0.
    """
    if n_bootstrap < 1 or n_studies < 1:
        raise ValueError(f'bootstrap needs n_bootstrap >= 1 and n_studies >= 1, got '
                         f'{n_bootstrap} and {n_studies}')
    if not 0 < level < 1:
        raise ValueError(f'level must be in (0, 1), got {level}')
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=np.int64)
        if clusters.shape != (n_studies,) or clusters.min() < 0 or \
                set(np.unique(clusters)) != set(range(int(clusters.max()) + 1)):
            raise ValueError(f'clusters must give each of the {n_studies} studies an index in '
                             '0..G-1, every index used')
    n_draw = n_studies if clusters is None else int(clusters.max()) + 1
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_bootstrap, chunk_size):
        weights = bootstrap_weights(n_draw, min(chunk_size, n_bootstrap - start), rng)
        if clusters is not None:
            weights = weights[:, clusters]
        values.append(np.asarray(statistic(weights), dtype=np.float64))
    values = np.concatenate(values, axis=0)
    valid = np.isfinite(values)
    n_valid = valid.sum(axis=0)
    tail = 100 * (1 - level) / 2
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    flat_values = values.reshape(len(values), -1)
    flat_valid = valid.reshape(len(values), -1)
    for j in range(flat_values.shape[1]):
        column = flat_values[flat_valid[:, j], j]
        if column.size:
            low.flat[j], high.flat[j] = np.percentile(column, [tail, 100 - tail])
    if low.ndim == 0:
        return float(low), float(high), int(n_valid)
    return low, high, n_valid
