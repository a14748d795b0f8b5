"""CTGLIP built from every shipped config: loss, predict, temperature, the gather wiring."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from ctglip.datasets import CTReportDataset
from ctglip.registry import MODELS

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'ctglip', '*_104organ.py')))


def small_model_cfg(path, bert):
    cfg = Config.fromfile(path)
    cfg.model.text_encoder.model_path = bert
    cfg.model.backbone.arch = 'tiny'
    return cfg


def _studies(tiny_data, organ_cells_stride=None):
    """Four tiny studies through the tiny config's test pipeline, packed with
    ``PackCTInputs(organ_cells_stride=...)``."""
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'))
    pipeline = [dict(t, organ_cells_stride=organ_cells_stride) if t['type'] == 'PackCTInputs'
                else t for t in tiny.test_pipeline]
    ds = CTReportDataset(tiny_data, split=None, pipeline=pipeline)
    items = [ds[i] for i in range(4)]
    return dict(inputs=[i['inputs'] for i in items],
                data_samples=[i['data_samples'] for i in items])


@pytest.fixture(scope='module')
def batch(tiny_data):
    return _studies(tiny_data)


def test_all_eight_variants_exist():
    names = {osp.basename(c) for c in CONFIGS}
    for b in ('mit', 'nnunet'):
        assert {f'clip_{b}_104organ.py', f'anatomy_{b}_104organ.py',
                f'ctglip-nodict_{b}_104organ.py', f'ctglip_{b}_104organ.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_trains_and_predicts(path, tiny_bert, batch):
    cfg = small_model_cfg(path, tiny_bert)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(dict(batch), True)
    losses = model(**data, mode='loss')
    terms = [k for k in losses if k.startswith('loss_')]
    assert terms and all(torch.isfinite(losses[k]) for k in terms)
    sum(losses[k] for k in terms).backward()
    assert model.logit_scale.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(dict(batch)), mode='predict')
    sample = out[0]
    assert sample.organ_logits.shape == (104, 104) and sample.organ_valid.sum() == 5
    assert set(sample.abn_scores) == {'liver', 'spleen', 'kidney_left', 'kidney_right',
                                      'pancreas'}
    assert all(0 <= p <= 1 for s in sample.abn_scores.values() for p in s.values())


def test_variants_differ_only_in_the_swapped_parts():
    full = Config.fromfile(osp.join(REPO, 'configs/ctglip/ctglip_mit_104organ.py'))
    for name in ('clip', 'anatomy', 'ctglip-nodict'):
        variant = Config.fromfile(osp.join(REPO, f'configs/ctglip/{name}_mit_104organ.py'))
        a, b = full.to_dict(), variant.to_dict()
        assert a['train_dataloader'] == b['train_dataloader']
        assert a['optim_wrapper'] == b['optim_wrapper']
        assert a['model']['backbone'] == b['model']['backbone']
        assert a['model']['text_encoder'] == b['model']['text_encoder']


def test_tensor_mode_and_temperature_clamp(tiny_bert, batch):
    model = MODELS.build(small_model_cfg(CONFIGS[0], tiny_bert).model)
    data = model.data_preprocessor(dict(batch))
    feats = model(**data, mode='tensor')
    assert feats.shape[:2] == (4, model.backbone.out_channels)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale() == model.max_logit_scale


def test_gather_wiring_matches_a_single_process_batch(tiny_bert, batch, monkeypatch):
    """Simulate rank 0 of 2: gathered rows, studies and embeddings give the loss of one
    process holding both halves."""
    import ctglip.models.ctglip as module
    cfg = small_model_cfg(osp.join(REPO, 'configs/ctglip/ctglip_mit_104organ.py'), tiny_bert)
    model = MODELS.build(cfg.model).eval()  # eval: fixed anatomy template
    data = model.data_preprocessor(dict(batch))
    single = model.loss(data['inputs'], data['data_samples'])

    half = len(batch['inputs']) // 2
    inputs_a, samples_a = data['inputs'][:half], data['data_samples'][:half]
    inputs_b, samples_b = data['inputs'][half:], data['data_samples'][half:]
    with torch.no_grad():
        emb_b, valid_b = model.embed_organs(inputs_b, samples_b)
        emb_b = torch.nn.functional.normalize(model.image_proj(emb_b[valid_b]), dim=-1)
    rows_b = [(b + half, model.organ_vocab[k]) for b, k in torch.nonzero(valid_b).tolist()]
    studies_b = [module._study(s) for s in samples_b]

    def fake_objects(items):
        if items and isinstance(items[0], int):
            return items + [len(samples_b)]
        if items and isinstance(items[0], tuple):
            return items + rows_b
        return items + studies_b

    monkeypatch.setattr(module, 'gather_objects', fake_objects)
    monkeypatch.setattr(module, 'gather_features', lambda x: torch.cat([x, emb_b]))
    rank0 = model.loss(inputs_a, samples_a)
    for key in ('loss_anatomy', 'loss_diagnosis'):
        assert torch.allclose(single[key], rank0[key], atol=1e-5), key


@pytest.mark.parametrize('right', [True, False])
def test_loader_organ_cells_give_the_same_loss(tiny_bert, tiny_data, batch, right,
                                               monkeypatch):
    """Overlaps computed by the loader at the pooled map's stride give the loss of the
    in-step overlap without computing it in the step; a wrong stride is noticed, warned
    about once, and the step computes the overlap itself: the same loss either way."""
    import ctglip.models.poolers.base as base
    cfg = small_model_cfg(osp.join(REPO, 'configs/ctglip/ctglip_nnunet_104organ.py'), tiny_bert)
    model = MODELS.build(cfg.model).eval()  # eval: fixed anatomy template
    data = model.data_preprocessor(dict(batch))
    plain = model.loss(**data)
    with torch.no_grad():
        stride = data['inputs'].shape[-1] // model.extract_feat(data['inputs']).shape[-1]
    data = model.data_preprocessor(_studies(tiny_data, stride if right else 2 * stride))
    assert all('organ_cells' in s for s in data['data_samples'])
    calls = []
    real = base.organ_cells
    monkeypatch.setattr(base, 'organ_cells', lambda *a, **k: calls.append(1) or real(*a, **k))
    with_cells = model.loss(**data)
    assert len(calls) == (0 if right else 1)
    assert getattr(model, '_warned_cells_grid', False) == (not right)
    for key in ('loss_anatomy', 'loss_diagnosis'):
        assert torch.equal(plain[key], with_cells[key]), key


def test_padding_drops_the_loader_organ_cells(tiny_data):
    """A label map that the batch pads gets a new grid: its precomputed overlap is dropped
    (the pooler then computes the padded one), an unpadded study keeps its own."""
    from ctglip.models.data_preprocessors import CTDataPreprocessor
    from ctglip.models.poolers.base import study_organ_cells
    from ctglip.structures import CTDataSample
    samples = []
    for size in (32, 30):
        sample = CTDataSample()
        sample.organ_label = torch.ones(size, size, size, dtype=torch.long)
        sample.set_metainfo(dict(organ_cells=study_organ_cells(sample.organ_label, 2)))
        samples.append(sample)
    out = CTDataPreprocessor(size_divisor=32)(
        dict(inputs=[torch.zeros(1, 32, 32, 32), torch.zeros(1, 30, 30, 30)],
             data_samples=samples))
    kept, padded = out['data_samples']
    assert 'organ_cells' in kept and 'organ_cells' not in padded
    assert padded.organ_label.shape == (32, 32, 32)
