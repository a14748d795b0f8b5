"""Tests of the poolers against loop references: masked means, validity, order, gradients."""
import pytest
import torch

from ctglip.models.poolers import (AttentionOrganPooler, GlobalPooler, OrganGeMPooler,
                                   OrganMaskPooler, OrganMeanMaxPooler)
from ctglip.registry import POOLERS
from ctglip.utils.errors import ConfigError

K = 5


def _inputs(feat_size=4, factor=1, batch=2, channels=3, seed=0):
    """Random features and a label map ``factor`` times finer, with organ K absent."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch, channels, *(feat_size,) * 3, generator=gen)
    label = torch.randint(0, K, (batch,) + (feat_size * factor,) * 3, generator=gen)
    return feats, label


def _reference(feats, label, num_organs, reduce='mean'):
    """Loop over studies and organs on nearest-upsampled features: B x K x C, B x K."""
    factor = label.shape[-1] // feats.shape[-1]
    up = feats
    for axis in (2, 3, 4):
        up = up.repeat_interleave(factor, dim=axis)
    embeds = torch.zeros(feats.shape[0], num_organs, feats.shape[1])
    valid = torch.zeros(feats.shape[0], num_organs, dtype=torch.bool)
    for b in range(feats.shape[0]):
        for k in range(num_organs):
            mask = label[b] == k + 1
            if mask.any():
                voxels = up[b][:, mask]
                embeds[b, k] = voxels.mean(1) if reduce == 'mean' else voxels.amax(1)
                valid[b, k] = True
    return embeds, valid


@pytest.mark.parametrize('factor', [1, 2, 3])
def test_organ_mask_pooler_equals_loop_masked_mean(factor):
    feats, label = _inputs(factor=factor)
    embeds, valid = OrganMaskPooler()(feats, label, num_organs=K)
    ref_embeds, ref_valid = _reference(feats, label, K)
    assert embeds.shape == (2, K, 3) and valid.dtype == torch.bool
    torch.testing.assert_close(embeds, ref_embeds)
    assert torch.equal(valid, ref_valid)
    assert not valid[:, K - 1].any() and (embeds[:, K - 1] == 0).all()


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_organ_mask_pooler_gradient_equals_the_loop_reference(dtype):
    """The pooler's gradient is that of the loop reference, also where several organs share a
    cell (factor 2), in the map's dtype and layout."""
    feats, label = _inputs(factor=2, channels=4)
    feats = feats.to(dtype)
    weights = torch.randn(2, K, 4)
    mine = feats.clone().requires_grad_(True)
    (OrganMaskPooler()(mine, label, num_organs=K)[0] * weights).sum().backward()
    ref = feats.float().clone().requires_grad_(True)
    (_reference(ref, label, K)[0] * weights).sum().backward()
    assert mine.grad.dtype == dtype and mine.grad.is_contiguous()
    assert mine.grad.abs().sum() > 0
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(mine.grad.float(), ref.grad, **tol)


def test_gather_map_backward_equals_autograd_of_the_indexing():
    """``OrganCells.gather_map``'s own backward (one ``index_add_`` per study) gives autograd's
    gradient of the plain indexing, in float64, with shared cells and a study without organs;
    rows not grouped by study are refused."""
    from ctglip.models.poolers.base import organ_cells
    feats, label = _inputs(factor=2, batch=3, channels=4)
    label[1] = 0  # a study with no organ: no rows
    cells = organ_cells(label, (4, 4, 4), K)
    assert torch.unique(cells.batch * 64 + cells.cell).numel() < cells.cell.numel()  # shared
    feats = feats.double()
    grad_rows = torch.randn(cells.cell.numel(), 4, dtype=torch.float64)
    mine = feats.clone().requires_grad_(True)
    assert torch.equal(cells.gather_map(mine), feats.flatten(2)[cells.batch, :, cells.cell].float())
    from ctglip.models.poolers.base import _GatherMap
    _GatherMap.apply(mine, cells).backward(grad_rows)
    ref = feats.clone().requires_grad_(True)
    ref.flatten(2)[cells.batch, :, cells.cell].backward(grad_rows)
    assert mine.grad.is_contiguous() and mine.grad.shape == feats.shape
    torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: _GatherMap.apply(x, cells), (feats[:, :2].clone()
                                                                  .requires_grad_(True),))
    shuffled = organ_cells(label, (4, 4, 4), K)
    order = torch.randperm(shuffled.cell.numel(), generator=torch.Generator().manual_seed(0))
    for key in ('batch', 'cell', 'segment', 'voxels'):
        setattr(shuffled, key, getattr(shuffled, key)[order])
    with pytest.raises(ValueError, match='grouped by study'):
        _GatherMap.apply(mine, shuffled)


def test_study_overlaps_make_the_batch_overlap():
    """Per-study overlaps (the data loader's) joined by ``OrganCells.from_samples`` equal the
    batch's ``organ_cells`` to the bit; a size the stride does not divide gives None; an
    organ index outside the vocabulary is an error that says so."""
    from ctglip.models.poolers.base import OrganCells, organ_cells, study_organ_cells
    _, label = _inputs(factor=2, batch=3)
    parts = [study_organ_cells(one, 2) for one in label]
    assert all(p['grid'] == (4, 4, 4) for p in parts)
    joined = OrganCells.from_samples(parts, K)
    batch = organ_cells(label, (4, 4, 4), K)
    for key in ('batch', 'cell', 'segment', 'voxels', 'organ_voxels'):
        assert torch.equal(getattr(joined, key), getattr(batch, key)), key
    assert study_organ_cells(label[0], 3) is None  # 8 is not a multiple of 3
    with pytest.raises(ValueError, match='outside the organ vocabulary'):
        OrganCells.from_samples(parts, 2)


def test_organ_mask_pooler_anisotropic_factors():
    feats = torch.randn(1, 2, 2, 4, 3)
    label = torch.randint(0, K + 1, (1, 6, 4, 6))
    torch.testing.assert_close(OrganMaskPooler()(feats, label, K)[0],
                               _reference_aniso(feats, label))


def _reference_aniso(feats, label):
    up = feats
    for axis, f in zip((2, 3, 4), (3, 1, 2)):
        up = up.repeat_interleave(f, dim=axis)
    out = torch.zeros(1, K, 2)
    for k in range(K):
        mask = label[0] == k + 1
        if mask.any():
            out[0, k] = up[0][:, mask].mean(1)
    return out


def test_organ_mask_pooler_is_invariant_to_batch_order():
    feats, label = _inputs(factor=2, batch=3)
    pooler = OrganMaskPooler(num_organs=K)
    embeds, valid = pooler(feats, label)
    perm = torch.tensor([2, 0, 1])
    embeds_p, valid_p = pooler(feats[perm], label[perm])
    torch.testing.assert_close(embeds_p, embeds[perm])
    assert torch.equal(valid_p, valid[perm])


def test_single_voxel_organ_is_valid_and_gets_its_cell():
    feats = torch.randn(1, 3, 2, 2, 2)
    label = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    label[0, 5, 1, 6] = 2  # one voxel in feature cell (1, 0, 1)
    embeds, valid = OrganMaskPooler()(feats, label, num_organs=K)
    assert valid[0].tolist() == [False, True, False, False, False]
    torch.testing.assert_close(embeds[0, 1], feats[0, :, 1, 0, 1])


def test_min_voxels_sets_validity_at_label_resolution():
    feats = torch.randn(1, 3, 2, 2, 2)
    label = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    label[0, :2, :2, :2] = 1  # 8 voxels
    label[0, 3, 3, 3] = 2     # 1 voxel
    embeds, valid = OrganMaskPooler(min_voxels=4)(feats, label, num_organs=2)
    assert valid[0].tolist() == [True, False]
    assert (embeds[0, 1] == 0).all()


def test_label_map_errors_name_the_shapes():
    pooler = OrganMaskPooler(num_organs=K)
    feats = torch.randn(1, 3, 4, 4, 4)
    with pytest.raises(ValueError, match=r'\(6, 8, 8\).*\(4, 4, 4\)'):
        pooler(feats, torch.zeros(1, 6, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match='num_organs=5'):
        pooler(feats, torch.full((1, 4, 4, 4), K + 1))
    with pytest.raises(ValueError, match='integer'):
        pooler(feats, torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match='num_organs'):
        OrganMaskPooler()(feats, torch.zeros(1, 4, 4, 4, dtype=torch.long))


def test_label_map_with_channel_axis_is_accepted():
    feats, label = _inputs(factor=2)
    pooler = OrganMaskPooler(num_organs=K)
    torch.testing.assert_close(pooler(feats, label[:, None])[0], pooler(feats, label)[0])


def test_global_pooler():
    feats, _ = _inputs()
    embeds, valid = GlobalPooler(num_organs=K, in_channels=3)(feats, None)
    assert embeds.shape == (2, 1, 3) and valid.all()
    torch.testing.assert_close(embeds[:, 0], feats.mean((2, 3, 4)))


def test_gem_pooler_p1_is_mean_and_large_p_approaches_max():
    feats, label = _inputs(factor=2)
    feats = feats.abs()
    mean, valid = OrganGeMPooler(p=1.0, learn_p=False)(feats, label, num_organs=K)
    torch.testing.assert_close(mean, _reference(feats, label, K)[0])
    near_max, _ = OrganGeMPooler(p=200.0)(feats, label, num_organs=K)
    ref_max = _reference(feats, label, K, reduce='max')[0]
    assert torch.isfinite(near_max).all()
    assert ((ref_max - near_max)[valid] >= -1e-5).all()
    torch.testing.assert_close(near_max, ref_max, rtol=0.05, atol=0.05)


def test_gem_pooler_gradients_are_finite_with_absent_organs():
    feats, label = _inputs(factor=2)
    feats.requires_grad_(True)
    pooler = OrganGeMPooler(num_organs=K)
    embeds, valid = pooler(feats, label)
    embeds.sum().backward()
    assert not valid[:, K - 1].any()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
    assert torch.isfinite(pooler.p.grad) and pooler.p.grad != 0


def test_mean_max_pooler_cat_and_sum():
    feats, label = _inputs(factor=2)
    pooler = OrganMeanMaxPooler(mode='cat')
    assert pooler.out_channels(3) == 6
    embeds, valid = pooler(feats, label, num_organs=K)
    ref_mean, _ = _reference(feats, label, K)
    ref_max, _ = _reference(feats, label, K, reduce='max')
    torch.testing.assert_close(embeds, torch.cat([ref_mean, ref_max], -1))
    summed, _ = OrganMeanMaxPooler(mode='sum')(feats, label, num_organs=K)
    torch.testing.assert_close(summed, ref_mean + ref_max)
    with pytest.raises(ConfigError):
        OrganMeanMaxPooler(mode='median')


def test_attention_pooler_no_nan_with_absent_organs_and_gradients_flow():
    feats, label = _inputs(factor=2, channels=8)
    feats.requires_grad_(True)
    pooler = AttentionOrganPooler(num_organs=K, in_channels=8, num_heads=2, overlap_bias=True)
    embeds, valid = pooler(feats, label)
    assert embeds.shape == (2, K, 8)
    assert torch.isfinite(embeds).all()
    assert not valid[:, K - 1].any() and (embeds[:, K - 1] == 0).all()
    embeds.sum().backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
    assert pooler.queries.grad[:K - 1].abs().sum() > 0
    assert (pooler.queries.grad[K - 1] == 0).all()  # an absent organ's query gets nothing


def test_attention_pooler_matches_dense_masked_attention():
    feats, label = _inputs(factor=1, channels=4, batch=1)
    pooler = AttentionOrganPooler(num_organs=K, in_channels=4, num_heads=2)
    embeds, valid = pooler(feats, label)
    tokens = pooler.norm(feats.flatten(2).transpose(1, 2))[0]                 # N x C
    keys, values = pooler.kv_proj(tokens).chunk(2, -1)
    queries = pooler.q_proj(pooler.queries)
    mask = torch.stack([label[0].flatten() == k + 1 for k in range(K)])       # K x N
    out = []  # per head: softmax over the organ's cells only (-inf elsewhere)
    for h in range(2):
        sl = slice(2 * h, 2 * h + 2)
        logits = queries[:, sl] @ keys[:, sl].T / 2 ** 0.5
        logits = logits.masked_fill(~mask, float('-inf'))
        weights = torch.nan_to_num(logits.softmax(-1))
        out.append(weights @ values[:, sl])
    ref = pooler.out_proj(torch.cat(out, -1)) * valid[0, :, None]
    torch.testing.assert_close(embeds[0], ref)


def test_attention_pooler_needs_sizes():
    with pytest.raises(ConfigError, match='num_organs and in_channels'):
        AttentionOrganPooler()


@pytest.mark.parametrize('pooler_cfg', [
    dict(type='OrganMaskPooler'), dict(type='GlobalPooler'), dict(type='OrganGeMPooler'),
    dict(type='OrganMeanMaxPooler'), dict(type='AttentionOrganPooler')])
def test_poolers_build_with_model_kwargs_and_pool(pooler_cfg):
    pooler = POOLERS.build(dict(pooler_cfg, num_organs=K, in_channels=8))
    feats, label = _inputs(factor=2, channels=8)
    embeds, valid = pooler(feats, label, num_organs=K)
    assert embeds.shape[-1] == pooler.out_channels(8)
    assert embeds.shape[:2] == valid.shape
    assert torch.isfinite(embeds).all()
