"""CTSegmentor, its decoders, and its initialisation from a pretraining checkpoint."""
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from ctglip.models.segmentors.pretrained import first_mismatch, load_encoder, resolve_checkpoint
from ctglip.registry import BACKBONES, DECODERS, MODELS
from ctglip.structures import CTDataSample
from ctglip.utils.errors import CheckpointError, ConfigError, DataError, UnknownTypeError

NNUNET = dict(type='NNUNetEncoder3D', arch='tiny', out_indices=(0, 1, 2))
MIT = dict(type='MiT3D', arch='tiny', out_indices=(0, 1, 2, 3, 4))
VOCAB_LIVER = 5  # totalseg_v1 label of the liver


def segmentor(backbone=NNUNET, decoder=None, **kwargs):
    decoder = decoder or (dict(type='UNetDecoder3D') if backbone['type'] == 'NNUNetEncoder3D'
                          else dict(type='SegFormerDecoder3D', dim=8))
    return MODELS.build(dict(type='CTSegmentor', backbone=backbone, decoder=decoder,
                             roi_size=(16, 16, 16), sw_overlap=0.25, **kwargs))


def sample(shape, case='c', tumor=True):
    s = CTDataSample(metainfo=dict(case_id=case, img_shape=tuple(shape)))
    label = torch.zeros(shape, dtype=torch.long)
    label[2:-2, 2:-2, 2:-2] = VOCAB_LIVER
    s.organ_label = label
    if tumor:
        mask = torch.zeros(shape, dtype=torch.long)
        mask[4:7, 4:7, 4:7] = 1
        s.tumor_mask = mask
    return s


# -- decoders -----------------------------------------------------------------------------------
@pytest.mark.parametrize('backbone', [NNUNET, MIT], ids=['nnunet', 'mit'])
def test_decoder_logits_have_the_input_size(backbone):
    model = segmentor(backbone)
    x = torch.rand(2, 1, 16, 16, 32)
    assert model(x, mode='tensor').shape == (2, 2, 16, 16, 32)


def test_decoders_take_the_backbone_levels():
    unet = DECODERS.build(dict(type='UNetDecoder3D', in_channels=(8, 16, 32),
                               in_strides=(1, 2, 4), num_classes=2))
    feats = [torch.zeros(1, 8, 8, 8, 8), torch.zeros(1, 16, 4, 4, 4), torch.zeros(1, 32, 2, 2, 2)]
    assert unet(feats).shape == (1, 2, 8, 8, 8) and unet.out_stride == 1
    mlp = DECODERS.build(dict(type='SegFormerDecoder3D', in_channels=(8, 16, 32, 8),
                              in_strides=(2, 4, 8, 2), num_classes=2, dim=4))
    assert mlp(feats[:3] + [torch.zeros(1, 8, 8, 8, 8)]).shape == (1, 2, 8, 8, 8)
    with pytest.raises(ValueError, match='channels'):
        unet(feats[:2])
    with pytest.raises(ConfigError, match='finest first'):
        DECODERS.build(dict(type='UNetDecoder3D', in_channels=(8, 16), in_strides=(2, 1)))


def test_unknown_decoder_names_the_registry():
    with pytest.raises(UnknownTypeError, match="'decoder' registry.*UNetDecoder3D"):
        DECODERS.build(dict(type='UNetDecoder', in_channels=(8,), in_strides=(1,)))


def test_single_map_backbone_without_levels():
    model = segmentor(dict(type='PlainConv3D', channels=4), dict(type='UNetDecoder3D'))
    assert model.decoder.in_channels == (4,)
    assert model(torch.rand(1, 1, 16, 16, 16), mode='tensor').shape == (1, 2, 16, 16, 16)


def test_roi_size_must_fit_the_backbone():
    with pytest.raises(ConfigError, match='size_divisor'):
        MODELS.build(dict(type='CTSegmentor', backbone=MIT, decoder=dict(type='SegFormerDecoder3D'),
                          roi_size=(20, 20, 20)))


# -- training and inference ---------------------------------------------------------------------
def test_loss_is_dice_ce_and_needs_the_tumor_mask():
    model = segmentor()
    samples = [sample((16, 16, 16), 'a'), sample((16, 16, 16), 'b')]
    losses = model(torch.rand(2, 1, 16, 16, 16), samples, mode='loss')
    assert losses['loss_seg'].requires_grad and torch.isfinite(losses['loss_seg'])
    assert float(losses['tumor_fraction']) == pytest.approx(27 / 16 ** 3)
    with pytest.raises(DataError, match="case 'x' has no tumor_mask"):
        model(torch.rand(1, 1, 16, 16, 16), [sample((16, 16, 16), 'x', tumor=False)], mode='loss')


def test_sliding_window_returns_a_mask_of_the_input_shape():
    """A volume larger than the window (and of no multiple of it), padded in its batch."""
    model = segmentor().eval()
    shape = (37, 21, 26)
    small = (16, 16, 16)
    batch = model.data_preprocessor(dict(inputs=[torch.rand(1, *shape), torch.rand(1, *small)],
                                         data_samples=[sample(shape, 'big'),
                                                       sample(small, 'small')]))
    assert tuple(batch['inputs'].shape[2:]) == (40, 24, 28)  # padded to the size divisor 4
    with torch.no_grad():
        out = model(**batch, mode='predict')
    big = out[0]
    assert tuple(big.pred_tumor_mask.shape) == shape
    assert tuple(big.organ_label.shape) == shape and tuple(big.tumor_mask.shape) == shape
    assert set(big.pred_tumor_mask.unique().tolist()) <= {0, 1}
    assert tuple(out[1].pred_tumor_mask.shape) == small
    assert set(big.tumor_scores) == {'liver'}  # the only tumor organ in view
    assert 0.0 <= big.tumor_scores['liver'] <= 1.0


def test_detection_read_out_is_the_top_k_mean_inside_the_organ():
    model = segmentor(score_topk=2)
    prob = torch.zeros(8, 8, 8)
    label = torch.zeros(8, 8, 8, dtype=torch.long)
    label[:4] = VOCAB_LIVER
    prob[0, 0, 0], prob[0, 0, 1], prob[0, 0, 2] = 0.9, 0.7, 0.1
    prob[6, 6, 6] = 1.0  # outside the liver: not the liver's
    scores = model.organ_scores(prob, label, ['liver', 'pancreas'])
    assert scores == {'liver': pytest.approx(0.8)}  # pancreas not in view: no score


def test_small_predicted_components_are_removed_from_mask_and_score(monkeypatch):
    """min_tumor_voxels: components under the size leave the mask and the organ's score
    (26-connected voxels count as one component); the default keeps everything; a bad value
    is refused."""
    from ctglip.models.segmentors.ct_segmentor import small_components
    mask = torch.zeros(10, 10, 10, dtype=torch.bool)
    mask[1:4, 1:4, 1:4] = True  # 27 voxels
    mask[7, 7, 7] = mask[8, 8, 8] = True  # 2 voxels touching at a corner: one component
    mask[7, 1, 1] = True  # 1 voxel
    small = small_components(mask, 3)
    assert int(small.sum()) == 3 and not small[1:4, 1:4, 1:4].any()
    assert not small_components(torch.zeros_like(mask), 3).any()

    big = torch.zeros(16, 16, 16, dtype=torch.bool)  # one sliding window (roi 16^3)
    big[:10, :10, :10] = mask
    prob = torch.full((1, 2, 16, 16, 16), 0.1)
    prob[0, 0] = 0.9
    prob[0, 1][big], prob[0, 0][big] = 0.9, 0.1
    s = sample((16, 16, 16), tumor=False)
    s.organ_label[:] = 0
    s.organ_label[6:9, 6:9, 6:9] = VOCAB_LIVER  # the liver holds only the 2-voxel blob
    outs = {}
    for min_voxels in (0, 3):
        model = segmentor(min_tumor_voxels=min_voxels, score_topk=1, sw_mode='constant').eval()
        monkeypatch.setattr(model, 'logits', lambda x: prob.log().expand(x.shape[0], -1, -1,
                                                                         -1, -1))
        outs[min_voxels] = model.predict(torch.zeros(1, 1, 16, 16, 16), [s.clone()])[0]
    assert int(outs[0].pred_tumor_mask.sum()) == 30
    assert int(outs[3].pred_tumor_mask.sum()) == 27
    assert outs[0].tumor_scores['liver'] == pytest.approx(0.9)
    assert outs[3].tumor_scores['liver'] == pytest.approx(0.1)  # the background's
    for bad in (-1, 2.5):
        with pytest.raises(ConfigError, match='min_tumor_voxels'):
            segmentor(min_tumor_voxels=bad)


def test_labelled_organs_are_always_scored():
    model = segmentor(tumor_organs=('pancreas',)).eval()
    s = sample((16, 16, 16))
    s.set_metainfo(dict(tumor_labels={'liver': 1}))
    with torch.no_grad():
        out = model.predict(torch.rand(1, 1, 16, 16, 16), [s])[0]
    assert set(out.tumor_scores) == {'liver'}


def test_predictions_feed_the_tumor_metrics():
    from ctglip.evaluation.metrics import TumorDetection, TumorDice
    model = segmentor().eval()
    samples = []
    for i in range(4):
        s = sample((16, 16, 16), f'c{i}', tumor=True)
        if i % 2:
            s.tumor_mask.zero_()
        s.set_metainfo(dict(tumor_labels={'liver': int(not i % 2)}))
        samples.append(s)
    with torch.no_grad():
        out = model.predict(torch.rand(4, 1, 16, 16, 16), samples)
    detection = TumorDetection(n_bootstrap=0)
    dice = TumorDice(organs=['liver'], gt_key='tumor_mask')
    detection.process(None, out)
    dice.process(None, out)
    assert 0 <= detection.compute_metrics(detection.results)['auc'] <= 1
    assert 0 <= dice.compute_metrics(dice.results)['dice/liver'] <= 1


# -- initialisation from pretraining ------------------------------------------------------------
def pretraining_checkpoint(path, backbone_cfg, seed=1):
    """A checkpoint shaped like CTGLIP's: the backbone under 'backbone.' and other parts."""
    torch.manual_seed(seed)
    backbone = BACKBONES.build(dict(backbone_cfg, out_indices=None))
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({'image_proj.proj.weight': torch.rand(8, 8), 'logit_scale': torch.tensor(2.0)})
    torch.save(dict(meta=dict(), state_dict=state), path)
    return state


@pytest.mark.parametrize('backbone', [NNUNET, MIT], ids=['nnunet', 'mit'])
def test_pretrained_init_changes_exactly_the_encoder(backbone, tmp_path):
    ckpt = tmp_path / 'iter_3.pth'
    state = pretraining_checkpoint(ckpt, backbone)
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    init = dict(type='PretrainedEncoder', checkpoint=str(tmp_path / 'last_checkpoint'))
    torch.manual_seed(2)
    model = segmentor(dict(backbone, init_cfg=init))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with DefaultScope.overwrite_default_scope('ctglip'):
        model.init_weights()
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    encoder = {k for k in after if k.startswith('backbone.')}
    # every encoder tensor is the checkpoint's; nothing else moved (the decoder keeps its init)
    assert all(torch.equal(after[k], state[k]) for k in encoder)
    assert changed and changed <= encoder
    assert {k for k in encoder if after[k].is_floating_point() and after[k].std() > 0} <= changed


def test_resolve_checkpoint_forms(tmp_path):
    ckpt = tmp_path / 'iter_2.pth'
    ckpt.write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text('/somewhere/else/iter_2.pth')  # a moved work dir
    assert resolve_checkpoint(str(ckpt)) == str(ckpt)
    assert resolve_checkpoint(str(tmp_path)) == str(ckpt)
    assert resolve_checkpoint(str(tmp_path / 'last_checkpoint')) == str(ckpt)


def test_missing_pretraining_checkpoint_names_the_command(tmp_path):
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint(str(tmp_path / 'work' / 'last_checkpoint'),
                           'configs/ctglip/ctglip_nnunet_104organ.py')
    message = str(e.value)
    assert '\n' not in message
    assert 'python tools/train.py configs/ctglip/ctglip_nnunet_104organ.py' in message


def test_checkpoint_of_another_arch_fails_in_one_line(tmp_path):
    ckpt = tmp_path / 'mit.pth'
    pretraining_checkpoint(ckpt, MIT)
    with pytest.raises(ConfigError) as e:
        load_encoder(BACKBONES.build(NNUNET), str(ckpt))
    message = str(e.value)
    assert '\n' not in message
    assert 'first mismatched key backbone.encoder.0.0.0.weight: model (8, 1, 3, 3, 3), ' \
           'checkpoint absent' in message
    wider = dict(MIT, arch=dict(base='tiny', embed_dims=(8, 16, 32, 64)))
    with pytest.raises(ConfigError) as e:
        load_encoder(BACKBONES.build(wider), str(ckpt))
    assert ('first mismatched key backbone.stages.3.patch_embed.proj.weight: model '
            '(64, 32, 3, 3, 3), checkpoint (32, 32, 3, 3, 3)') in str(e.value)
    with pytest.raises(ConfigError, match="no tensors under the prefix 'encoder.'"):
        load_encoder(BACKBONES.build(MIT), str(ckpt), prefix='encoder.')


def test_first_mismatch_reports_keys_only_the_checkpoint_has():
    own = {'a': torch.zeros(2)}
    assert first_mismatch(own, {'a': torch.ones(2)}) is None
    assert first_mismatch(own, {'a': torch.ones(2), 'b': torch.ones(3)}) == ('b', None, (3,), 1)


# -- frozen-encoder warm-up ---------------------------------------------------------------------
def test_freeze_encoder_hook_freezes_then_unfreezes():
    from types import SimpleNamespace

    from ctglip.registry import HOOKS
    model = segmentor()
    hook = HOOKS.build(dict(type='FreezeEncoderHook', iters=2))
    runner = SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    runner.iter = 2
    hook.before_train_iter(runner, 2)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match='integer'):
        HOOKS.build(dict(type='FreezeEncoderHook', iters=-1))


def test_frozen_encoder_is_left_alone_by_adamw():
    model = segmentor()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    before = [p.clone() for p in model.backbone.parameters()]
    opt = torch.optim.AdamW([p for p in model.parameters()], lr=0.1, weight_decay=0.5)
    loss = model(torch.rand(1, 1, 16, 16, 16), [sample((16, 16, 16))], mode='loss')['loss_seg']
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))


# -- layer-wise learning-rate decay ---------------------------------------------------------------
def layer_decay_groups(model, rate=0.5, **paramwise):
    """{parameter name: lr} of the optimizer LayerDecayOptimWrapperConstructor builds."""
    from mmengine.optim import build_optim_wrapper
    with DefaultScope.overwrite_default_scope('ctglip'):
        wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.01),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=rate, **paramwise)))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = wrapper.optimizer.param_groups
    assert sorted(names[id(g['params'][0])] for g in groups) == sorted(names.values())
    return {names[id(g['params'][0])]: g['lr'] for g in groups}


@pytest.mark.parametrize('backbone', [NNUNET, MIT], ids=['nnunet', 'mit'])
def test_layer_decay_scales_the_encoder_by_depth_and_leaves_the_decoder(backbone):
    model = segmentor(backbone)
    lrs = layer_decay_groups(model, rate=0.5)
    for name, lr in lrs.items():
        if not name.startswith('backbone.'):
            assert lr == 1.0, name
            continue
        layer, num_layers = model.backbone.get_layer_depth(name[len('backbone.'):])
        assert lr == pytest.approx(0.5 ** (num_layers - 1 - layer)), name
    if backbone is NNUNET:  # stages get slower toward the input; tiny: 3 stages, 2 up levels
        first = [lrs[f'backbone.encoder.{i}.0.0.weight'] for i in range(3)]
        assert first == pytest.approx([0.5 ** 5, 0.5 ** 4, 0.5 ** 3])
        assert lrs['backbone.upsamples.level0.weight'] == pytest.approx(0.5)
    else:  # tiny: one block per stage; the fused-map decoder right below the head
        assert lrs['backbone.stages.0.patch_embed.proj.weight'] == pytest.approx(0.5 ** 6)
        assert lrs['backbone.stages.3.blocks.0.attn.q.weight'] == pytest.approx(0.5 ** 2)
        assert lrs['backbone.decoder.proj.0.weight'] == pytest.approx(0.5)
    # rate 1 is no decay; an encoder lr_mult multiplies with the decay
    assert set(layer_decay_groups(model, rate=1.0).values()) == {1.0}
    both = layer_decay_groups(model, rate=0.5, custom_keys={'backbone': dict(lr_mult=0.1)})
    assert all(both[n] == pytest.approx(lrs[n] * (0.1 if n.startswith('backbone.') else 1))
               for n in lrs)


def test_layer_decay_errors_name_the_field_and_the_fix():
    with pytest.raises(ConfigError, match='layer_decay_rate must be a number in'):
        layer_decay_groups(segmentor(), rate=1.5)
    model = segmentor(dict(type='PlainConv3D'), decoder=dict(type='UNetDecoder3D'))
    with pytest.raises(ConfigError, match='PlainConv3D has no get_layer_depth.*Fix: add the'):
        layer_decay_groups(model)


def test_prediction_writer_resamples_onto_the_input_grid(tmp_path):
    """A mask on the pipeline's grid (RAS, 4 mm) lands on the input file's grid (LAS, 2 mm):
    each input voxel takes the value of the pipeline voxel nearest to it in the world."""
    import nibabel as nib

    from ctglip.engine.hooks.tumor_predictions import MASK_FILE, SCORES_FILE, write_case
    shape = (20, 16, 12)
    affine = np.array([[-2.0, 0, 0, 30], [0, 2, 0, -10], [0, 0, 2, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), affine), str(tmp_path / 'ct.nii.gz'))
    # origin 1 mm off the input's voxel centres: no input voxel is half-way between two
    ras = np.array([[4.0, 0, 0, -9], [0, 4, 0, -11], [0, 0, 4, 4], [0, 0, 0, 1]])
    coarse = np.zeros((10, 8, 6), np.uint8)
    coarse[3:7, 2:6, 1:4] = 1
    coarse[8, 1, 5] = 1
    s = CTDataSample(metainfo=dict(case_id='c1', img_path=str(tmp_path / 'ct.nii.gz'),
                                   affine=ras))
    s.pred_tumor_mask = torch.as_tensor(coarse).long()
    s.tumor_scores = {'liver': 0.75}
    folder = write_case(s, str(tmp_path / 'out'))
    out = nib.load(f'{folder}/{MASK_FILE}')
    assert out.shape == shape and np.allclose(out.affine, affine)
    voxels = np.argwhere(np.ones(shape, bool))
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    index = np.floor((world - ras[:3, 3]) / 4 + 0.5).astype(int)
    inside = np.all((index >= 0) & (index < coarse.shape), axis=1)
    expected = np.zeros(shape, np.uint8)
    expected[tuple(voxels[inside].T)] = coarse[tuple(index[inside].T)]
    assert np.array_equal(np.asarray(out.dataobj), expected) and expected.sum() > 0
    import json
    record = json.loads(open(f'{folder}/{SCORES_FILE}').read())
    assert record['tumor_probability'] == {'liver': 0.75}
    assert record['tumor_voxels'] == int(expected.sum())
    s.set_metainfo(dict(affine=None))
    with pytest.raises(ConfigError, match='RecordAffine'):
        write_case(s, str(tmp_path / 'out'))


# -- the shipped fine-tuning configs ------------------------------------------------------------
def _finetune_configs():
    import glob
    import os.path as osp

    from conftest import REPO
    return sorted(glob.glob(osp.join(REPO, 'configs', 'finetune', '*.py')))


@pytest.mark.parametrize('path', _finetune_configs(), ids=lambda p: p.split('/')[-1])
def test_finetune_configs_build(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)  # init_weights (the checkpoint) only runs when training
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'RandTumorCrop')
    assert tuple(crop['spatial_size']) == model.roi_size  # windows of the training crop size
    assert [m['type'] for m in cfg.test_evaluator] == ['TumorDetection', 'TumorDice']


@pytest.mark.parametrize('family', ['nnunet', 'mit'])
def test_finetune_configs_differ_only_in_the_initialisation(family):
    import os.path as osp

    from mmengine.config import Config

    from conftest import REPO

    def plain(init):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'finetune', f'{init}_{family}_tumor.py'))
        d = cfg.to_dict()
        init_cfg = d['model']['backbone'].pop('init_cfg', None)
        d.pop('pretrain', None)
        return d, init_cfg
    scratch, none = plain('scratch')
    assert none is None
    for init in ('clip', 'ctglip'):
        other, init_cfg = plain(init)
        assert other == scratch
        assert init_cfg['type'] == 'PretrainedEncoder'
        assert init_cfg['checkpoint'] == f'work_dirs/{init}_{family}_104organ/last_checkpoint'
        assert init_cfg['pretrain_config'] == f'configs/ctglip/{init}_{family}_104organ.py'


@pytest.mark.parametrize('family', ['nnunet', 'mit'])
@pytest.mark.parametrize('variant', ['clip', 'ctglip'])
def test_finetune_backbone_fits_its_pretraining_config(family, variant):
    """The encoder of configs/finetune/<variant>_<family>_tumor.py has the tensors of the
    backbone its pretraining config trains (a change to one must follow in the other)."""
    import os.path as osp

    from mmengine.config import Config

    from conftest import REPO
    pre = Config.fromfile(osp.join(REPO, 'configs', 'ctglip', f'{variant}_{family}_104organ.py'))
    fine = Config.fromfile(osp.join(REPO, 'configs', 'finetune', f'{variant}_{family}_tumor.py'))
    backbone = dict(fine.model.backbone)
    backbone.pop('init_cfg')
    own = BACKBONES.build(backbone).state_dict()
    trained = BACKBONES.build(pre.model.backbone).state_dict()
    assert first_mismatch(own, trained) is None


def test_lower_encoder_learning_rate_option():
    """The documented option: the encoder at a tenth of the learning rate, the decoder at it."""
    import os.path as osp

    from mmengine.optim import build_optim_wrapper

    from conftest import REPO
    from ctglip.utils.cli import load_config
    cfg = load_config(osp.join(REPO, 'configs', 'finetune', 'ctglip_nnunet_tumor.py'),
                      ['optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=0.1'])
    model = segmentor()
    with DefaultScope.overwrite_default_scope('ctglip'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n.split('.')[0] for n, p in model.named_parameters()}
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            lrs.setdefault(names[id(p)], set()).add(round(group['lr'], 9))
    assert lrs == {'backbone': {1e-4}, 'decoder': {1e-3}}


def test_cross_entropy_class_weights_from_a_config_list():
    model = segmentor(loss=dict(type='DiceCELoss', to_onehot_y=True, softmax=True,
                                weight=[1.0, 30.0]))
    loss = model(torch.rand(1, 1, 16, 16, 16), [sample((16, 16, 16))], mode='loss')['loss_seg']
    assert torch.isfinite(loss)
