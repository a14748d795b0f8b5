"""Contrastive losses against direct computations; soft targets; dictionary; gather path."""
import pytest
import torch
import torch.nn.functional as F

from ctglip.datasets.organs import ORGAN_GROUPS, readable_name
from ctglip.models.losses import (AnatomyContrastiveLoss, CLIPLoss, DiagnosisContrastiveLoss,
                                  soft_infonce, unique_targets)


def normed(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_one_hot_case_equals_clip_cross_entropy():
    img, txt = normed(6, 8), normed(6, 8, seed=1)
    scale = torch.tensor(10.0)
    loss, acc = soft_infonce(img, txt, torch.eye(6, dtype=torch.bool), scale)
    logits = scale * img @ txt.t()
    expected = (F.cross_entropy(logits, torch.arange(6)) +
                F.cross_entropy(logits.t(), torch.arange(6))) / 2
    assert torch.allclose(loss, expected, atol=1e-6)
    assert acc == (logits.argmax(1) == torch.arange(6)).float().mean()


def test_soft_targets_equal_a_direct_computation():
    img, txt = normed(4, 8), normed(2, 8, seed=1)
    pos = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    loss, _ = soft_infonce(img, txt, pos, torch.tensor(5.0))
    logits = 5.0 * img @ txt.t()
    i2t = F.cross_entropy(logits, torch.tensor([0, 0, 1, 1]))
    # text j's target is uniform over its two positive rows
    t2i = -(0.5 * F.log_softmax(logits.t(), 1)[0, :2].sum()
            + 0.5 * F.log_softmax(logits.t(), 1)[1, 2:].sum()) / 2
    assert torch.allclose(loss, (i2t + t2i) / 2, atol=1e-6)


def test_loss_is_invariant_to_batch_order():
    img, txt = normed(5, 8), normed(3, 8, seed=1)
    pos = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=torch.bool)
    perm = torch.tensor([3, 0, 4, 2, 1])
    a, _ = soft_infonce(img, txt, pos, torch.tensor(7.0))
    b, _ = soft_infonce(img[perm], txt, pos[perm], torch.tensor(7.0))
    tperm = torch.tensor([2, 0, 1])
    c, _ = soft_infonce(img, txt[tperm], pos[:, tperm], torch.tensor(7.0))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)


def test_ignored_pairs_leave_the_softmax():
    img, txt = normed(2, 8), normed(3, 8, seed=1)
    pos = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    ignore = torch.tensor([[0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    loss, _ = soft_infonce(img, txt, pos, torch.tensor(3.0), ignore=ignore)
    logits = 3.0 * img @ txt.t()
    i2t = (F.cross_entropy(logits[:1, :2], torch.tensor([0]))
           + F.cross_entropy(logits[1:], torch.tensor([1]))) / 2
    # text 2 has no positive row: it only acts as a (masked) negative, with no t2i term
    t2i = F.cross_entropy(logits.t()[:2], torch.tensor([0, 1]))
    assert torch.allclose(loss, (i2t + t2i) / 2, atol=1e-6)
    assert torch.isfinite(loss)


def test_unique_targets_merges_identical_texts():
    texts, pos = unique_targets(['a', 'b', 'a'])
    assert texts == ['a', 'b']
    assert pos.tolist() == [[True, False], [False, True], [True, False]]


STUDIES = [
    dict(report='r0', findings={'liver': ['A 9 mm cyst in the liver.'],
                                'kidney_left': ['Left kidney normal.']},
         status={'liver': 'abnormal', 'kidney_left': 'normal'},
         abnormalities={'liver': ['liver cyst']}),
    dict(report='r1', findings={'liver': ['Liver normal.']}, status={'liver': 'normal'},
         abnormalities={}),
    dict(report='r0', findings={}, status={}, abnormalities={}),
]


def test_anatomy_rows_of_one_organ_share_a_positive_text():
    loss = AnatomyContrastiveLoss(templates=['This is the {organ}.']).eval()
    t = loss.build_targets([(0, 'liver'), (1, 'liver'), (0, 'kidney_left')], STUDIES)
    assert t.texts == ['This is the liver.', 'This is the left kidney.']
    assert t.pos.tolist() == [[True, False], [True, False], [False, True]]


def test_diagnosis_texts_balance_and_dictionary(tmp_path):
    import json
    d = tmp_path / 'dict.json'
    d.write_text(json.dumps({'liver': {'liver cyst': ['Hepatic cyst.'],
                                       'liver mass': ['Hepatic mass.']},
                             'kidney': {'kidney stone': ['Stone in the {organ}.']}}))
    loss = DiagnosisContrastiveLoss(dictionary=str(d))
    rows = [(0, 'liver'), (1, 'liver'), (0, 'kidney_left'), (0, 'aorta')]
    t = loss.build_targets(rows, STUDIES)
    assert t.texts[:4] == ['A 9 mm cyst in the liver.', 'The liver shows no evident abnormality.',
                           'The left kidney shows no evident abnormality.',
                           'The aorta shows no evident abnormality.']
    assert set(t.texts[4:]) == {'Hepatic cyst.', 'Hepatic mass.', 'Stone in the left kidney.'}
    cyst, mass = t.texts.index('Hepatic cyst.'), t.texts.index('Hepatic mass.')
    assert t.pos[0, cyst] and not t.pos[0, mass]  # own abnormality positive, other negative
    assert not t.pos[1, cyst]  # a normal liver: dictionary entries are negatives
    assert torch.allclose(t.row_weights[0], torch.tensor(0.5))  # 1 abnormal row holds half
    assert torch.allclose(t.row_weights.sum(), torch.tensor(1.0))
    ignore_loss = DiagnosisContrastiveLoss(dictionary=str(d), dictionary_own='ignore')
    t2 = ignore_loss.build_targets(rows, STUDIES)
    assert t2.ignore[0, t2.texts.index('Hepatic cyst.')] and not t2.pos[0].sum() > 1


def organ_study(**abnormal):
    """A study whose organs ``abnormal`` maps to ``(finding sentence, [abnormality])``; organs
    mapped to None are normal."""
    return dict(report='', findings={o: [v[0]] for o, v in abnormal.items() if v},
                status={o: 'abnormal' if v else 'normal' for o, v in abnormal.items()},
                abnormalities={o: v[1] for o, v in abnormal.items() if v})


def diagnosis_with(tmp_path, entries, **kwargs):
    import json
    d = tmp_path / 'dict.json'
    d.write_text(json.dumps(entries))
    return DiagnosisContrastiveLoss(dictionary=str(d), **kwargs)


KIDNEY_DICT = {'kidney': {'kidney stone': ['Renal calculus.', 'Nephrolithiasis of the {organ}.'],
                          'kidney cyst': ['Renal cyst.']}}


@pytest.mark.parametrize('own', ['positive', 'ignore'])
def test_dictionary_entry_without_organ_is_a_target_of_both_kidneys(tmp_path, own):
    """"Renal calculus." is one candidate and is right for both stone kidneys; "... of the left
    kidney" only for the left one; another abnormality's entry is a negative for both."""
    left, right = ORGAN_GROUPS['kidney']
    studies = [organ_study(**{left: ('A 4 mm stone in the left kidney.', ['kidney stone']),
                              right: ('Right nephrolithiasis.', ['kidney stone'])})]
    t = diagnosis_with(tmp_path, KIDNEY_DICT, dictionary_own=own).build_targets(
        [(0, left), (0, right)], studies)
    assert t.texts.count('Renal calculus.') == 1
    calculus, cyst = t.texts.index('Renal calculus.'), t.texts.index('Renal cyst.')
    named_left = t.texts.index('Nephrolithiasis of the left kidney.')
    named_right = t.texts.index('Nephrolithiasis of the right kidney.')
    target = t.pos if own == 'positive' else t.ignore
    assert target[:, calculus].tolist() == [True, True]
    assert target[:, named_left].tolist() == [True, False]
    assert target[:, named_right].tolist() == [False, True]
    assert not target[:, cyst].any()
    assert t.pos[:, :2].tolist() == [[True, False], [False, True]]  # the findings themselves
    if own == 'ignore':
        assert t.pos[:, 2:].sum() == 0
        assert not (t.ignore & t.pos).any()


LOBES = ORGAN_GROUPS['lung']
LUNG_DICT = {'lung': {'emphysema': ['Centrilobular emphysema.'],
                      'lung nodule': ['Pulmonary nodule.']}}


def lung_study(lobes):
    """Emphysema in ``lobes``, the other lobes normal."""
    return organ_study(**{lobe: (f'Emphysema in the {readable_name(lobe)}.', ['emphysema'])
                          if lobe in lobes else None for lobe in LOBES})


def test_dictionary_entry_without_organ_is_a_positive_of_all_five_lobes(tmp_path):
    t = diagnosis_with(tmp_path, LUNG_DICT).build_targets(
        [(0, lobe) for lobe in LOBES], [lung_study(LOBES)])
    emphysema = t.texts.index('Centrilobular emphysema.')
    nodule = t.texts.index('Pulmonary nodule.')
    assert t.pos[:, emphysema].all() and not t.pos[:, nodule].any()
    assert t.pos.sum(1).tolist() == [2] * 5  # its own finding and the shared entry


@pytest.mark.parametrize('own', ['positive', 'ignore'])
def test_dictionary_entry_is_a_negative_of_lobes_without_the_finding(tmp_path, own):
    """Emphysema in the upper lobes only: the lower lobes (one normal, one with a nodule) keep
    "Centrilobular emphysema." as a negative, neither positive nor ignored."""
    upper = [lobe for lobe in LOBES if 'upper' in lobe]
    lower = [lobe for lobe in LOBES if 'lower' in lobe]
    studies = [lung_study(upper), organ_study(**{lower[0]: ('A 5 mm nodule.', ['lung nodule']),
                                                 lower[1]: None})]
    rows = [(0, lobe) for lobe in upper] + [(1, lobe) for lobe in lower]
    t = diagnosis_with(tmp_path, LUNG_DICT, dictionary_own=own).build_targets(rows, studies)
    emphysema = t.texts.index('Centrilobular emphysema.')
    nodule = t.texts.index('Pulmonary nodule.')
    target = t.pos if own == 'positive' else t.ignore
    assert target[:, emphysema].tolist() == [True, True, False, False]
    assert target[:, nodule].tolist() == [False, False, True, False]
    assert not t.pos[2:, emphysema].any()
    if own == 'ignore':
        assert not t.ignore[2:, emphysema].any()


@pytest.mark.parametrize('own', ['positive', 'ignore'])
def test_dictionary_entry_equal_to_a_finding_text(tmp_path, own):
    """An entry equal to a row's finding stays one column: positive for every row with that
    exact text, and a target of the other stone kidneys."""
    left, right = 'kidney_left', 'kidney_right'
    studies = [organ_study(**{left: ('Renal calculus.', ['kidney stone']),
                              right: ('A 3 mm stone in the right kidney.', ['kidney stone'])}),
               organ_study(**{right: ('Renal calculus.', ['kidney stone'])})]
    t = diagnosis_with(tmp_path, KIDNEY_DICT, dictionary_own=own).build_targets(
        [(0, left), (0, right), (1, right)], studies)
    assert t.texts.count('Renal calculus.') == 1
    calculus = t.texts.index('Renal calculus.')
    if own == 'positive':
        assert t.pos[:, calculus].tolist() == [True, True, True]
    else:
        assert t.pos[:, calculus].tolist() == [True, False, True]
        assert t.ignore[:, calculus].tolist() == [False, True, False]


@pytest.mark.parametrize('own', ['positive', 'ignore'])
def test_dictionary_entry_equal_to_a_normal_template_is_no_target_of_abnormal_rows(tmp_path, own):
    entries = {'kidney': {'kidney stone': ['The {organ} shows no evident abnormality.',
                                           'Renal calculus.']}}
    studies = [organ_study(kidney_left=None, kidney_right=('Right stone.', ['kidney stone'])),
               organ_study(kidney_left=('Left stone.', ['kidney stone']))]
    t = diagnosis_with(tmp_path, entries, dictionary_own=own).build_targets(
        [(0, 'kidney_left'), (0, 'kidney_right'), (1, 'kidney_left')], studies)
    normal_left = t.texts.index('The left kidney shows no evident abnormality.')
    normal_right = t.texts.index('The right kidney shows no evident abnormality.')
    assert t.texts.count('The left kidney shows no evident abnormality.') == 1
    assert t.pos[:, normal_left].tolist() == [True, False, False]  # only the normal kidney
    assert not t.pos[:, normal_right].any()  # a negative of the abnormal right kidney
    if own == 'ignore':
        assert not t.ignore[:, [normal_left, normal_right]].any()
    target = t.pos if own == 'positive' else t.ignore
    assert target[:, t.texts.index('Renal calculus.')].tolist() == [False, True, True]


def test_diagnosis_loss_with_a_shared_entry_is_finite_and_differentiable(tmp_path):
    loss = diagnosis_with(tmp_path, LUNG_DICT)
    t = loss.build_targets([(0, lobe) for lobe in LOBES], [lung_study(LOBES[:2])])
    image = normed(5, 8).requires_grad_()
    out = loss(image, normed(len(t.texts), 8, seed=1), t, torch.tensor(10.0))
    out['loss_diagnosis'].backward()
    assert torch.isfinite(out['loss_diagnosis']) and torch.isfinite(image.grad).all()


def test_diagnosis_logs_the_accuracy_of_its_abnormal_rows():
    """acc_diagnosis_abnormal: top-1 over the abnormal rows only (row 0, the cyst liver)."""
    loss = DiagnosisContrastiveLoss()
    rows = [(0, 'liver'), (1, 'liver'), (0, 'kidney_left')]
    t = loss.build_targets(rows, STUDIES)
    assert t.row_groups['abnormal'].tolist() == [True, False, False]
    text = torch.eye(3)  # texts: cyst finding, normal liver, normal left kidney
    scale = torch.tensor(10.0)
    # the cyst liver looks like a normal liver (wrong); the other two rows are right
    image = torch.stack([text[1], text[1], text[2]])
    out = loss(image, text, t, scale)
    assert out['acc_diagnosis_abnormal'] == 0.0
    assert torch.isclose(out['acc_diagnosis'], torch.tensor(2 / 3))
    image[0] = text[0]
    assert loss(image, text, t, scale)['acc_diagnosis_abnormal'] == 1.0
    normal = loss.build_targets([(1, 'liver')], STUDIES)
    assert 'acc_diagnosis_abnormal' not in loss(text[1:2], text[1:2], normal, scale)


def test_grouped_diagnosis_rows_skip_organs_without_a_group():
    t = DiagnosisContrastiveLoss(organs='grouped').build_targets(
        [(0, 'liver'), (0, 'aorta')], STUDIES)
    assert t.rows.tolist() == [0]


def test_clip_text_sources():
    rows = [(0, None), (1, None), (2, None)]
    t = CLIPLoss().build_targets(rows, STUDIES)
    assert t.texts == ['r0', 'r1'] and t.pos[:, 0].tolist() == [True, False, True]
    f = CLIPLoss(text_source='findings').build_targets(rows, STUDIES)
    assert f.texts == ['A 9 mm cyst in the liver.', 'No evident abnormality.']


def test_bad_options_name_the_field():
    from ctglip.utils.errors import ConfigError
    with pytest.raises(ConfigError, match='dictionary_own'):
        DiagnosisContrastiveLoss(dictionary_own='maybe')
    with pytest.raises(ConfigError, match='does not exist'):
        DiagnosisContrastiveLoss(dictionary='/nope.json')


def test_gather_path_matches_single_process_on_concatenated_inputs(monkeypatch):
    """Rank 0 of a simulated 2-rank run: the loss equals the single-process loss on the
    concatenated batch, and its local rows get the same gradient."""
    import ctglip.models.ctglip as ctglip_module
    loss = AnatomyContrastiveLoss(templates=['This is the {organ}.']).eval()
    text = {t: normed(1, 8, seed=i)[0] for i, t in enumerate(
        ['This is the liver.', 'This is the spleen.', 'This is the left kidney.'])}
    rows0, rows1 = [(0, 'liver'), (0, 'spleen')], [(0, 'liver'), (0, 'kidney_left')]
    emb0 = normed(2, 8, seed=10).requires_grad_()
    emb1 = normed(2, 8, seed=11)

    def run(rows, embeds):
        t = loss.build_targets(rows, STUDIES)
        return loss(embeds, torch.stack([text[x] for x in t.texts]), t, torch.tensor(10.0))

    full_emb = torch.cat([emb0, emb1]).detach().requires_grad_()
    single = run(rows0 + [(1, o) for _, o in rows1], full_emb)['loss_anatomy']
    single.backward()

    monkeypatch.setattr(ctglip_module, 'gather_features', lambda x: torch.cat([x, emb1]))
    monkeypatch.setattr(ctglip_module, 'gather_objects', lambda items: items)
    gathered = ctglip_module.gather_features(emb0)
    dist = run(rows0 + [(1, o) for _, o in rows1], gathered)['loss_anatomy']
    dist.backward()
    assert torch.allclose(single, dist)
    assert torch.allclose(emb0.grad, full_emb.grad[:2], atol=1e-6)
