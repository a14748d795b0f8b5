"""The raw-intensity skip (OrganIntensityStats), the ladder backbones and the projection norm."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from ctglip.datasets import CTReportDataset
from ctglip.models.backbones import IdentityBackbone, PlainConv3D
from ctglip.models.heads import ProjectionHead
from ctglip.models.poolers import OrganIntensityStats
from ctglip.models.poolers.intensity import _interior
from ctglip.registry import MODELS
from ctglip.utils.errors import ConfigError


def windowed(hu, window=(-1000.0, 1000.0)):
    return (hu - window[0]) / (window[1] - window[0])


def test_stats_by_hand():
    skip = OrganIntensityStats(hu_edges=(0.0, 100.0), relative_edges=(-50.0, 50.0),
                               reference_count=math.e - 1)  # log1p(count) / 1
    label = torch.zeros(1, 7, 7, 7, dtype=torch.long)
    label[0, 1:6, 1:6, 1:6] = 1  # organ 1: a 5^3 cube, its interior the inner 3^3
    label[0, 0, 0, 0] = 2  # organ 2: one voxel, no interior
    hu = torch.full((1, 1, 7, 7, 7), 40.0)
    hu[0, 0, 3, 3, 3] = 500.0  # a bright voxel in organ 1's interior
    hu[0, 0, 0, 0, 0] = -100.0
    out = skip(windowed(hu), label, 3)
    assert out.shape == (1, 3, skip.out_channels) and skip.out_channels == 2 * (3 + 3) + 3
    whole, interior = out[0, 0, :6], out[0, 0, 6:12]
    n = 125
    assert whole[0] == pytest.approx(math.log1p(n))
    assert whole[1] == pytest.approx((124 * 40 + 500) / n / 500, rel=1e-5)
    assert whole[3:].tolist() == pytest.approx([0.0, math.log1p(124), math.log1p(1)])
    assert interior[0] == pytest.approx(math.log1p(27))
    assert interior[1] == pytest.approx((26 * 40 + 500) / 27 / 500, rel=1e-5)
    assert interior[3:].tolist() == pytest.approx([0.0, math.log1p(26), math.log1p(1)])
    # relative to the interior mean (57 HU): 26 voxels at -17 (middle bin), one at +443
    assert out[0, 0, 12:].tolist() == pytest.approx([0.0, math.log1p(26), math.log1p(1)])
    # organ 2 has no interior: zeros there, its one voxel counted over the whole organ
    organ2 = out[0, 1]
    assert organ2[0] == pytest.approx(math.log1p(1)) and organ2[3] == pytest.approx(math.log1p(1))
    assert organ2[6:12].abs().sum() == 0
    assert out[0, 2].abs().sum() == 0  # absent organ


def test_interior_is_the_six_neighbour_erosion():
    label = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    label[0, 1:5, 1:5, 1:5] = 3
    inner = _interior(label)[0]
    assert inner.sum() == 8 and inner[2:4, 2:4, 2:4].all()


def test_stats_see_a_one_voxel_stone_that_the_mean_dilutes():
    skip = OrganIntensityStats()
    label = torch.ones(2, 8, 8, 8, dtype=torch.long)
    hu = torch.full((2, 1, 8, 8, 8), 30.0) + torch.randn(2, 1, 8, 8, 8)
    hu[1, 0, 4, 4, 4] = 800.0
    out = skip(windowed(hu), label, 1)
    mean_gap = (out[1, 0, 1] - out[0, 0, 1]).abs()
    assert mean_gap < 0.005  # the mean hardly moves ...
    assert (out[1, 0] - out[0, 0]).abs().max() > 0.05  # ... a bin count does


def test_bad_settings_and_inputs_fail_clearly():
    with pytest.raises(ConfigError, match='window'):
        OrganIntensityStats(window=(100, -100))
    with pytest.raises(ConfigError, match='hu_edges'):
        OrganIntensityStats(hu_edges=(10.0, 0.0))
    with pytest.raises(ValueError, match='differ'):
        OrganIntensityStats()(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 4, 4, 5).long(), 2)


def test_context_features_compare_each_organ_with_the_reference_organs():
    plain, stats = OrganIntensityStats(), OrganIntensityStats(context_organs=('spleen', 'liver'))
    assert stats.out_channels == plain.out_channels + 4
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 2:8, 2:8, 2:8] = 5  # liver (label 5) in both studies
    label[0, 9:14, 9:14, 9:14] = 1  # spleen (label 1) in study 0 only
    hu = torch.zeros(2, 1, 16, 16, 16)
    hu[:, :, 2:8, 2:8, 2:8] = torch.tensor([100.0, 40.0]).view(2, 1, 1, 1, 1)  # liver HU
    hu[0, :, 9:14, 9:14, 9:14] = 40.0  # spleen HU
    feats = stats(windowed(hu), label, 104)
    assert torch.equal(feats[..., :plain.out_channels], plain(windowed(hu), label, 104))
    context = feats[..., plain.out_channels:]  # in view: spleen, liver; differences to them
    assert context[0, 4].tolist() == pytest.approx([1.0, 1.0, (100.0 - 40.0) / 500.0, 0.0])
    assert context[1, 4].tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0])  # no spleen in view
    assert context[0, 0].tolist() == pytest.approx([1.0, 1.0, 0.0, (40.0 - 100.0) / 500.0])
    assert not context[:, 2, 2:].any()  # an organ not in view gets no difference
    # the global pooler's one region reads the references from the full label map
    whole = stats(windowed(hu), (label > 0).long(), 1, context_label=label)
    assert whole.shape == (2, 1, stats.out_channels)
    assert whole[1, 0, plain.out_channels:].tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='context_label'):
        stats(windowed(hu), (label > 0).long(), 1)
    with pytest.raises(ConfigError, match='not organs'):
        OrganIntensityStats(context_organs=('spleen', 'kidney'))


def test_ladder_backbones():
    x = torch.rand(2, 1, 8, 8, 8)
    ident = IdentityBackbone()
    assert ident(x) is x and (ident.out_channels, ident.out_stride) == (1, 1)
    conv = PlainConv3D(channels=4, num_layers=2, stride=2, norm=True)
    assert conv(x).shape == (2, 4, 4, 4, 4) and conv.size_divisor == 2


def test_projection_layernorm():
    head = ProjectionHead(6, 4, norm='layernorm')
    x = torch.randn(3, 6) * 100 + 50
    assert torch.allclose(head(x), head.net(torch.nn.functional.layer_norm(x, (6,))), atol=1e-5)
    with pytest.raises(ConfigError, match='norm'):
        ProjectionHead(6, 4, norm='batch')


@pytest.mark.parametrize('variant', ['ctglip_nnunet_104organ.py', 'clip_nnunet_104organ.py'])
@pytest.mark.parametrize('context', [(), ('spleen', 'aorta')])
def test_model_with_skip_trains_and_predicts(variant, context, tiny_bert, tiny_data):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ctglip', variant))
    cfg.model.text_encoder.model_path = tiny_bert
    cfg.model.backbone.arch = 'tiny'
    cfg.model.intensity_skip = dict(type='OrganIntensityStats', context_organs=context)
    model = MODELS.build(cfg.model)
    channels = model.backbone.out_channels + model.intensity_skip.out_channels
    assert model.pooled_channels == channels
    assert model.image_proj.net.in_features == channels
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py'))
    ds = CTReportDataset(tiny_data, split=None, pipeline=tiny.test_pipeline)
    items = [ds[i] for i in range(2)]
    batch = dict(inputs=[i['inputs'] for i in items],
                 data_samples=[i['data_samples'] for i in items])
    data = model.data_preprocessor(dict(batch), True)
    embeds, valid = model.embed_organs(data['inputs'], data['data_samples'])
    assert embeds.shape[-1] == channels
    if model.is_global():  # the whole study's labelled voxels as one region
        assert embeds.shape[1] == 1 and valid.all()
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if k.startswith('loss_'))
    assert torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(dict(batch)), mode='predict')
    assert out[0].abn_scores
