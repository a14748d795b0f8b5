"""Tests of the 3D backbones: shapes per preset, multi-level outputs, size errors, backward."""
import math

import pytest
import torch

from ctglip.models.backbones.mit3d import MIT3D_PRESETS, MiT3D
from ctglip.models.backbones.nnunet import NNUNET_PRESETS, NNUNetEncoder3D
from ctglip.registry import BACKBONES
from ctglip.utils.errors import ConfigError


def _input(size, batch=2):
    return torch.randn(batch, 1, size, size, size)


@pytest.mark.parametrize('arch', sorted(NNUNET_PRESETS))
def test_nnunet_presets_describe_their_output(arch):
    net = NNUNetEncoder3D(arch)
    chans = NNUNET_PRESETS[arch]['channels']
    strides = NNUNET_PRESETS[arch]['strides']
    assert net.out_channels == chans[0]
    assert net.out_stride == strides[0]
    assert net.size_divisor == math.prod(strides)
    assert net.level_channels == tuple(chans)


def test_nnunet_tiny_output_shape():
    net = NNUNetEncoder3D('tiny')
    out = net(_input(16))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, net.out_channels, 16, 16, 16)


def test_nnunet_out_indices_returns_levels_in_order():
    net = NNUNetEncoder3D('tiny', out_indices=(2, 0))
    outs = net(_input(16))
    assert isinstance(outs, tuple) and len(outs) == 2
    assert outs[0].shape == (2, 32, 4, 4, 4)
    assert outs[1].shape == (2, 8, 16, 16, 16)


def test_nnunet_grounded_level_stops_decoder_early():
    net = NNUNetEncoder3D('tiny', grounded_level=1)
    assert (net.out_channels, net.out_stride) == (16, 2)
    assert net(_input(16)).shape == (2, 16, 8, 8, 8)
    assert 'level0' not in net.decoder


def test_nnunet_custom_arch_dict_and_base_override():
    net = NNUNetEncoder3D(dict(channels=(4, 8), strides=(2, 2), convs_per_stage=1))
    assert (net.out_channels, net.out_stride, net.size_divisor) == (4, 2, 4)
    assert net(_input(8)).shape == (2, 4, 4, 4, 4)
    net = NNUNetEncoder3D(dict(base='tiny', channels=(4, 8, 16)))
    assert net.out_channels == 4


def test_nnunet_bad_arch_raises_config_error():
    with pytest.raises(ConfigError, match='tiny'):
        NNUNetEncoder3D('huge')
    with pytest.raises(ConfigError, match='missing'):
        NNUNetEncoder3D(dict(channels=(4, 8)))


def test_nnunet_bad_input_size_names_the_shape():
    net = NNUNetEncoder3D('tiny')
    with pytest.raises(ValueError, match=r'\(16, 18, 16\).*size_divisor=4'):
        net(torch.zeros(1, 1, 16, 18, 16))
    with pytest.raises(ValueError, match='B x C x D x H x W'):
        net(torch.zeros(1, 16, 16, 16))


def test_nnunet_backward_reaches_first_layer():
    net = NNUNetEncoder3D('tiny', with_cp=True)
    net(_input(8)).square().mean().backward()
    first = net.encoder[0][0][0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize('cls', [NNUNetEncoder3D, MiT3D])
def test_backbones_are_registered(cls):
    net = BACKBONES.build(dict(type=cls.__name__, arch='tiny'))
    assert isinstance(net, cls)


@pytest.mark.parametrize('arch', sorted(MIT3D_PRESETS))
def test_mit_presets_describe_their_output(arch):
    net = MiT3D(arch)
    spec = MIT3D_PRESETS[arch]
    assert net.out_channels == spec['decoder_dim']
    assert net.out_stride == spec['patch_strides'][0]
    assert net.size_divisor % math.prod(spec['patch_strides']) == 0
    assert net.level_channels[:4] == tuple(spec['embed_dims'])


def test_mit_tiny_output_shape():
    net = MiT3D('tiny')
    out = net(_input(16))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, net.out_channels, 8, 8, 8)


def test_mit_non_cubic_input():
    net = MiT3D('tiny')
    assert net(torch.randn(1, 1, 16, 32, 48)).shape == (1, 16, 8, 16, 24)


def test_mit_out_indices_returns_stages_and_fused_map():
    net = MiT3D('tiny', out_indices=(0, 3, 4))
    outs = net(_input(16))
    assert [o.shape for o in outs] == [(2, 8, 8, 8, 8), (2, 32, 1, 1, 1), (2, 16, 8, 8, 8)]
    with pytest.raises(ValueError, match='out_indices'):
        MiT3D('tiny', out_indices=(5,))


def test_mit_bad_input_size_names_the_shape():
    net = MiT3D('tiny')
    with pytest.raises(ValueError, match=r'\(16, 16, 24\).*size_divisor=16'):
        net(torch.zeros(1, 1, 16, 16, 24))


def test_mit_bad_arch():
    with pytest.raises(ConfigError, match='b0'):
        MiT3D('b9')
    with pytest.raises(ValueError, match='4 entries'):
        MiT3D(dict(base='tiny', depths=(1, 1, 1)))


def test_mit_backward_reaches_patch_embedding():
    net = MiT3D('tiny', drop_path_rate=0.2, with_cp=True)
    net(_input(16)).square().mean().backward()
    first = net.stages[0].patch_embed.proj.weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize('cls', [NNUNetEncoder3D, MiT3D])
def test_backbones_take_multi_window_input(cls):
    from ctglip.datasets.transforms import MultiWindowd
    hu = torch.linspace(-1000, 1000, 32 ** 3).view(1, 32, 32, 32)
    x = MultiWindowd(windows=[(-1000, 1000), (-160, 240)])({'image': hu})['image'][None]
    net = cls('tiny', in_channels=2)
    out = net(x)
    out = out[-1] if isinstance(out, (list, tuple)) else out
    assert out.shape[0] == 1 and out.shape[1] == net.out_channels
    with pytest.raises(RuntimeError):
        cls('tiny')(x)  # one input channel expected: a mismatch is not silently accepted


def test_mit_stem_norm_hides_the_intensity_of_uniform_regions():
    """With SegFormer's LayerNorm after the first patch embedding (zero conv bias), every token
    of a uniform region is the same whatever its intensity; stem_norm=False keeps it (CT reads
    density). The measured consequence is in docs/finetuning.md."""
    outputs = {}
    for stem_norm in (True, False):
        torch.manual_seed(0)
        net = MiT3D('tiny', stem_norm=stem_norm).eval()
        with torch.no_grad():
            outputs[stem_norm] = [net(torch.full((1, 1, 32, 32, 32), v)) for v in (0.55, 1.05)]
    low, high = outputs[True]
    assert (low - high).abs().max() < 1e-3
    low, high = outputs[False]
    assert (low - high).abs().max() > 1e-2
    assert 'stages.0.patch_embed.norm.weight' not in MiT3D('tiny', stem_norm=False).state_dict()


@pytest.mark.parametrize('shape,size', [((2, 3, 16, 8, 4), (32, 32, 32)),
                                        ((1, 2, 5, 7, 3), (12, 7, 10)),
                                        ((1, 1, 4, 4, 4), (4, 4, 4))])
def test_separable_upsampling_equals_pytorch_trilinear(shape, size):
    """The MiT decoder's matmul upsampling is F.interpolate's trilinear map, values and
    gradients, for integer and non-integer ratios."""
    import torch.nn.functional as F

    from ctglip.models.backbones.mit3d import upsample_trilinear
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=size, mode='trilinear', align_corners=False)
    out = upsample_trilinear(x, size)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    ref_grad, = torch.autograd.grad(ref, x, grad)
    out_grad, = torch.autograd.grad(out, x, grad)
    torch.testing.assert_close(out_grad, ref_grad, rtol=1e-12, atol=1e-12)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # runs under bf16 autocast
        low = upsample_trilinear(x.float(), size)
    torch.testing.assert_close(low.float(), ref.float(), rtol=0.02, atol=0.05)


@pytest.mark.parametrize('kernel,layout', [(3, 'channels_last'), (3, 'contiguous'),
                                           (5, 'channels_last')])
def test_depthwise_conv3d_equals_pytorch(kernel, layout):
    """Mix-FFN's depthwise conv (its backward written as a flipped-kernel convolution) is
    F.conv3d's, values and the gradients of input, weight and bias; under bf16 autocast it
    computes in bf16 and hands float32 gradients back."""
    import torch.nn.functional as F

    from ctglip.models.backbones.mit3d import depthwise_conv3d
    torch.manual_seed(0)
    c = 6
    x = torch.randn(2, 5, 6, 7, c, dtype=torch.float64).permute(0, 4, 1, 2, 3)
    if layout == 'contiguous':
        x = x.contiguous()
    x.requires_grad_(True)
    weight = torch.randn(c, 1, kernel, kernel, kernel, dtype=torch.float64,
                         requires_grad=True)
    bias = torch.randn(c, dtype=torch.float64, requires_grad=True)
    ref = F.conv3d(x, weight, bias, padding=kernel // 2, groups=c)
    out = depthwise_conv3d(x, weight, bias)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, weight, bias), grad)
    out_grads = torch.autograd.grad(out, (x, weight, bias), grad)
    for name, got, want in zip(('input', 'weight', 'bias'), out_grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=name)
    assert torch.autograd.gradcheck(depthwise_conv3d, (x[:1, :, :3, :3, :3].detach()
                                                       .requires_grad_(True), weight, bias))
    x32, w32 = x.detach().float().requires_grad_(True), weight.detach().float().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = depthwise_conv3d(x32, w32, None)
    assert low.dtype == torch.bfloat16
    low.float().sum().backward()
    assert x32.grad.dtype == w32.grad.dtype == torch.float32
    torch.testing.assert_close(low.float(), F.conv3d(x32, w32, None, padding=kernel // 2,
                                                     groups=c), rtol=0.05, atol=0.2)


def test_depthwise_conv3d_rejects_other_kernels():
    from ctglip.models.backbones.mit3d import depthwise_conv3d
    with pytest.raises(ValueError, match='C x 1 x k x k x k kernel with odd k'):
        depthwise_conv3d(torch.zeros(1, 4, 4, 4, 4), torch.zeros(4, 1, 2, 2, 2))
    with pytest.raises(ValueError, match='for 4 channels'):
        depthwise_conv3d(torch.zeros(1, 4, 4, 4, 4), torch.zeros(2, 1, 3, 3, 3))


def test_mit_decoder_equals_segformer_concatenation():
    """The MiT decoder (per-stage folded projections, upsampled and summed) is
    SegFormer's: project every stage, upsample to stage 1's grid, concatenate, 1^3 conv,
    InstanceNorm, GELU; values and parameter gradients, in float64."""
    import torch.nn.functional as F

    from ctglip.models.backbones.mit3d import AllMLPDecoder3d
    torch.manual_seed(0)
    channels, dim = (4, 6, 8, 10), 5
    dec = AllMLPDecoder3d(channels, dim).double()
    with torch.no_grad():
        for p in dec.parameters():
            p.normal_()
    feats = [torch.randn(2, c, 16 // 2 ** i, 16 // 2 ** i, 8 // 2 ** i, dtype=torch.float64)
             for i, c in enumerate(channels)]
    feats[0] = feats[0].contiguous(memory_format=torch.channels_last_3d)  # as the stages give

    def reference():
        conv, norm, act = dec.fuse
        ups = [F.interpolate(proj(f), size=feats[0].shape[2:], mode='trilinear',
                             align_corners=False) for proj, f in zip(dec.proj, feats)]
        return act(norm(conv(torch.cat(ups, dim=1))))

    ref, out = reference(), dec(feats)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    params = list(dec.parameters())
    for got, want in zip(torch.autograd.grad(out, params, grad),
                         torch.autograd.grad(reference(), params, grad)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_separable_upsampling_adds_to_a_map():
    """upsample_trilinear(x, size, add_to=m) is m + the upsampled map, values and gradients
    of both."""
    from ctglip.models.backbones.mit3d import upsample_trilinear
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    base = torch.randn(2, 3, 8, 9, 12, dtype=torch.float64, requires_grad=True)
    out = upsample_trilinear(x, (8, 9, 12), add_to=base)
    ref = base + upsample_trilinear(x, (8, 9, 12))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(out, (x, base), grad),
                         torch.autograd.grad(ref, (x, base), grad)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
