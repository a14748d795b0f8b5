"""Abnormality vocabularies as data: loading, lookups, the one config key, coverage checks."""
import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO

from ctglip.utils.errors import ConfigError
from ctglip.vocabularies import (ABNORMALITIES, ORGAN_GROUPS, AbnormalityVocabulary,
                                 load_abnormality_vocab, shipped_vocabularies)

# DESIGN.md's fixed table of the default vocabulary
DESIGN_TABLE = {
    'liver': ('liver cyst', 'liver mass', 'hepatic steatosis', 'liver calcification'),
    'gallbladder': ('gallstone', 'gallbladder wall thickening'),
    'spleen': ('splenomegaly', 'splenic cyst'),
    'pancreas': ('pancreatic mass', 'pancreatic duct dilation'),
    'kidney': ('kidney cyst', 'kidney stone', 'hydronephrosis'),
    'lung': ('lung nodule', 'emphysema'),
    'adrenal_gland': ('adrenal nodule',),
}
CT_RATE_COLUMNS = (
    'Medical material', 'Arterial wall calcification', 'Cardiomegaly', 'Pericardial effusion',
    'Coronary artery wall calcification', 'Hiatal hernia', 'Lymphadenopathy', 'Emphysema',
    'Atelectasis', 'Lung nodule', 'Lung opacity', 'Pulmonary fibrotic sequela', 'Pleural effusion',
    'Mosaic attenuation pattern', 'Peribronchial thickening', 'Consolidation', 'Bronchiectasis',
    'Interlobular septal thickening')


def test_default_vocabulary_is_the_design_table():
    vocab = load_abnormality_vocab()
    assert vocab.name == 'default' and load_abnormality_vocab('default') is vocab
    assert vocab.abnormalities == DESIGN_TABLE == ABNORMALITIES
    assert vocab.groups == ORGAN_GROUPS
    assert vocab.groups['kidney'] == ('kidney_left', 'kidney_right')
    assert len(vocab.names) == 16 and vocab.group_of('kidney stone') == 'kidney'
    assert vocab.organ_group('lung_middle_lobe_right') == 'lung'
    assert vocab.abnormalities_of('adrenal_gland_left') == ('adrenal nodule',)
    assert vocab.organ_group('aorta') is None and vocab.abnormalities_of('aorta') == ()


def test_old_import_path_re_exports_the_vocabularies():
    from ctglip.datasets import organs
    from ctglip.vocabularies import organs as ground_floor
    assert organs.ORGAN_GROUPS == ORGAN_GROUPS and organs.ABNORMALITIES == ABNORMALITIES
    assert organs.organ_group('kidney_left') == 'kidney'
    assert organs.all_abnormalities()[0] == 'liver cyst' and len(organs.all_abnormalities()) == 16
    assert organs.organ_vocabulary is ground_floor.organ_vocabulary
    assert len(organs.organ_vocabulary('totalseg_v2')) == 117
    assert organs.readable_name('lung_upper_lobe_left') == 'upper lobe of the left lung'


def test_ct_rate_vocabulary_has_the_18_labels_in_column_order():
    vocab = load_abnormality_vocab('ct_rate')
    assert set(shipped_vocabularies()) >= {'default', 'ct_rate'}
    assert set(vocab.label_columns) == set(CT_RATE_COLUMNS)
    assert sorted(vocab.names) == sorted(c.lower() for c in CT_RATE_COLUMNS)
    assert all(vocab.label_columns[c] == c.lower() for c in CT_RATE_COLUMNS)
    # an organ may be in several groups and then has all their abnormalities
    assert set(vocab.groups_of('lung_lower_lobe_left')) == {'lung', 'pleura'}
    assert 'pleural effusion' in vocab.abnormalities_of('lung_lower_lobe_left')
    assert set(vocab.abnormalities_of('heart')) >= {'cardiomegaly', 'pericardial effusion',
                                                    'coronary artery wall calcification',
                                                    'medical material'}
    assert vocab.unit_group('heart', 'cardiomegaly') == 'heart'
    assert vocab.unit_group('heart', 'pericardial effusion') == 'pericardium'
    assert vocab.group_of('hiatal hernia') == 'esophagus'
    assert all(vocab.notes.get(g) for g in ('medical_material', 'pericardium', 'mediastinum',
                                            'pleura', 'coronary_arteries'))


def test_ct_rate_organs_exist_in_a_label_scheme():
    from ctglip.vocabularies import organ_vocabulary
    known = set(organ_vocabulary('totalseg_v1')) | set(organ_vocabulary('totalseg_v2'))
    regions = {'lung', 'pleura', 'mediastinum', 'bone'}  # RadGenome-ChestCT region masks
    vocab = load_abnormality_vocab('ct_rate')
    assert set(vocab.organs) <= known | regions, set(vocab.organs) - known - regions
    for scheme in ('totalseg_v1', 'totalseg_v2'):  # every group has organs in both schemes
        assert vocab.check_organs(organ_vocabulary(scheme)) == []


def test_load_by_path_and_inline(tmp_path):
    spec = dict(name='tiny', groups={'liver': dict(organs=['liver'],
                                                   abnormalities=['liver cyst'])})
    path = tmp_path / 'tiny.json'
    path.write_text(json.dumps(dict(spec, prompts='zeroshot_prompts.json')))
    from_file = load_abnormality_vocab(str(path))
    assert from_file.name == 'tiny' and from_file.prompts_file.endswith('zeroshot_prompts.json')
    inline = load_abnormality_vocab(spec)
    assert inline == from_file and inline.source == 'config'
    assert load_abnormality_vocab(inline) is inline


@pytest.mark.parametrize('spec, message', [
    ('ct_rat', 'not a shipped vocabulary'),
    ('/no/such/vocab.json', 'does not exist'),
    (dict(groups={}), 'non-empty'),
    (dict(groups={'liver': dict(organs=['liver'], abnormalities=['Liver Cyst'])}), 'lower case'),
    (dict(groups={'a': dict(organs=['liver'], abnormalities=['cyst']),
                  'b': dict(organs=['spleen'], abnormalities=['cyst'])}), 'belongs to one group'),
    (dict(groups={'liver': dict(organs=[], abnormalities=['liver cyst'])}), '"organs"'),
    (dict(groups={'liver': dict(organs=['liver'], abnormalities=['x'])}, prompts='nope.json'),
     '"prompts" file'),
    (3, 'must be a name'),
])
def test_bad_vocabularies_fail_in_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_abnormality_vocab(spec)
    assert '\n' not in str(info.value)


def test_a_vocabulary_without_any_organ_of_the_model_fails():
    vocab = load_abnormality_vocab('ct_rate')
    with pytest.raises(ConfigError, match='no group has an organ'):
        vocab.check_organs(['liver', 'spleen'])
    assert 'liver' in load_abnormality_vocab().check_organs(['spleen'])  # partial: a list


# ---------------------------------------------------------------- coverage of the resources

def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_prompts_missing_an_abnormality_fail_in_one_line(tmp_path):
    from ctglip.models.ctglip import load_prompts
    vocab = load_abnormality_vocab()
    prompts = json.load(open(vocab.prompts_file))
    load_prompts(vocab.prompts_file, vocab)  # the shipped file covers it
    del prompts['abnormalities']['kidney']['hydronephrosis']
    path = _write(tmp_path, 'prompts.json', prompts)
    with pytest.raises(ConfigError, match=r'missing kidney/hydronephrosis\.') as info:
        load_prompts(path, 'default')
    assert '\n' not in str(info.value) and path in str(info.value)
    load_prompts(path)  # without a vocabulary (a file read on its own): a part is fine
    prompts['abnormalities']['kidney']['hydronephrosys'] = {'positive': ['x.'],
                                                            'negative': ['y.']}
    with pytest.raises(ConfigError, match='not in the vocabulary kidney/hydronephrosys'):
        load_prompts(_write(tmp_path, 'typo.json', prompts), 'default')


def test_dictionary_missing_an_abnormality_fails_at_build(tmp_path):
    from ctglip.models.losses.grounded import DiagnosisContrastiveLoss
    vocab = load_abnormality_vocab('ct_rate')
    table = json.load(open(vocab.dictionary_file))
    DiagnosisContrastiveLoss(dictionary='default', abnormality_vocab='ct_rate')
    del table['lung']['bronchiectasis']
    path = _write(tmp_path, 'dict.json', table)
    with pytest.raises(ConfigError, match=r"vocabulary 'ct_rate'.*missing lung/bronchiectasis"):
        DiagnosisContrastiveLoss(dictionary=path, abnormality_vocab='ct_rate')
    with pytest.raises(ConfigError, match='groups not in the vocabulary'):
        DiagnosisContrastiveLoss(dictionary=path)  # ct_rate groups are not the default's


def test_model_checks_its_prompt_file_at_build(tiny_bert, tmp_path):
    from ctglip.registry import MODELS
    cfg = dict(type='CTGLIP', backbone=dict(type='MiT3D', arch='tiny'),
               pooler=dict(type='OrganMaskPooler'),
               text_encoder=dict(type='HFTextEncoder', model_path=tiny_bert),
               losses=[dict(type='AnatomyContrastiveLoss'),
                       dict(type='DiagnosisContrastiveLoss', dictionary='default')],
               organ_vocab='totalseg_v2', embed_dim=16, abnormality_vocab='ct_rate')
    model = MODELS.build(cfg)
    assert model.prompts_file.endswith('ct_rate_zeroshot_prompts.json')
    assert model.losses[1].abnormality_vocab.name == 'ct_rate'  # handed on by the model
    embeds = model._abnormality_prompt_embeds()
    assert set(embeds['heart:names']) == {'medical material', 'cardiomegaly',
                                          'pericardial effusion',
                                          'coronary artery wall calcification'}
    assert embeds['lung_upper_lobe_left'].shape == (11, 2, 16)  # 10 lung + pleural effusion
    default = load_abnormality_vocab()
    with pytest.raises(ConfigError, match="does not cover abnormality vocabulary 'ct_rate'"):
        MODELS.build(dict(cfg, prompts=default.prompts_file))


# ---------------------------------------------------------------- the one config key

def test_config_key_reaches_every_component():
    from mmengine.config import Config

    from ctglip.utils.cli import load_config
    from ctglip.vocabularies.config import apply_abnormality_vocab
    cfg = load_config(osp.join(REPO, 'configs/tests/tiny_ctglip.py'),
                      ['abnormality_vocab=ct_rate'])
    assert cfg.model.abnormality_vocab == 'ct_rate'
    assert cfg.train_dataloader.dataset.abnormality_vocab == 'ct_rate'
    assert all(m.get('abnormality_vocab') == 'ct_rate' for m in cfg.val_evaluator
               if m.type == 'ZeroShotAbnormalityDetection')
    assert 'abnormality_vocab' not in cfg.val_evaluator[0]  # organ recognition takes none
    default = load_config(osp.join(REPO, 'configs/ctglip/ctglip_mit_104organ.py'))
    assert default.abnormality_vocab == 'default' == default.model.abnormality_vocab
    clash = Config(dict(abnormality_vocab='ct_rate',
                        model=dict(type='CTGLIP', abnormality_vocab='default')))
    with pytest.raises(ConfigError, match='set the vocabulary only once'):
        apply_abnormality_vocab(clash)


# ---------------------------------------------------------------- study-level metrics

def test_study_level_units_and_ct_clip_rates():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, roc_auc_score

    from ctglip.evaluation.metrics import ZeroShotAbnormalityDetection
    rng = np.random.default_rng(0)
    lobes = load_abnormality_vocab('ct_rate').groups['lung'][:5]
    samples, study_scores, study_labels = [], [], []
    for i in range(40):
        positive = bool(i % 3 == 0)
        scores = {lobe: {'lung nodule': float(rng.uniform(0, 0.6))} for lobe in lobes}
        if positive:
            scores[lobes[i % 5]]['lung nodule'] = float(rng.uniform(0.3, 1.0))
        truth = {lobes[i % 5]: ['lung nodule']} if positive else {}
        samples.append(dict(case_id=f'c{i}', abn_scores=scores, abnormalities=truth))
        study_scores.append(max(s['lung nodule'] for s in scores.values()))
        study_labels.append(positive)
    rates = ('f1_weighted', 'accuracy', 'ppv', 'f1', 'sensitivity', 'specificity')
    metric = ZeroShotAbnormalityDetection(abnormality_vocab='ct_rate', level='study',
                                          rates=rates, n_bootstrap=0, thresholds={
                                              'lung nodule': 0.5})
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    pred = np.array(study_scores) >= 0.5
    assert out['abn_auc/lung/lung nodule'] == pytest.approx(roc_auc_score(study_labels,
                                                                          study_scores))
    assert out['abn_f1_weighted'] == pytest.approx(f1_score(study_labels, pred,
                                                            average='weighted'))
    assert out['abn_accuracy'] == pytest.approx(accuracy_score(study_labels, pred))
    assert out['abn_ppv/lung/lung nodule'] == pytest.approx(precision_score(study_labels, pred))
    assert out['abn_num_studies'] == 40

    with pytest.raises(ConfigError, match='level'):
        ZeroShotAbnormalityDetection(level='patient')
    with pytest.raises(ConfigError, match='rates'):
        ZeroShotAbnormalityDetection(rates=('auroc',))


def test_bootstrap_of_added_rates_runs():
    from ctglip.evaluation.metrics import ZeroShotAbnormalityDetection
    rng = np.random.default_rng(1)
    metric = ZeroShotAbnormalityDetection(level='study', n_bootstrap=50,
                                          rates=('accuracy', 'f1_weighted'))
    for i in range(30):
        metric.process(None, [dict(case_id=i, abnormalities={'liver': ['liver cyst']} if i % 2
                                   else {}, abn_scores={'liver': {'liver cyst':
                                                                  float(rng.uniform())}})])
    out = metric.compute_metrics(metric.results)
    assert out['abn_accuracy_ci_low'] <= out['abn_accuracy'] <= out['abn_accuracy_ci_high']
    assert 'abn_f1_ci_low' not in out and 'abn_f1_weighted_ci_high' in out


def test_vocabulary_object_round_trips():
    vocab = load_abnormality_vocab('ct_rate')
    again = AbnormalityVocabulary(vocab.to_dict()['groups'], name='ct_rate',
                                  label_columns=vocab.label_columns)
    assert again == vocab and hash(again) == hash(vocab)
