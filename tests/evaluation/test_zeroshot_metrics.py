"""The zero-shot metric classes, driven through ``process`` + ``compute_metrics``/``evaluate``."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from ctglip.datasets.organs import ABNORMALITIES
from ctglip.evaluation.functional import bootstrap_weights
from ctglip.evaluation.metrics import zeroshot_abnormality
from ctglip.evaluation.metrics.zeroshot_abnormality import ZeroShotAbnormalityDetection
from ctglip.evaluation.metrics.zeroshot_organ import ZeroShotOrganRecognition
from ctglip.registry import METRICS
from ctglip.structures.ct_data_sample import CTDataSample
from ctglip.utils.errors import ConfigError, DataError

VOCAB = ('liver', 'spleen', 'kidney_left', 'kidney_right')


def _organ_sample(case_id, logits, valid, as_dict=False):
    sample = CTDataSample(metainfo=dict(case_id=case_id))
    sample.organ_logits = torch.tensor(logits, dtype=torch.float32)
    sample.organ_valid = torch.tensor(valid, dtype=torch.bool)
    return sample.to_dict() if as_dict else sample


# Study a: liver right (rank 0), spleen third (rank 2), kidney_left second (rank 1), kidney_right
# right. Study b: liver second, spleen right; kidneys not valid (their rows are ignored).
LOGITS_A = [[9, 1, 2, 3],
            [5, 1, 4, 0],
            [1, 0, 3, 4],
            [0, 1, 2, 7]]
LOGITS_B = [[6, 1, 7, 0],
            [0, 8, 1, 2],
            [9, 9, 9, 9],
            [9, 9, 9, 9]]


def test_organ_recognition_top1_top2_on_hand_made_logits(tmp_path):
    metric = ZeroShotOrganRecognition(topk=(1, 2), organ_vocab=VOCAB, out_dir=str(tmp_path))
    metric.process(None, [_organ_sample('a', LOGITS_A, [1, 1, 1, 1]),
                          _organ_sample('b', LOGITS_B, [1, 1, 0, 0], as_dict=True)])
    m = metric.compute_metrics(metric.results)
    # per organ top-1: liver 1/2, spleen 1/2, kidney_left 0, kidney_right 1
    assert m['organ_top1/liver'] == 0.5
    assert m['organ_top1/spleen'] == 0.5
    assert m['organ_top1/kidney_left'] == 0.0
    assert m['organ_top1/kidney_right'] == 1.0
    assert m['organ_top1'] == pytest.approx(0.5)
    assert m['organ_top1_micro'] == pytest.approx(3 / 6)
    # top-2: liver 2/2, spleen 1/2, kidney_left 1, kidney_right 1
    assert m['organ_top2'] == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert m['organ_top2_micro'] == pytest.approx(5 / 6)
    assert m['organ_num_rows'] == 6
    assert (tmp_path / 'organ_confusion.png').stat().st_size > 0


def test_organ_recognition_counts_ties_against_the_model():
    metric = ZeroShotOrganRecognition(topk=(1,), organ_vocab=VOCAB)
    metric.process(None, [_organ_sample('collapsed', np.zeros((4, 4)), [1, 1, 1, 1])])
    m = metric.compute_metrics(metric.results)
    assert m['organ_top1'] == 0.0
    assert all(v == 0.0 for k, v in m.items() if k.startswith('organ_top1/'))


def test_organ_recognition_evaluate_adds_the_prefix_and_registry_builds_it():
    metric = METRICS.build(dict(type='ZeroShotOrganRecognition', topk=(1, 5)))
    logits = np.eye(104) + 0.01 * np.random.default_rng(0).random((104, 104))
    valid = np.zeros(104, dtype=bool)
    valid[:10] = True
    metric.process(None, [_organ_sample('a', logits, valid)])
    m = metric.evaluate(1)
    assert m['zeroshot/organ_top1'] == 1.0
    assert m['zeroshot/organ_top5'] == 1.0
    assert m['zeroshot/organ_top1_micro'] == 1.0
    assert 'zeroshot/organ_top1/spleen' in m
    assert 'zeroshot/organ_top1/face' not in m  # organs that never occur get no key


def test_organ_recognition_rejects_wrong_shapes_and_empty_input():
    metric = ZeroShotOrganRecognition(organ_vocab=VOCAB)
    with pytest.raises(ConfigError, match='organ_vocab'):
        metric.process(None, [_organ_sample('a', np.zeros((3, 3)), [1, 1, 1])])
    with pytest.raises(DataError, match="'organ_valid'"):
        metric.process(None, [dict(case_id='x', organ_logits=torch.zeros(4, 4))])
    metric.process(None, [_organ_sample('a', LOGITS_A, [0, 0, 0, 0])])
    with pytest.raises(DataError, match='no valid organ'):
        metric.compute_metrics(metric.results)


# ---------------------------------------------------------------- abnormality detection

ORGANS = ('liver', 'spleen', 'kidney_left', 'kidney_right')


def _fake_studies(n=60, seed=0, never=('splenic cyst',)):
    """Studies with random ground truth and scores that separate the classes imperfectly."""
    rng = np.random.default_rng(seed)
    studies = []
    for i in range(n):
        truth, scores = {}, {}
        for organ in ORGANS:
            group = 'kidney' if organ.startswith('kidney') else organ
            scores[organ] = {}
            for abnormality in ABNORMALITIES[group]:
                positive = abnormality not in never and rng.random() < 0.3
                if positive:
                    truth.setdefault(organ, []).append(abnormality)
                scores[organ][abnormality] = float(np.clip(
                    0.3 + 0.3 * positive + 0.2 * rng.normal(), 0, 1))
        studies.append(dict(case_id=f'case{i}', abn_scores=scores, abnormalities=truth))
    return studies


def _as_samples(studies):
    samples = []
    for study in studies:
        sample = CTDataSample(metainfo=dict(case_id=study['case_id']))
        sample.abn_scores = study['abn_scores']
        sample.abnormalities = study['abnormalities']
        samples.append(sample)
    return samples


def _reference_units(studies, group, abnormality):
    scores, labels = [], []
    for study in studies:
        if study['abnormalities'] is None:
            continue
        for organ, organ_scores in study['abn_scores'].items():
            organ_group = 'kidney' if organ.startswith('kidney') else organ
            if organ_group == group and abnormality in organ_scores:
                scores.append(organ_scores[abnormality])
                labels.append(abnormality in study['abnormalities'].get(organ, []))
    return np.array(scores), np.array(labels)


@pytest.fixture
def logs(monkeypatch):
    messages = []
    monkeypatch.setattr(zeroshot_abnormality, 'print_log',
                        lambda msg, *a, **k: messages.append(msg))
    return messages


def test_abnormality_detection_matches_sklearn_and_self_calibrates(tmp_path, logs):
    studies = _fake_studies()
    studies.append(dict(case_id='no_truth', abn_scores=studies[0]['abn_scores'],
                        abnormalities=None))
    metric = ZeroShotAbnormalityDetection(n_bootstrap=200, out_dir=str(tmp_path))
    metric.process(None, _as_samples(studies[:30]))
    metric.process(None, [s.to_dict() for s in _as_samples(studies[30:])])  # Evaluator's form
    m = metric.compute_metrics(metric.results)

    assert m['abn_num_studies'] == 60
    assert m['abn_num_excluded_studies'] == 1
    assert m['abn_thresholds_self_calibrated'] == 1.0
    assert all(np.isfinite(v) for v in m.values())
    # splenic cyst never occurs: warned with its counts, no key, not in the averages
    assert any("'splenic cyst'" in msg and '0 positive and 60 negative' in msg for msg in logs)
    assert not any('splenic cyst' in k for k in m)
    evaluable = [('liver', a) for a in ABNORMALITIES['liver']] + [('spleen', 'splenomegaly')] + \
        [('kidney', a) for a in ABNORMALITIES['kidney']]
    assert m['abn_num_evaluable'] == len(evaluable)

    aucs, f1s = [], []
    for group, abnormality in evaluable:
        scores, labels = _reference_units(studies, group, abnormality)
        threshold = m[f'abn_threshold/{group}/{abnormality}']
        aucs.append(roc_auc_score(labels, scores))
        f1s.append(f1_score(labels, scores >= threshold))
        assert m[f'abn_auc/{group}/{abnormality}'] == pytest.approx(aucs[-1])
        assert m[f'abn_f1/{group}/{abnormality}'] == pytest.approx(f1s[-1])
    assert m['abn_auc'] == pytest.approx(np.mean(aucs))
    assert m['abn_f1'] == pytest.approx(np.mean(f1s))
    assert m['abn_auc/liver'] == pytest.approx(np.mean(aucs[:4]))
    assert m['abn_auc/spleen'] == pytest.approx(aucs[4])
    for name in ('auc', 'f1', 'ppv', 'sensitivity'):
        assert m[f'abn_{name}_ci_low'] <= m[f'abn_{name}'] <= m[f'abn_{name}_ci_high']
    assert m['abn_auc_ci_low'] < m['abn_auc_ci_high']
    assert m['abn_bootstrap_used'] + m['abn_bootstrap_skipped'] == 200
    assert m['abn_bootstrap_skipped'] <= 20  # common abnormalities: no warning
    assert not any('resamples are skipped' in msg for msg in logs)
    assert m['abn_thresholds_val_calibrated'] == 0.0

    written = json.loads((tmp_path / 'abn_thresholds.json').read_text())
    assert written['rule'] == 'nearest_01'
    assert written['thresholds']['kidney cyst'] == m['abn_threshold/kidney/kidney cyst']
    assert (tmp_path / 'abn_auc_radar.png').stat().st_size > 0

    # the same bootstrap seed gives the same intervals
    again = ZeroShotAbnormalityDetection(n_bootstrap=200)
    again.process(None, _as_samples(studies))
    assert again.compute_metrics(again.results)['abn_auc_ci_low'] == m['abn_auc_ci_low']


def test_abnormality_thresholds_from_validation_are_applied_unchanged(tmp_path, logs):
    val_dir = tmp_path / 'val'
    val = ZeroShotAbnormalityDetection(n_bootstrap=0, out_dir=str(val_dir),
                                       threshold_rule='youden')
    val.process(None, _as_samples(_fake_studies(seed=1)))
    val_metrics = val.compute_metrics(val.results)

    test_studies = _fake_studies(seed=2)
    test = ZeroShotAbnormalityDetection(n_bootstrap=0,
                                        thresholds=str(val_dir / 'abn_thresholds.json'))
    test.process(None, _as_samples(test_studies))
    m = test.compute_metrics(test.results)
    assert m['abn_thresholds_self_calibrated'] == 0.0
    assert 'abn_auc_ci_low' not in m
    threshold = val_metrics['abn_threshold/liver/liver mass']
    assert m['abn_threshold/liver/liver mass'] == threshold
    scores, labels = _reference_units(test_studies, 'liver', 'liver mass')
    assert m['abn_f1/liver/liver mass'] == pytest.approx(f1_score(labels, scores >= threshold))

    # a dict works as well; abnormalities without a threshold keep their AUC only
    partial = ZeroShotAbnormalityDetection(n_bootstrap=50, thresholds={'liver cyst': 0.5})
    partial.process(None, _as_samples(test_studies))
    m = partial.compute_metrics(partial.results)
    assert m['abn_f1'] == m['abn_f1/liver/liver cyst']
    assert 'abn_f1/kidney/kidney stone' not in m and 'abn_auc/kidney/kidney stone' in m
    assert any("no threshold for" in msg and "'kidney stone'" in msg for msg in logs)


def test_abnormality_evaluate_prefixes_the_fixed_keys():
    metric = METRICS.build(dict(type='ZeroShotAbnormalityDetection', n_bootstrap=20))
    metric.process(None, _as_samples(_fake_studies(n=20)))
    m = metric.evaluate(20)
    for key in ('abn_auc', 'abn_f1', 'abn_ppv', 'abn_sensitivity', 'abn_auc/liver',
                'abn_auc/liver/liver cyst', 'abn_auc_ci_low', 'abn_f1_ci_high'):
        assert f'zeroshot/{key}' in m


def test_abnormality_with_nothing_evaluable_explains_why(logs):
    metric = ZeroShotAbnormalityDetection(n_bootstrap=0)
    everything = tuple(a for names in ABNORMALITIES.values() for a in names)
    metric.process(None, _as_samples(_fake_studies(n=5, never=everything)))
    with pytest.raises(DataError, match="both positive and negative.*'liver cyst' \\(liver\\): "
                                        '0 positive / 5 negative'):
        metric.compute_metrics(metric.results)

    metric.process(None, [dict(case_id='a', abn_scores={}, abnormalities=None)])
    with pytest.raises(DataError, match='1 without'):
        metric.compute_metrics(metric.results)


def test_abnormality_rejects_bad_configs_and_outputs(tmp_path):
    with pytest.raises(ConfigError, match='nearest_01'):
        ZeroShotAbnormalityDetection(threshold_rule='closest')
    with pytest.raises(ConfigError, match='finite number'):
        ZeroShotAbnormalityDetection(thresholds={'liver cyst': 'high'})
    missing = ZeroShotAbnormalityDetection(thresholds=str(tmp_path / 'none.json'),
                                           n_bootstrap=0)
    missing.process(None, _as_samples(_fake_studies(n=10)))
    with pytest.raises(ConfigError, match='does not exist'):
        missing.compute_metrics(missing.results)
    with pytest.raises(ConfigError, match='names none'):
        ZeroShotAbnormalityDetection(thresholds={'nothing': 0.5}, n_bootstrap=0) \
            .compute_metrics(missing.results)
    metric = ZeroShotAbnormalityDetection()
    with pytest.raises(DataError, match="'abn_scores'"):
        metric.process(None, [dict(case_id='a', abnormalities={})])
    with pytest.raises(DataError, match='non-finite'):
        metric.process(None, [dict(case_id='a', abnormalities={},
                                   abn_scores={'liver': {'liver cyst': float('nan')}})])
    with pytest.raises(DataError, match='list of abnormality names'):
        metric.process(None, [dict(case_id='a', abnormalities={'liver': 'liver cyst'},
                                   abn_scores={})])


def test_plot_radar_compares_models(tmp_path):
    from ctglip.visualization.plots import plot_radar
    image = plot_radar({'CT-GLIP': {'liver': 0.8, 'kidney': 0.7, 'lung': 0.75},
                        'CLIP': {'liver': 0.6, 'kidney': 0.6}}, str(tmp_path / 'radar.png'))
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert (tmp_path / 'radar.png').stat().st_size > 0


def test_non_strict_metric_warns_instead_of_raising_when_nothing_is_evaluable():
    from ctglip.evaluation.metrics import ZeroShotAbnormalityDetection
    metric = ZeroShotAbnormalityDetection(n_bootstrap=0, strict=False)
    sample = dict(case_id='c', abn_scores={'liver': {'liver cyst': 0.3}}, abnormalities={})
    metric.process({}, [sample])
    out = metric.compute_metrics(metric.results)
    assert out == dict(abn_num_studies=1, abn_num_evaluable=0)


def test_abnormality_bootstrap_can_resample_patients():
    studies = _fake_studies(n=30)
    twice = []
    for i, study in enumerate(studies):  # two identical studies per patient
        for k in range(2):
            twice.append(dict(study, case_id=f'{study["case_id"]}_{k}', patient_id=f'p{i}'))
    samples = _as_samples(twice)
    for sample, study in zip(samples, twice):
        sample.set_metainfo(dict(patient_id=study['patient_id']))
    by_patient = ZeroShotAbnormalityDetection(n_bootstrap=200, bootstrap_unit='patient')
    by_patient.process(None, samples)
    m_patient = by_patient.evaluate(len(samples))
    by_study = ZeroShotAbnormalityDetection(n_bootstrap=200)
    by_study.process(None, samples)
    m_study = by_study.evaluate(len(samples))
    assert m_patient['zeroshot/abn_auc'] == m_study['zeroshot/abn_auc']
    width = {name: m['zeroshot/abn_auc_ci_high'] - m['zeroshot/abn_auc_ci_low']
             for name, m in (('patient', m_patient), ('study', m_study))}
    assert width['patient'] > width['study']
    with pytest.raises(ConfigError, match="bootstrap_unit='visit'"):
        ZeroShotAbnormalityDetection(bootstrap_unit='visit')


def _rare_abnormality_studies(n=40):
    """'liver cyst' in every other study, all its scores tied (AUC exactly 0.5 in any resample
    holding both classes); 'liver mass' in study 0 only, perfectly separated (AUC exactly 1).
    About a third of the resamples miss study 0 and with it every 'liver mass' positive."""
    studies = []
    for i in range(n):
        truth = {'liver': (['liver cyst'] if i % 2 else []) + (['liver mass'] if i == 0 else [])}
        studies.append(dict(case_id=f'case{i}', abnormalities=truth, abn_scores={
            'liver': {'liver cyst': 0.5, 'liver mass': 0.9 if i == 0 else 0.1}}))
    return studies


def test_bootstrap_averages_every_resample_over_the_point_estimates_abnormalities(logs):
    studies = _rare_abnormality_studies()
    metric = ZeroShotAbnormalityDetection(n_bootstrap=300, seed=4)
    metric.process(None, _as_samples(studies))
    m = metric.compute_metrics(metric.results)
    assert m['abn_auc/liver/liver cyst'] == 0.5 and m['abn_auc/liver/liver mass'] == 1.0
    assert m['abn_auc'] == 0.75
    # every resample used averages 0.5 and 1.0; averaging the resamples that lost 'liver mass'
    # over 'liver cyst' alone would pull the low end down to 0.5
    assert m['abn_auc_ci_low'] == m['abn_auc'] == m['abn_auc_ci_high']
    for name in ('f1', 'ppv', 'sensitivity'):
        assert m[f'abn_{name}_ci_low'] <= m[f'abn_{name}'] <= m[f'abn_{name}_ci_high']
    assert m['abn_sensitivity_ci_low'] == m['abn_sensitivity_ci_high'] == 1.0

    # the skipped resamples are those where an abnormality has one class absent
    weights = bootstrap_weights(len(studies), 300, np.random.default_rng(4))
    cyst = np.array([i % 2 == 1 for i in range(len(studies))])
    mass = np.arange(len(studies)) == 0
    skipped = int(((weights[:, mass].sum(1) == 0) | (weights[:, ~mass].sum(1) == 0)
                   | (weights[:, cyst].sum(1) == 0) | (weights[:, ~cyst].sum(1) == 0)).sum())
    assert 0.25 * 300 < skipped < 0.5 * 300
    assert m['abn_bootstrap_skipped'] == skipped
    assert m['abn_bootstrap_used'] == 300 - skipped
    warning = [msg for msg in logs if 'resamples are skipped' in msg]
    assert len(warning) == 1 and f'{skipped} of 300' in warning[0]
    assert f"'liver mass' (liver, 1 positive / 39 negative): {skipped}" in warning[0]


def test_abnormality_reports_thresholds_chosen_on_validation_in_this_run():
    metric = ZeroShotAbnormalityDetection(n_bootstrap=0)
    metric.use_validation_thresholds({'liver/liver cyst': 0.5, 'liver mass': 0.5})
    metric.process(None, _as_samples(_rare_abnormality_studies()))
    m = metric.compute_metrics(metric.results)
    assert m['abn_thresholds_val_calibrated'] == 1.0
    assert m['abn_thresholds_self_calibrated'] == 0.0
    assert m['abn_threshold/liver/liver mass'] == 0.5
    with pytest.raises(ConfigError, match='chosen in this run'):
        metric.use_validation_thresholds('work_dirs/old/abn_thresholds.json')
