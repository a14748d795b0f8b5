"""MiT3D: a hierarchical 3D transformer (SegFormer / UniMiSS style) with an all-MLP decoder."""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from mmengine.model import BaseModule
from timm.layers import DropPath, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ctglip.models.backbones.base import check_input, resolve_arch
from ctglip.registry import BACKBONES

# Architecture presets, as data: one entry per stage (4 stages). Stage ``i`` tokens sit at
# stride ``prod(patch_strides[:i + 1])``; its attention keys/values are reduced by
# ``sr_ratios[i]`` per axis (``sr_ratios[i] ** 3`` fewer tokens).
_B0 = dict(embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8), depths=(2, 2, 2, 2),
           mlp_ratios=(4, 4, 4, 4), sr_ratios=(8, 4, 2, 1), patch_sizes=(7, 3, 3, 3),
           patch_strides=(4, 2, 2, 2), decoder_dim=256)
MIT3D_PRESETS = {
    # Unit tests: one block per stage, first stage at stride 2, size_divisor 16.
    'tiny': dict(embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2), depths=(1, 1, 1, 1),
                 mlp_ratios=(2, 2, 2, 2), sr_ratios=(4, 2, 1, 1), patch_sizes=(3, 3, 3, 3),
                 patch_strides=(2, 2, 2, 2), decoder_dim=16),
    # CPU demo: trains at 64^3, batch 2, on two CPU cores in about a second per step; the
    # fused map is at stride 2 (32^3 for a 64^3 input), like the small nnU-Net's.
    'small': dict(embed_dims=(16, 32, 64, 128), num_heads=(1, 2, 4, 8), depths=(1, 1, 2, 1),
                  mlp_ratios=(4, 4, 4, 4), sr_ratios=(8, 4, 2, 1), patch_sizes=(3, 3, 3, 3),
                  patch_strides=(2, 2, 2, 2), decoder_dim=64),
    # SegFormer-B0 sizes in 3D (about 6.3 M parameters; 3D kernels make it larger than 2D).
    'b0': _B0,
    # The paper does not give its MiT's size; we default to B0 (UniMiSS's MiT is of that
    # scale). Name 'b0' in a config to be explicit.
    'paper': _B0,
}
_ARCH_KEYS = ('embed_dims', 'num_heads', 'depths', 'mlp_ratios', 'sr_ratios', 'patch_sizes',
              'patch_strides', 'decoder_dim')


class OverlapPatchEmbed3d(nn.Module):
    """Overlapping patch embedding: strided conv3d (kernel > stride) then LayerNorm.

    ``B x C_in x D x H x W`` -> tokens ``B x N x C`` and the grid ``(d, h, w)``.
    """

    def __init__(self, in_channels, embed_dim, patch_size, stride, norm=True):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, embed_dim, patch_size, stride=stride,
                              padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim) if norm else nn.Identity()

    def forward(self, x):
        x = self.proj(x)
        grid = tuple(x.shape[2:])
        return self.norm(rearrange(x, 'b c d h w -> b (d h w) c')), grid


class SpatialReductionAttention3d(nn.Module):
    """Multi-head self-attention whose keys/values come from a grid reduced by ``sr_ratio``.

    The reduction (a conv3d with kernel = stride = ``sr_ratio``, then LayerNorm) cuts the cost
    from N^2 to N^2 / sr_ratio^3, which is what makes attention on CT grids affordable.
    """

    def __init__(self, dim, num_heads, sr_ratio=1, attn_drop=0., proj_drop=0.):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'MiT3D: embed dim {dim} is not divisible by num_heads {num_heads}.')
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv3d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, grid):
        """``x``: ``B x N x C`` tokens on ``grid`` (d, h, w); returns ``B x N x C``."""
        q = rearrange(self.q(x), 'b n (h c) -> b h n c', h=self.num_heads)
        kv_in = x
        if self.sr_ratio > 1:
            d, h, w = grid
            kv_in = rearrange(x, 'b (d h w) c -> b c d h w', d=d, h=h, w=w)
            kv_in = self.norm(rearrange(self.sr(kv_in), 'b c d h w -> b (d h w) c'))
        k, v = rearrange(self.kv(kv_in), 'b n (two h c) -> two b h n c', two=2,
                         h=self.num_heads)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(rearrange(out, 'b h n c -> b n (h c)')))


class _DepthwiseConv3d(torch.autograd.Function):
    """A 'same' depthwise conv3d (odd kernel, stride 1) whose backward is two cheap kernels.

    PyTorch's CPU backward of a depthwise conv3d takes about 5x its forward for the input's
    gradient alone. For stride 1 and 'same' padding that gradient is the forward convolution
    of the output gradient with the kernel flipped in space, which runs as fast as the
    forward; the weight's gradient stays PyTorch's. Both maps are kept in channels-last
    layout, the layout the tokens are already in.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        x = x.contiguous(memory_format=torch.channels_last_3d)
        padding = weight.shape[2] // 2
        out = F.conv3d(x, weight, bias, padding=padding, groups=weight.shape[0])
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_out = grad_out.to(x.dtype).contiguous(memory_format=torch.channels_last_3d)
        padding, groups = weight.shape[2] // 2, weight.shape[0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv3d(grad_out, weight.flip(2, 3, 4), padding=padding, groups=groups)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv3d_weight(x, weight.shape, grad_out, padding=padding,
                                                 groups=groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b


def depthwise_conv3d(x, weight, bias=None):
    """``F.conv3d(x, weight, bias, padding=k // 2, groups=C)`` for a ``C x 1 x k x k x k``
    kernel (k odd), with a faster backward on the CPU (``_DepthwiseConv3d``); equal to it up to
    float rounding, values and gradients. Under autocast it computes in the autocast dtype.
    """
    c, per_group, *kernel = weight.shape
    if per_group != 1 or c != x.shape[1] or len(set(kernel)) != 1 or kernel[0] % 2 != 1:
        raise ValueError(f'depthwise_conv3d: needs a C x 1 x k x k x k kernel with odd k for '
                         f'{x.shape[1]} channels; got {tuple(weight.shape)}.')
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _DepthwiseConv3d.apply(x, weight, bias)
    return _DepthwiseConv3d.apply(x, weight, bias)


class MixFFN3d(nn.Module):
    """Mix-FFN: Linear - depthwise conv3d (3^3) - GELU - Linear.

    The depthwise conv gives the tokens positional information, so MiT needs no position
    embedding and accepts any input size. (timm's ``Mlp`` has no conv between its layers.)
    """

    def __init__(self, dim, hidden_dim, drop=0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv3d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x, grid):
        d, h, w = grid
        x = rearrange(self.fc1(x), 'b (d h w) c -> b c d h w', d=d, h=h, w=w)
        # the fc1 output viewed as b c d h w is channels-last: no copy on either side
        x = depthwise_conv3d(x, self.dwconv.weight, self.dwconv.bias)
        x = rearrange(x, 'b c d h w -> b (d h w) c')
        return self.drop(self.fc2(self.drop(self.act(x))))


class MiTBlock3d(nn.Module):
    """Pre-norm transformer block: spatial-reduction attention then Mix-FFN, with DropPath."""

    def __init__(self, dim, num_heads, mlp_ratio, sr_ratio, drop=0., attn_drop=0.,
                 drop_path=0.):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpatialReductionAttention3d(dim, num_heads, sr_ratio, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN3d(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, grid):
        x = x + self.drop_path(self.attn(self.norm1(x), grid))
        return x + self.drop_path(self.ffn(self.norm2(x), grid))


class MiTStage3d(nn.Module):
    """One resolution stage: patch embedding, blocks, LayerNorm; returns ``B x C x d x h x w``."""

    def __init__(self, in_channels, dim, num_heads, depth, mlp_ratio, sr_ratio, patch_size,
                 stride, drop, attn_drop, drop_paths, patch_norm=True):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed3d(in_channels, dim, patch_size, stride,
                                               norm=patch_norm)
        self.blocks = nn.ModuleList(
            MiTBlock3d(dim, num_heads, mlp_ratio, sr_ratio, drop, attn_drop, dp)
            for dp in drop_paths[:depth])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x, grid = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, grid)
        d, h, w = grid
        return rearrange(self.norm(x), 'b (d h w) c -> b c d h w', d=d, h=h, w=w)


def _linear_interp_matrix(n_in, n_out, like):
    """``n_out x n_in`` matrix of 1-D linear interpolation, ``align_corners=False``, in the
    dtype and on the device of ``like`` (built there, so that it is a fake tensor under
    ``FakeTensorMode`` too).

    The source index of output ``i`` is ``(i + 0.5) * n_in / n_out - 0.5`` clamped to
    ``[0, n_in - 1]``, as in PyTorch's ``upsample_linear1d``.
    """
    kw = dict(dtype=torch.float64, device=like.device)
    src = ((torch.arange(n_out, **kw) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    lower = src.floor().long().clamp(max=n_in - 1)
    upper = (lower + 1).clamp(max=n_in - 1)
    frac = src - lower
    rows = torch.arange(n_out, device=like.device)
    matrix = torch.zeros(n_out, n_in, **kw)
    matrix.index_put_((rows, lower), 1 - frac, accumulate=True)
    matrix.index_put_((rows, upper), frac, accumulate=True)
    return matrix.to(like.dtype)


def upsample_trilinear(x, size, add_to=None):
    """``F.interpolate(x, size, mode='trilinear', align_corners=False)`` as three matmuls.

    Trilinear interpolation is separable: one linear interpolation matrix per axis, applied
    depth, height, width in turn. On the CPU this is 3-4x faster forward + backward than
    PyTorch's ``upsample_trilinear3d`` kernel for the MiT decoder's maps (docs/benchmarks.md),
    and equal to it up to float rounding. The same code runs on every device, so that the
    memory model measured on the CPU describes the GPU run.

    ``add_to`` (a ``b x c x depth x height x width`` map): return ``add_to + upsampled``,
    the sum done by the last matmul (one pass over the output less than adding afterwards).
    """
    b, c, d, h, w = x.shape
    depth, height, width = size
    md, mh, mw = (_linear_interp_matrix(n_in, n_out, x)
                  for n_in, n_out in zip((d, h, w), (depth, height, width)))
    x = md @ x.reshape(b * c, d, h * w)                   # (b c) x depth x (h w)
    x = mh @ x.reshape(b * c * depth, h, w)               # (b c depth) x height x w
    if add_to is None:
        x = x @ mw.T                                      # (b c depth) x height x width
    else:
        x = torch.addmm(add_to.reshape(-1, width), x.view(-1, w), mw.T)
    return x.view(b, c, depth, height, width)


class AllMLPDecoder3d(nn.Module):
    """SegFormer's all-MLP decoder in 3D: project every stage to ``dim``, upsample to stage 1's
    grid (trilinear), concatenate, fuse with a 1^3 conv - InstanceNorm - GELU.

    ``[B x C_i x d_i x h_i x w_i]`` -> ``B x dim x d_1 x h_1 x w_1``.
    """

    def __init__(self, in_channels, dim):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv3d(c, dim, 1) for c in in_channels)
        self.fuse = nn.Sequential(
            nn.Conv3d(dim * len(in_channels), dim, 1, bias=False),
            nn.InstanceNorm3d(dim, affine=True),
            nn.GELU())

    def forward(self, feats):
        # fuse(cat_i(up(proj_i(x_i)))) computed as sum_i up(W_i proj_i(x_i)), W_i the fuse
        # conv's columns of stage i: 1^3 convs and trilinear upsampling are linear (and the
        # upsampling keeps constants), so both are the same map, but this one mixes channels
        # at each stage's own resolution, folds proj_i and W_i into one conv, and never builds
        # the 4 x dim channel concatenation at stage 1's grid (the MiT step's largest tensor).
        # The stage-1 term is one batched matmul over the channels that writes the NCDHW map
        # directly (the stage's map is a channels-last view of its tokens); every upsampled
        # term is added by its upsampling's last matmul.
        size = feats[0].shape[2:]
        conv, norm, act = self.fuse
        dim = conv.out_channels
        fused = None
        for proj, weight, feat in zip(self.proj, conv.weight.split(dim, dim=1), feats):
            mix = weight.flatten(1)                                        # dim x dim
            kernel = mix @ proj.weight.flatten(1)                          # dim x C_i
            bias = mix @ proj.bias
            if fused is None:  # stage 1, at the output grid
                fused = torch.baddbmm(bias.view(1, dim, 1), kernel.expand(len(feat), -1, -1),
                                      feat.flatten(2)).view(len(feat), dim, *size)
                continue
            feat = F.conv3d(feat, kernel.view(dim, -1, 1, 1, 1), bias)
            fused = (upsample_trilinear(feat, size, add_to=fused) if feat.shape[2:] != size
                     else fused + feat)
        return act(norm(fused))


@BACKBONES.register_module()
class MiT3D(BaseModule):
    """Mix Transformer in 3D (SegFormer's MiT, as UniMiSS uses it for CT) with an MLP decoder.

    Four stages, each an overlapping patch embedding (strided conv3d) followed by transformer
    blocks with spatial-reduction attention and Mix-FFN. The all-MLP decoder fuses the four
    stage maps at stage 1's resolution into the grounded map that organ masks are pooled on.

    Levels: 0-3 are the four stage maps (stage ``i``: ``embed_dims[i]`` channels, stride
    ``level_strides[i]``), level 4 is the fused decoder map (the grounded map).

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'b0'``, ``'paper'`` (see
            ``MIT3D_PRESETS``) or a dict with the keys of a preset (``embed_dims``,
            ``num_heads``, ``depths``, ``mlp_ratios``, ``sr_ratios``, ``patch_sizes``,
            ``patch_strides``: 4 entries each; ``decoder_dim``: int); ``base='<preset>'``
            plus some keys overrides a preset.
        in_channels (int): channels of the input volume (1 for CT).
        out_indices (Sequence[int] | None): levels to return, as a tuple in this order;
            ``None`` returns the fused map alone (a tensor).
        drop_rate (float): dropout after attention projections and in the FFN.
        attn_drop_rate (float): dropout on attention weights.
        drop_path_rate (float): stochastic depth, rising linearly over all blocks to this.
        with_cp (bool): gradient checkpointing per stage (trades compute for memory).
        stem_norm (bool): LayerNorm after the first patch embedding, as SegFormer. Its conv
            bias starts at zero, so the LayerNorm makes every token of a region of uniform
            intensity the same whatever that intensity: at initialisation a uniform 0.55 and
            a uniform 1.05 volume give outputs that differ by 1e-5. CT reads density in HU,
            so ``False`` drops that LayerNorm and keeps the intensity in the first tokens
            (the blocks' pre-norms and the stage's final LayerNorm stay). Checkpoints of
            one setting do not load into the other.
        init_cfg (dict | list | None): mmengine init config, e.g. a ``Pretrained`` checkpoint.

    Attributes:
        out_channels (int): channels C of the grounded (fused) map, ``decoder_dim``.
        out_stride (int): input size / grounded map size (stage 1's stride).
        size_divisor (int): D, H, W of the input must be multiples of it: the total stride,
            and stage ``i``'s stride times ``sr_ratios[i]`` so that key/value reduction tiles
            the grid exactly. The data preprocessor pads to it.
        level_channels (tuple[int]), level_strides (tuple[int]): per level (0-4).

    Shapes:
        input ``B x in_channels x D x H x W`` float; output ``B x out_channels x D/s x H/s x
        W/s`` with ``s = out_stride``, or a tuple over ``out_indices``.

    Example:
        >>> net = MiT3D('tiny')
        >>> net(torch.zeros(2, 1, 16, 16, 16)).shape
        torch.Size([2, 16, 8, 8, 8])
    """

    num_stages = 4

    def __init__(self, arch='small', in_channels=1, out_indices=None, drop_rate=0.,
                 attn_drop_rate=0., drop_path_rate=0.1, with_cp=False, stem_norm=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_arch(arch, MIT3D_PRESETS, _ARCH_KEYS, type(self).__name__)
        per_stage = {k: tuple(arch[k]) for k in _ARCH_KEYS if k != 'decoder_dim'}
        bad = {k: v for k, v in per_stage.items() if len(v) != self.num_stages}
        if bad:
            raise ValueError(f'MiT3D: arch needs {self.num_stages} entries (one per stage) in '
                             f'each of {list(per_stage)}; got {bad}.')
        self.arch = arch
        self.with_cp = with_cp
        strides = per_stage['patch_strides']
        stage_strides = tuple(math.prod(strides[:i + 1]) for i in range(self.num_stages))
        self.size_divisor = math.lcm(stage_strides[-1], *(
            s * r for s, r in zip(stage_strides, per_stage['sr_ratios'])))
        self.out_channels = int(arch['decoder_dim'])
        self.out_stride = stage_strides[0]
        self.level_channels = tuple(per_stage['embed_dims']) + (self.out_channels,)
        self.level_strides = stage_strides + (self.out_stride,)
        if out_indices is not None:
            out_indices = tuple(int(i) for i in out_indices)
            if not out_indices or any(not 0 <= i <= self.num_stages for i in out_indices):
                raise ValueError(f'MiT3D: out_indices={out_indices} must be levels in 0..'
                                 f'{self.num_stages} (0-3 the stages, {self.num_stages} the '
                                 'fused decoder map).')
        self.out_indices = out_indices

        total_depth = sum(per_stage['depths'])
        drop_paths = torch.linspace(0, drop_path_rate, total_depth).tolist()
        self.stages = nn.ModuleList()
        prev, start = in_channels, 0
        for i in range(self.num_stages):
            depth = per_stage['depths'][i]
            self.stages.append(MiTStage3d(
                prev, per_stage['embed_dims'][i], per_stage['num_heads'][i], depth,
                per_stage['mlp_ratios'][i], per_stage['sr_ratios'][i],
                per_stage['patch_sizes'][i], strides[i], drop_rate, attn_drop_rate,
                drop_paths[start:start + depth], patch_norm=stem_norm or i > 0))
            prev, start = per_stage['embed_dims'][i], start + depth
        self.decoder = AllMLPDecoder3d(per_stage['embed_dims'], self.out_channels)
        self.apply(self._init_module)

    def get_layer_depth(self, param_name):
        """The layer of a parameter for layer-wise learning-rate decay, input side first.

        Layer 0 is the first patch embedding; each transformer block is one layer, over all
        stages in order; a later stage's patch embedding shares the layer of the block before
        it and its closing LayerNorm the layer of its last block; the fused-map decoder comes
        next. ``num_layers - 1`` is left for what lies outside the backbone (a segmentation
        decoder), which keeps the base learning rate.

        Args:
            param_name (str): the parameter's name within this module.

        Returns:
            tuple[int, int]: ``(layer_id, num_layers)``.
        """
        depths = [len(stage.blocks) for stage in self.stages]
        num_layers = sum(depths) + 3
        parts = param_name.split('.')
        if parts[0] == 'decoder':
            return num_layers - 2, num_layers
        if parts[0] == 'stages':
            stage = int(parts[1])
            before = sum(depths[:stage])
            if parts[2] == 'blocks':
                return before + int(parts[3]) + 1, num_layers
            if parts[2] == 'patch_embed':
                return before, num_layers
            if parts[2] == 'norm':
                return before + depths[stage], num_layers
        raise KeyError(f'{type(self).__name__}: no layer for parameter {param_name!r}.')

    @staticmethod
    def _init_module(m):
        # SegFormer's initialisation: truncated normal for linears, fan-out normal for convs.
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            fan_out = math.prod(m.kernel_size) * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        """Encode a CT batch.

        Args:
            x (Tensor): ``B x in_channels x D x H x W``; D, H, W multiples of ``size_divisor``.

        Returns:
            Tensor | tuple[Tensor]: the fused map ``B x out_channels x d x h x w``, or the maps
            of ``out_indices``.
        """
        check_input(x, self.size_divisor, type(self).__name__)
        feats = []
        for stage in self.stages:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            feats.append(x)
        fused = self.decoder(feats)
        if self.out_indices is None:
            return fused
        levels = feats + [fused]
        return tuple(levels[i] for i in self.out_indices)
