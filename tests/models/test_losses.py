"""Contrastive losses against direct computations; soft targets; dictionary; gather path."""
import pytest
import torch
import torch.nn.functional as F

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
