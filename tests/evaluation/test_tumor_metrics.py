"""Tumor metrics: detection AUC against scikit-learn, Dice against MONAI and hand-made masks."""
import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from sklearn.metrics import roc_auc_score

from ctglip.evaluation.metrics import tumor
from ctglip.evaluation.metrics.tumor import TumorDetection, TumorDice, dice_from_counts
from ctglip.registry import METRICS
from ctglip.structures.ct_data_sample import CTDataSample
from ctglip.utils.errors import ConfigError, DataError

VOCAB = ('liver', 'spleen', 'kidney_left', 'kidney_right', 'pancreas')
LIVER, SPLEEN, KIDNEY_L, KIDNEY_R, PANCREAS = range(1, 6)


@pytest.fixture
def logs(monkeypatch):
    messages = []
    monkeypatch.setattr(tumor, 'print_log', lambda msg, *a, **k: messages.append(msg))
    return messages


# -- TumorDetection -------------------------------------------------------------------------------
def _detection_sample(case_id, scores, labels, as_dict=False):
    sample = CTDataSample(metainfo=dict(case_id=case_id))
    sample.tumor_scores = scores
    sample.tumor_labels = labels
    return sample.to_dict() if as_dict else sample


def _random_studies(seed, n=40, organs=('liver', 'pancreas', 'kidney_left', 'kidney_right')):
    rng = np.random.default_rng(seed)
    studies = []
    for i in range(n):
        labels = {o: int(rng.random() < 0.4) for o in organs}
        scores = {o: float(rng.normal(labels[o], 1.0)) for o in organs}
        studies.append((f'case_{i}', scores, labels))
    return studies


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_detection_auc_matches_sklearn(seed):
    studies = _random_studies(seed)
    metric = METRICS.build(dict(type='TumorDetection', n_bootstrap=200, seed=seed))
    metric.process(None, [_detection_sample(*s) for s in studies[:20]])
    metric.process(None, [_detection_sample(*s, as_dict=True) for s in studies[20:]])
    m = metric.compute_metrics(metric.results)
    pooled_scores = [s[o] for _, s, _ in studies for o in s]
    pooled_labels = [t[o] for _, _, t in studies for o in t]
    assert m['auc'] == pytest.approx(roc_auc_score(pooled_labels, pooled_scores))
    per_group = {}
    for group, organs in (('liver', ('liver',)), ('pancreas', ('pancreas',)),
                          ('kidney', ('kidney_left', 'kidney_right'))):  # both kidneys pool
        y = [t[o] for _, _, t in studies for o in organs]
        s = [sc[o] for _, sc, _ in studies for o in organs]
        per_group[group] = roc_auc_score(y, s)
        assert m[f'auc/{group}'] == pytest.approx(per_group[group])
    assert m['auc_macro'] == pytest.approx(np.mean(list(per_group.values())))
    assert m['auc_ci_low'] <= m['auc'] <= m['auc_ci_high']
    assert m['auc_macro_ci_low'] <= m['auc_macro'] <= m['auc_macro_ci_high']
    assert m['auc_bootstrap_used'] == 200 and m['auc_ci_level'] == 0.95
    assert m['auc_num_studies'] == 40 and m['auc_num_units'] == 160
    assert m['auc_num_skipped_organs'] == 0


def test_detection_bootstrap_resamples_whole_studies():
    """With one unit per study, the interval equals a plain bootstrap of studies."""
    from ctglip.evaluation.functional import bootstrap_weights
    studies = _random_studies(3, n=30, organs=('liver',))
    metric = TumorDetection(n_bootstrap=300, seed=7)
    metric.process(None, [_detection_sample(*s) for s in studies])
    m = metric.compute_metrics(metric.results)
    scores = np.array([s['liver'] for _, s, _ in studies])
    labels = np.array([t['liver'] for _, _, t in studies])
    rng = np.random.default_rng(7)
    values = []
    for start in range(0, 300, 100):  # bootstrap_ci draws in chunks of 100
        for w in bootstrap_weights(30, 100, rng):
            idx = np.repeat(np.arange(30), w)
            if 0 < labels[idx].sum() < len(idx):
                values.append(roc_auc_score(labels[idx], scores[idx]))
    low, high = np.percentile(values, [2.5, 97.5])
    assert m['auc_ci_low'] == pytest.approx(low)
    assert m['auc_ci_high'] == pytest.approx(high)


def test_detection_skips_single_class_organs_and_counts_them(logs):
    studies = _random_studies(4, n=20, organs=('liver',))
    for _, scores, labels in studies:
        scores['spleen'], labels['spleen'] = 0.3, 0  # never a spleen tumor
    metric = TumorDetection(n_bootstrap=0)
    metric.process(None, [_detection_sample(*s) for s in studies])
    m = metric.compute_metrics(metric.results)
    assert 'auc/spleen' not in m and 'auc/liver' in m
    assert m['auc_num_skipped_organs'] == 1
    assert m['auc_macro'] == m['auc/liver']
    assert 'auc_ci_low' not in m  # n_bootstrap=0
    assert any('spleen' in msg for msg in logs)


def test_detection_with_nothing_evaluable_raises_or_warns(logs):
    studies = [(f'c{i}', {'liver': 0.1 * i}, {'liver': 0}) for i in range(5)]
    metric = TumorDetection(n_bootstrap=10)
    metric.process(None, [_detection_sample(*s) for s in studies])
    with pytest.raises(DataError, match='nothing to evaluate.*liver \\(0 with tumor / 5 without'):
        metric.compute_metrics(metric.results)
    lenient = TumorDetection(strict=False)
    lenient.process(None, [_detection_sample(*s) for s in studies])
    m = lenient.compute_metrics(lenient.results)
    assert m == dict(auc_num_studies=5, auc_num_excluded_studies=0, auc_num_units=5,
                     auc_num_skipped_organs=1)


def test_detection_leaves_out_studies_without_truth(logs):
    studies = _random_studies(5, n=20, organs=('liver',))
    metric = TumorDetection(n_bootstrap=0)
    metric.process(None, [_detection_sample(*s) for s in studies])
    metric.process(None, [_detection_sample('none', {'liver': 0.9}, None)])
    m = metric.compute_metrics(metric.results)
    assert m['auc_num_studies'] == 20 and m['auc_num_excluded_studies'] == 1
    assert any('no ground truth' in msg for msg in logs)


@pytest.mark.parametrize('scores, labels, match', [
    ({'liver': 0.5}, {'liver': 2}, "'liver' is 2; a label is 0"),
    ({'spleen': 0.5}, {'liver': 1}, "no score for 'liver'"),
    ({'liver': float('nan')}, {'liver': 1}, 'non-finite score'),
    ([0.5], {'liver': 1}, 'tumor_scores of case .* must be'),
    ({'liver': 0.5}, [1], 'tumor_labels of case .* must be'),
])
def test_detection_refuses_bad_samples(scores, labels, match):
    metric = TumorDetection()
    with pytest.raises(DataError, match=match):
        metric.process(None, [_detection_sample('c0', scores, labels)])


def test_detection_names_a_missing_field():
    sample = CTDataSample(metainfo=dict(case_id='c0'))
    sample.tumor_labels = {'liver': 1}
    with pytest.raises(DataError, match="needs the field 'tumor_scores'.*case 'c0'"):
        TumorDetection().process(None, [sample])


def test_detection_takes_tensor_scores_and_labels():
    metric = TumorDetection(n_bootstrap=0)
    metric.process(None, [_detection_sample(f'c{i}', {'liver': torch.tensor(0.1 * i)},
                                            {'liver': torch.tensor(i % 2)}) for i in range(6)])
    m = metric.compute_metrics(metric.results)
    assert m['auc'] == pytest.approx(roc_auc_score([0, 1, 0, 1, 0, 1],
                                                   [0, .1, .2, .3, .4, .5]))


@pytest.mark.parametrize('kwargs', [dict(n_bootstrap=-1), dict(n_bootstrap=1.5),
                                    dict(ci_level=1.0)])
def test_detection_refuses_bad_config(kwargs):
    with pytest.raises(ConfigError):
        TumorDetection(**kwargs)


def test_detection_keys_carry_the_tumor_prefix():
    metric = TumorDetection(n_bootstrap=20)
    metric.process(None, [_detection_sample(*s) for s in _random_studies(6, n=12)])
    m = metric.evaluate(12)
    assert {'tumor/auc', 'tumor/auc_macro', 'tumor/auc_ci_low', 'tumor/auc_ci_high',
            'tumor/auc/liver', 'tumor/auc/kidney'} <= set(m)


# -- TumorDice -----------------------------------------------------------------------------------
def _dice_sample(case_id, pred, gt, organ, as_dict=False, **meta):
    sample = CTDataSample(metainfo=dict(case_id=case_id, **meta))
    sample.pred_tumor_mask = torch.as_tensor(pred)
    sample.gt_tumor_mask = torch.as_tensor(gt)
    sample.organ_label = torch.as_tensor(organ).long()
    return sample.to_dict() if as_dict else sample


def _monai_dice(pred, gt):
    return float(compute_dice(torch.as_tensor(pred)[None, None].float(),
                              torch.as_tensor(gt)[None, None].float(),
                              include_background=True, ignore_empty=False)[0, 0])


def _organs(shape=(8, 8, 8)):
    """Liver in the lower half along the first axis, spleen in the upper half's first rows."""
    organ = np.zeros(shape, np.int64)
    organ[:4] = LIVER
    organ[4:, :4] = SPLEEN
    return organ


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_dice_matches_monai_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    organ = rng.integers(0, len(VOCAB) + 1, (12, 10, 8))
    samples, expected = [], {'all': [], 'liver': [], 'kidney': []}
    for i in range(5):
        gt = rng.random(organ.shape) < 0.2
        pred = rng.random(organ.shape) < 0.25
        samples.append(_dice_sample(f'c{i}', pred, gt, organ, as_dict=bool(i % 2)))
        expected['all'].append(_monai_dice(pred, gt))
        liver = organ == LIVER
        expected['liver'].append(_monai_dice(pred & liver, gt & liver))
        kidneys = np.isin(organ, (KIDNEY_L, KIDNEY_R))  # one region for the group
        expected['kidney'].append(_monai_dice(pred & kidneys, gt & kidneys))
    metric = TumorDice(organ_vocab=VOCAB, organs=['liver', 'kidney'])
    metric.process(None, samples)
    m = metric.compute_metrics(metric.results)
    assert m['dice'] == pytest.approx(np.mean(expected['all']))
    assert m['dice/liver'] == pytest.approx(np.mean(expected['liver']))
    assert m['dice/kidney'] == pytest.approx(np.mean(expected['kidney']))
    assert m['dice_num_studies'] == 5 and m['dice_num_studies/liver'] == 5


@pytest.mark.parametrize('pred_voxels, gt_voxels, dice', [
    ((), (), 1.0),                        # empty prediction on empty truth
    ((), ((1, 1, 1), (1, 1, 2)), 0.0),    # empty prediction on a tumor
    (((1, 1, 1),), (), 0.0),              # a prediction on empty truth
    (((1, 1, 1), (1, 1, 2)), ((1, 1, 1), (1, 1, 2)), 1.0),  # perfect
    # half overlap: |P| = 2, |G| = 2, |P & G| = 1 -> 2 * 1 / (2 + 2)
    (((1, 1, 1), (1, 1, 2)), ((1, 1, 2), (1, 1, 3)), 0.5),
    # |P| = 1 inside |G| = 3 -> 2 * 1 / (1 + 3)
    (((2, 2, 2),), ((2, 2, 2), (2, 2, 3), (2, 3, 2)), 0.5),
])
def test_dice_on_hand_made_masks(pred_voxels, gt_voxels, dice):
    organ = _organs()
    pred, gt = np.zeros(organ.shape, bool), np.zeros(organ.shape, bool)
    for v in pred_voxels:
        pred[v] = True
    for v in gt_voxels:
        gt[v] = True
    metric = TumorDice(organ_vocab=VOCAB, organs=['liver'])
    metric.process(None, [_dice_sample('c0', pred.astype(np.uint8), gt, organ)])
    m = metric.compute_metrics(metric.results)
    assert m['dice'] == pytest.approx(dice)
    assert m['dice/liver'] == pytest.approx(dice)  # every voxel above lies in the liver
    assert _monai_dice(pred, gt) == pytest.approx(dice)  # MONAI agrees on the convention


def test_dice_splits_tumors_by_the_organ_they_lie_in():
    organ = _organs()
    gt, pred = np.zeros(organ.shape, bool), np.zeros(organ.shape, bool)
    gt[1, 1, 1:3] = True        # liver tumor of 2 voxels, found exactly
    pred[1, 1, 1:3] = True
    gt[6, 1, 1:5] = True        # spleen tumor of 4 voxels, half found
    pred[6, 1, 1:3] = True
    pred[6, 6, 6] = True        # a false positive outside every organ
    gt[6, 6, 7] = True          # and a missed tumor voxel outside every organ
    metric = TumorDice(organ_vocab=VOCAB)  # organs=None: the organs holding a true tumor
    metric.process(None, [_dice_sample('c0', pred, gt, organ)])
    # a second study with a spleen and no tumor at all: its spleen scores 1 by convention
    metric.process(None, [_dice_sample('c1', np.zeros_like(pred), np.zeros_like(gt), organ)])
    m = metric.compute_metrics(metric.results)
    assert m['dice/liver'] == pytest.approx((1.0 + 1.0) / 2)
    assert m['dice/spleen'] == pytest.approx((2 * 2 / (2 + 4) + 1.0) / 2)
    assert m['dice'] == pytest.approx((2 * 4 / (5 + 7) + 1.0) / 2)
    assert m['dice_unassigned_fraction'] == pytest.approx(1 / 7)
    assert 'dice/kidney' not in m and 'dice/pancreas' not in m


def test_dice_per_organ_counts_only_studies_where_the_organ_is_present(logs):
    with_kidney = _organs()
    with_kidney[4:, 4:] = KIDNEY_R
    gt = np.zeros(with_kidney.shape, bool)
    gt[6, 6, 6] = True
    metric = TumorDice(organ_vocab=VOCAB, organs=['kidney', 'pancreas'])
    metric.process(None, [_dice_sample('k', np.zeros_like(gt), gt, with_kidney),
                          _dice_sample('no_k', np.zeros_like(gt), np.zeros_like(gt), _organs())])
    m = metric.compute_metrics(metric.results)
    assert m['dice/kidney'] == 0.0 and m['dice_num_studies/kidney'] == 1
    assert 'dice/pancreas' not in m
    assert any('pancreas is present in no study' in msg for msg in logs)


def test_dice_shape_mismatch_names_both_shapes():
    metric = TumorDice(organ_vocab=VOCAB)
    with pytest.raises(ValueError, match=r'\(8, 8, 8\).*\(8, 8, 7\)'):
        metric.process(None, [_dice_sample('c0', np.zeros((8, 8, 8)), np.zeros((8, 8, 7)),
                                           np.zeros((8, 8, 7)))])
    with pytest.raises(ValueError, match=r'organ_label of shape \(8, 8, 7\).*\(8, 8, 8\)'):
        metric.process(None, [_dice_sample('c0', np.zeros((8, 8, 8)), np.zeros((8, 8, 8)),
                                           np.zeros((8, 8, 7)))])


@pytest.mark.parametrize('edit, match', [
    (lambda p, g, o: (p * 0.7, g, o), 'pred_tumor_mask of case .* is not binary'),
    (lambda p, g, o: (p, g * 2, o), 'gt_tumor_mask of case .* is not binary'),
    (lambda p, g, o: (p, g, o + 10), r'outside 0\.\.5'),
    (lambda p, g, o: (p, g, o.astype(float)), 'integer label map'),
])
def test_dice_refuses_bad_masks(edit, match):
    organ = _organs()
    pred, gt, organ = edit(np.ones(organ.shape), np.ones(organ.shape), organ)
    sample = CTDataSample(metainfo=dict(case_id='c0'))
    sample.pred_tumor_mask = torch.as_tensor(pred)
    sample.gt_tumor_mask = torch.as_tensor(gt)
    sample.organ_label = torch.as_tensor(organ)
    with pytest.raises(DataError, match=match):
        TumorDice(organ_vocab=VOCAB).process(None, [sample])


def test_dice_points_at_the_packed_tumor_mask():
    sample = CTDataSample(metainfo=dict(case_id='c0'))
    sample.pred_tumor_mask = torch.zeros(4, 4, 4)
    sample.tumor_mask = torch.zeros(4, 4, 4, dtype=torch.long)
    sample.organ_label = torch.zeros(4, 4, 4, dtype=torch.long)
    with pytest.raises(DataError, match="set gt_key='tumor_mask'"):
        TumorDice(organ_vocab=VOCAB).process(None, [sample])
    metric = TumorDice(organ_vocab=VOCAB, gt_key='tumor_mask')
    metric.process(None, [sample])
    assert metric.compute_metrics(metric.results)['dice'] == 1.0


def test_dice_refuses_another_organ_vocab():
    organ = _organs()
    with pytest.raises(DataError, match='organ_vocab of 2 organs'):
        TumorDice(organ_vocab=VOCAB).process(None, [
            _dice_sample('c0', np.zeros(organ.shape), np.zeros(organ.shape), organ,
                         organ_vocab=('liver', 'spleen'))])


def test_dice_refuses_unknown_organs_and_empty_results():
    with pytest.raises(ConfigError, match="'livr' is neither an organ"):
        TumorDice(organ_vocab=VOCAB, organs=['livr'])
    with pytest.raises(DataError, match='no study'):
        TumorDice(organ_vocab=VOCAB).compute_metrics([])


def test_dice_keys_carry_the_tumor_prefix_and_builds_by_default():
    metric = METRICS.build(dict(type='TumorDice'))  # the 104-organ v1 vocabulary
    organ = np.zeros((6, 6, 6), np.int64)
    organ[:3] = 5  # liver in totalseg_v1
    gt = np.zeros(organ.shape, bool)
    gt[1, 1, 1] = True
    metric.process(None, [_dice_sample('c0', gt, gt, organ)])
    assert metric.evaluate(1) == {'tumor/dice': 1.0, 'tumor/dice_num_studies': 1,
                                  'tumor/dice_unassigned_fraction': 0.0, 'tumor/dice/liver': 1.0,
                                  'tumor/dice_num_studies/liver': 1}


def test_dice_from_counts_convention():
    assert dice_from_counts(0, 0, 0) == 1.0
    assert dice_from_counts(0, 0, 5) == 0.0
    np.testing.assert_allclose(dice_from_counts([1, 0], [2, 0], [2, 0]), [0.5, 1.0])
