"""The numpy metric functions against scikit-learn and hand-made cases."""
import numpy as np
import pytest
from sklearn.metrics import (f1_score, precision_score, recall_score, roc_auc_score)
from sklearn.metrics import roc_curve as sk_roc_curve

from ctglip.evaluation.functional import (SingleClassError, auc, bootstrap_ci, bootstrap_weights,
                                          compute_thresholds, confusion_counts, f1_at_threshold,
                                          macro_mean, ppv_at_threshold, roc_curve,
                                          select_threshold, sensitivity_at_threshold,
                                          specificity_at_threshold, weighted_auc)
from ctglip.utils.errors import ConfigError


def _random_case(seed, n=200, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = rng.normal(size=n) + labels
    if ties:
        scores = np.round(scores, 1)
    return scores, labels


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('ties', [False, True])
def test_auc_matches_sklearn(seed, ties):
    scores, labels = _random_case(seed, ties=ties)
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    weights = np.random.default_rng(seed + 100).integers(0, 4, size=scores.size)
    assert auc(scores, labels, sample_weight=weights) == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)


@pytest.mark.parametrize('seed', range(5))
def test_roc_curve_matches_sklearn(seed):
    scores, labels = _random_case(seed, ties=True)
    fpr, tpr, thresholds = roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])
    assert thresholds[0] == np.inf


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('quantile', [0.2, 0.5, 0.9])
def test_rates_at_threshold_match_sklearn(seed, quantile):
    scores, labels = _random_case(seed, ties=True)
    threshold = float(np.quantile(scores, quantile))
    pred = scores >= threshold
    assert f1_at_threshold(scores, labels, threshold) == pytest.approx(f1_score(labels, pred))
    assert ppv_at_threshold(scores, labels, threshold) == pytest.approx(
        precision_score(labels, pred))
    assert sensitivity_at_threshold(scores, labels, threshold) == pytest.approx(
        recall_score(labels, pred))
    assert specificity_at_threshold(scores, labels, threshold) == pytest.approx(
        recall_score(~labels, ~pred))


def test_perfect_inverted_and_tied_scores():
    labels = [0, 0, 1, 1]
    assert auc([0.1, 0.2, 0.8, 0.9], labels) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], labels) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], labels) == 0.5
    # one positive tied with one negative: 3 wins + 0.5 tie out of 4 pairs
    assert auc([0.1, 0.5, 0.5, 0.9], labels) == pytest.approx(0.875)
    assert f1_at_threshold([0.1, 0.2, 0.8, 0.9], labels, 0.5) == 1.0
    assert confusion_counts([0.1, 0.5, 0.5, 0.9], labels, 0.5) == dict(tp=2, fp=1, fn=0, tn=1)


def test_one_class_absent_is_a_clear_error_not_nan():
    with pytest.raises(SingleClassError, match='0 positive and 3 negative'):
        auc([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(SingleClassError, match='3 positive and 0 negative'):
        select_threshold([0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(SingleClassError, match='0 positive'):
        sensitivity_at_threshold([0.1, 0.2, 0.3], [0, 0, 0], 0.2)
    with pytest.raises(SingleClassError, match="'gallstone'"):
        compute_thresholds({'gallstone': [0.1, 0.2]}, {'gallstone': [0, 0]})
    # zero_division=0 conventions: defined values, never NaN
    assert ppv_at_threshold([0.1, 0.2, 0.3], [0, 1, 0], threshold=0.9) == 0.0
    assert f1_at_threshold([0.1, 0.2, 0.3], [0, 0, 0], threshold=0.9) == 0.0
    assert np.isnan(weighted_auc(np.array([0.1, 0.2]), np.array([False, False]), np.ones(2)))


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match='shapes'):
        auc([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match='0/1 or bool'):
        auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match='non-finite'):
        auc([0.1, np.nan], [0, 1])
    with pytest.raises(ConfigError, match='nearest_01'):
        select_threshold([0.1, 0.2], [0, 1], rule='closest')


# A hand-made ROC: scores 0.8 ... 0.1, 3 positives and 5 negatives.
#   threshold  tp fp   TPR  FPR   dist^2 to (0,1)  Youden   F1
#   0.8         1  0   1/3  0     0.444            0.333    0.500
#   0.7         1  1   1/3  1/5   0.484            0.133    0.400
#   0.6         1  2   1/3  2/5   0.604           -0.067    0.333
#   0.5         2  2   2/3  2/5   0.271 (min)      0.267    0.571
#   0.4         2  3   2/3  3/5   0.471            0.067    0.500
#   0.3         2  4   2/3  4/5   0.751           -0.133    0.444
#   0.2         3  4   1    4/5   0.640            0.200    0.600 (max)
#   0.1         3  5   1    1     1.000            0.000    0.545
HAND_SCORES = np.array([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
HAND_LABELS = np.array([1, 0, 0, 1, 0, 0, 1, 0])


@pytest.mark.parametrize('rule,expected', [('nearest_01', 0.5), ('youden', 0.8),
                                           ('max_f1', 0.2)])
def test_threshold_rules_on_a_hand_made_roc(rule, expected):
    assert select_threshold(HAND_SCORES, HAND_LABELS, rule) == pytest.approx(expected)
    shuffled = np.random.default_rng(0).permutation(8)
    assert select_threshold(HAND_SCORES[shuffled], HAND_LABELS[shuffled], rule) == \
        pytest.approx(expected)


def test_threshold_ties_go_to_the_highest_threshold():
    # thresholds 0.9 and 0.5 both give Youden 0.5; the higher one is chosen
    assert select_threshold([0.9, 0.7, 0.5, 0.3], [1, 0, 1, 0], 'youden') == 0.9


def test_compute_thresholds_per_abnormality():
    thresholds = compute_thresholds({'gallstone': HAND_SCORES, 'emphysema': [0.2, 0.9, 0.6]},
                                    {'gallstone': HAND_LABELS, 'emphysema': [0, 1, 1]},
                                    rule='nearest_01')
    assert thresholds == {'gallstone': pytest.approx(0.5), 'emphysema': pytest.approx(0.6)}
    assert compute_thresholds(HAND_SCORES, HAND_LABELS, 'max_f1') == pytest.approx(0.2)


def test_bootstrap_weights_resample_studies():
    weights = bootstrap_weights(7, 50, np.random.default_rng(0))
    assert weights.shape == (50, 7)
    assert (weights.sum(1) == 7).all()


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    scores, labels = _random_case(3, n=300)
    point = auc(scores, labels)

    def statistic(weights):  # one unit per study
        return weighted_auc(scores, labels, weights)

    low, high, n_valid = bootstrap_ci(statistic, scores.size, n_bootstrap=300, seed=1)
    assert low < point < high
    assert 0 < high - low < 0.3
    assert n_valid == 300
    assert bootstrap_ci(statistic, scores.size, n_bootstrap=300, seed=1) == (low, high, n_valid)
    assert bootstrap_ci(statistic, scores.size, n_bootstrap=300, seed=2)[:2] != (low, high)
    # chunking does not change the resamples
    assert bootstrap_ci(statistic, scores.size, n_bootstrap=300, seed=1, chunk_size=7) == \
        pytest.approx((low, high, n_valid))


def test_bootstrap_ci_skips_undefined_resamples():
    # a single positive study: resamples that miss it have no AUC and are left out
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.4])
    labels = np.array([True, False, False, False, False])
    low, high, n_valid = bootstrap_ci(lambda w: weighted_auc(scores, labels, w), 5,
                                      n_bootstrap=200, seed=0)
    assert 0 < n_valid < 200
    assert low == high == 1.0


def test_macro_mean_is_undefined_when_a_unit_is():
    assert macro_mean([0.5, 1.0]) == 0.75
    np.testing.assert_array_equal(macro_mean([[0.5, 1.0], [0.5, np.nan]]), [0.75, np.nan])
    with pytest.raises(ValueError, match='at least one unit'):
        macro_mean(np.zeros((3, 0)))


def test_bootstrap_ci_of_a_macro_average_keeps_the_point_estimates_units():
    # unit a: AUC 0.5 in every resample (tied scores, many of both classes); unit b: AUC 1
    # wherever its one positive study is drawn; the point estimate is 0.75
    n = 30
    scores_a, labels_a = np.full(n, 0.5), np.arange(n) % 2 == 1
    scores_b, labels_b = np.where(np.arange(n) == 0, 0.9, 0.1), np.arange(n) == 0

    def statistic(weights):
        return macro_mean(np.stack([weighted_auc(scores_a, labels_a, weights),
                                    weighted_auc(scores_b, labels_b, weights)], -1))

    low, high, n_valid = bootstrap_ci(statistic, n, n_bootstrap=200, seed=0)
    assert low == high == 0.75
    missed = (bootstrap_weights(n, 200, np.random.default_rng(0))[:, 0] == 0).sum()
    assert n_valid == 200 - missed and 0 < missed < 200


def test_bootstrap_ci_over_clusters_moves_their_studies_together():
    scores, labels = _random_case(4, n=200)

    def statistic(weights):
        return weighted_auc(scores, labels, weights)

    # one study per cluster: the same resamples as the study bootstrap
    singletons = np.arange(scores.size)
    assert bootstrap_ci(statistic, scores.size, 200, seed=3, clusters=singletons) == \
        bootstrap_ci(statistic, scores.size, 200, seed=3)
    # each study twice under one patient == the study bootstrap of the distinct studies
    doubled_scores, doubled_labels = np.repeat(scores, 2), np.repeat(labels, 2)
    patients = np.repeat(np.arange(scores.size), 2)

    def doubled(weights):
        assert (weights[:, 0::2] == weights[:, 1::2]).all()  # both studies of a patient
        return weighted_auc(doubled_scores, doubled_labels, weights)

    low, high, _ = bootstrap_ci(doubled, 2 * scores.size, 200, seed=3, clusters=patients)
    assert (low, high) == pytest.approx(bootstrap_ci(statistic, scores.size, 200, seed=3)[:2])
    # resampling the duplicated studies as if independent gives a too narrow interval
    naive = bootstrap_ci(lambda w: weighted_auc(doubled_scores, doubled_labels, w),
                         2 * scores.size, 200, seed=3)
    assert naive[1] - naive[0] < high - low
    with pytest.raises(ValueError, match='every index used'):
        bootstrap_ci(statistic, 3, 10, clusters=[0, 2, 2])
