"""nnU-Net style 3D encoder-decoder whose highest-resolution decoder map is the grounded map."""
import math

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.utils.checkpoint import checkpoint

from ctglip.models.backbones.base import check_input, resolve_arch
from ctglip.registry import BACKBONES

# Architecture presets, as data. ``channels`` and ``strides`` have one entry per resolution
# stage; stage ``i`` runs at stride ``prod(strides[:i + 1])`` of the input (isotropic).
NNUNET_PRESETS = {
    # Unit tests: three stages, one conv each, a few thousand parameters.
    'tiny': dict(channels=(8, 16, 32), strides=(1, 2, 2), convs_per_stage=1),
    # CPU demo: trains at 64^3, batch 2, on two CPU cores in about a second per step. The
    # first stage is strided, so the grounded map is at stride 2 (32^3 for a 64^3 input):
    # at full resolution even 8 channels cost 3x the time, and a 16-channel map at half
    # resolution serves organ pooling better than an 8-channel one at full resolution.
    'small': dict(channels=(16, 32, 64, 128), strides=(2, 2, 2, 2), convs_per_stage=2),
    # The nnU-Net 3d_fullres plan for CT at ~128^3 patches (the paper's CNN).
    'paper': dict(channels=(32, 64, 128, 256, 320, 320), strides=(1, 2, 2, 2, 2, 2),
                  convs_per_stage=2),
}
_ARCH_KEYS = ('channels', 'strides', 'convs_per_stage')


class ConvNormAct3d(nn.Sequential):
    """conv3d (3^3) - InstanceNorm3d (affine) - LeakyReLU(0.01), nnU-Net's basic unit."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.InstanceNorm3d(out_channels, eps=1e-5, affine=True),
            nn.LeakyReLU(0.01, inplace=True))


def _conv_stack(in_channels, out_channels, num_convs, stride=1):
    layers = [ConvNormAct3d(in_channels, out_channels, stride)]
    layers += [ConvNormAct3d(out_channels, out_channels) for _ in range(num_convs - 1)]
    return nn.Sequential(*layers)


@BACKBONES.register_module()
class NNUNetEncoder3D(BaseModule):
    """nnU-Net style 3D U-Net trunk (no segmentation head) for grounded pretraining.

    Encoder: per stage, ``convs_per_stage`` x (conv3d - InstanceNorm - LeakyReLU); the first
    conv of a stage is strided to downsample. Decoder: transposed-conv upsampling, concat with
    the encoder skip of that resolution, then ``convs_per_stage`` convs. The paper pools organ
    masks on the highest-resolution decoder map, which is what ``forward`` returns.

    Levels: level ``i`` is the decoder output at encoder stage ``i``'s resolution (stride
    ``level_strides[i]``, ``level_channels[i]`` channels); the last level is the bottleneck.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'paper'`` (see ``NNUNET_PRESETS``) or a
            dict with ``channels`` (per stage), ``strides`` (per stage, ints, the first is
            usually 1) and ``convs_per_stage`` (int); ``base='<preset>'`` plus some keys
            overrides a preset.
        in_channels (int): channels of the input volume (1 for CT).
        out_indices (Sequence[int] | None): levels to return, as a tuple of maps in this order;
            ``None`` returns the grounded map alone (a tensor).
        grounded_level (int): the level at which the decoder stops and whose map is pooled.
            0 (default, as in the paper) is the highest resolution; 1 halves the memory of the
            grounded map at the cost of coarser organ masks.
        with_cp (bool): gradient checkpointing per stage (trades compute for memory).
        init_cfg (dict | list | None): mmengine init config, e.g. a ``Pretrained`` checkpoint.

    Attributes:
        out_channels (int): channels C of the grounded map.
        out_stride (int): input size / grounded map size.
        size_divisor (int): D, H, W of the input must be multiples of it (the total
            downsampling); the data preprocessor pads to it.
        level_channels (tuple[int]): channels of every level.
        level_strides (tuple[int]): stride of every level.

    Shapes:
        input ``B x in_channels x D x H x W`` float; output ``B x out_channels x D/s x H/s x
        W/s`` with ``s = out_stride``, or a tuple over ``out_indices``.

    Example:
        >>> net = NNUNetEncoder3D('tiny')
        >>> net(torch.zeros(2, 1, 16, 16, 16)).shape
        torch.Size([2, 8, 16, 16, 16])
    """

    def __init__(self, arch='small', in_channels=1, out_indices=None, grounded_level=0,
                 with_cp=False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_arch(arch, NNUNET_PRESETS, _ARCH_KEYS, type(self).__name__)
        channels = tuple(int(c) for c in arch['channels'])
        strides = tuple(int(s) for s in arch['strides'])
        num_convs = int(arch['convs_per_stage'])
        num_levels = len(channels)
        if len(strides) != num_levels or num_levels < 1 or num_convs < 1 or min(strides) < 1:
            raise ValueError(f'NNUNetEncoder3D: arch needs one stride per stage and at least one '
                             f'conv per stage, got channels={channels}, strides={strides}, '
                             f'convs_per_stage={num_convs}.')
        if not 0 <= grounded_level < num_levels:
            raise ValueError(f'NNUNetEncoder3D: grounded_level={grounded_level} is not a level '
                             f'of this arch (0..{num_levels - 1}).')
        self.arch = arch
        self.grounded_level = grounded_level
        self.with_cp = with_cp
        self.level_channels = channels
        self.level_strides = tuple(math.prod(strides[:i + 1]) for i in range(num_levels))
        self.size_divisor = self.level_strides[-1]
        self.out_channels = channels[grounded_level]
        self.out_stride = self.level_strides[grounded_level]
        if out_indices is not None:
            out_indices = tuple(int(i) for i in out_indices)
            bad = [i for i in out_indices if not grounded_level <= i < num_levels]
            if bad or not out_indices:
                raise ValueError(f'NNUNetEncoder3D: out_indices={out_indices} must be levels in '
                                 f'{grounded_level}..{num_levels - 1} (grounded_level='
                                 f'{grounded_level}, {num_levels} levels).')
        self.out_indices = out_indices

        self.encoder = nn.ModuleList()
        prev = in_channels
        for c, s in zip(channels, strides):
            self.encoder.append(_conv_stack(prev, c, num_convs, stride=s))
            prev = c
        # Keyed by level so that checkpoints load whatever grounded_level a config picks.
        self.upsamples = nn.ModuleDict()
        self.decoder = nn.ModuleDict()
        for i in range(num_levels - 2, grounded_level - 1, -1):
            s = strides[i + 1]
            self.upsamples[f'level{i}'] = nn.ConvTranspose3d(channels[i + 1], channels[i], s,
                                                             stride=s)
            self.decoder[f'level{i}'] = _conv_stack(2 * channels[i], channels[i], num_convs)
        self._init_he()

    def get_layer_depth(self, param_name):
        """The layer of a parameter for layer-wise learning-rate decay, input side first.

        Encoder stage ``i`` is layer ``i``; the decoder path of this backbone (upsample +
        convs of level ``l``, deepest first) follows the encoder, as its input is the
        bottleneck. ``num_layers - 1`` is left for what lies outside the backbone (a
        segmentation decoder), which keeps the base learning rate.

        Args:
            param_name (str): the parameter's name within this module.

        Returns:
            tuple[int, int]: ``(layer_id, num_layers)``.
        """
        num_stages = len(self.encoder)
        num_layers = 2 * num_stages - self.grounded_level
        parts = param_name.split('.')
        if parts[0] == 'encoder':
            return int(parts[1]), num_layers
        if parts[0] in ('upsamples', 'decoder'):
            level = int(parts[1][len('level'):])
            return num_stages + (num_stages - 2 - level), num_layers
        raise KeyError(f'{type(self).__name__}: no layer for parameter {param_name!r}.')

    def _init_he(self):
        # nnU-Net's InitWeights_He(1e-2): Kaiming normal for the LeakyReLU slope, zero bias.
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _run(self, module, *args):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(self, x):
        """Encode a CT batch.

        Args:
            x (Tensor): ``B x in_channels x D x H x W``; D, H, W multiples of ``size_divisor``.

        Returns:
            Tensor | tuple[Tensor]: the grounded map ``B x out_channels x d x h x w``, or the
            maps of ``out_indices`` (level ``i``: ``B x level_channels[i] x D/level_strides[i]
            x ...``).
        """
        check_input(x, self.size_divisor, type(self).__name__)
        skips = []
        for stage in self.encoder:
            x = self._run(stage, x)
            skips.append(x)
        num_levels = len(skips)
        levels = {num_levels - 1: x}
        for i in range(num_levels - 2, self.grounded_level - 1, -1):
            x = self.upsamples[f'level{i}'](x)
            x = self._run(self.decoder[f'level{i}'], torch.cat([x, skips[i]], dim=1))
            levels[i] = x
        if self.out_indices is None:
            return levels[self.grounded_level]
        return tuple(levels[i] for i in self.out_indices)
