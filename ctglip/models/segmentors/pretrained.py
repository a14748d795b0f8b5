"""Initialise a fine-tuning model's encoder from a ctglip pretraining checkpoint.

One mechanism, set in the config: the backbone's mmengine ``init_cfg``::

    backbone=dict(type='NNUNetEncoder3D', arch='small', out_indices=(0, 1, 2, 3),
                  init_cfg=dict(type='PretrainedEncoder',
                                checkpoint='work_dirs/ctglip_nnunet_104organ/last_checkpoint',
                                pretrain_config='configs/ctglip/ctglip_nnunet_104organ.py'))

The Runner calls ``init_weights`` when training starts (not when testing or resuming from a
fine-tuning checkpoint, which holds the whole model), so only the backbone's tensors come from
the pretraining checkpoint; the decoder keeps its random initialisation. Unlike mmengine's
``Pretrained`` (which loads with ``strict=False`` and only warns), a checkpoint that does not
fit the backbone stops with one line naming the first mismatched key and both shapes.
"""
import os.path as osp

import torch
from mmengine.logging import print_log

from ctglip.registry import WEIGHT_INITIALIZERS
from ctglip.utils.errors import CheckpointError, ConfigError

LAST_CHECKPOINT = 'last_checkpoint'


def resolve_checkpoint(checkpoint, pretrain_config=None):
    """The ``.pth`` file that ``checkpoint`` names.

    Args:
        checkpoint (str): a ``.pth`` file, a work dir, or a work dir's ``last_checkpoint`` file
            (a text file holding the path of the newest checkpoint, written by tools/train.py).
        pretrain_config (str, optional): the config whose training writes it, named in the
            error when it is missing.

    Returns:
        str: the checkpoint file.

    Raises:
        CheckpointError: nothing is there; the message names the command that makes it.
    """
    path = str(checkpoint)
    if osp.isdir(path):
        path = osp.join(path, LAST_CHECKPOINT)
    if osp.basename(path) == LAST_CHECKPOINT and osp.isfile(path):
        with open(path) as f:
            target = f.read().strip()
        if not osp.isfile(target):  # a moved work dir: the file next to last_checkpoint
            beside = osp.join(osp.dirname(path), osp.basename(target))
            target = beside if osp.isfile(beside) else target
        if osp.isfile(target):
            return target
        path = f'{target} (named by {path})'
    elif osp.isfile(path):
        return path
    made_by = (f'pretrain first: python tools/train.py {pretrain_config} (it writes '
               f'{checkpoint})' if pretrain_config else
               'train the pretraining config first with tools/train.py')
    raise CheckpointError(f'pretraining checkpoint {path} does not exist. Fix: {made_by}, or '
                          'point model.backbone.init_cfg.checkpoint at a pretraining checkpoint '
                          '(a .pth file, a work dir or its last_checkpoint file).')


def encoder_state(path, prefix='backbone.', map_location='cpu'):
    """The tensors of a checkpoint under ``prefix``, with the prefix taken off.

    Raises:
        ConfigError: the checkpoint holds no tensor under ``prefix``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location=map_location)
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    prefix = prefix or ''
    out = {k[len(prefix):]: v for k, v in state.items()
           if k.startswith(prefix) and isinstance(v, torch.Tensor)}
    if not out:
        shown = ', '.join(list(state)[:3]) or 'none'
        raise ConfigError(f'checkpoint {path} holds no tensors under the prefix {prefix!r} '
                          f'(its keys begin {shown}). Fix: give a ctglip pretraining '
                          "checkpoint, or set init_cfg.prefix to its encoder's prefix.")
    return out


def first_mismatch(own, loaded):
    """``(key, own shape, loaded shape, number of mismatched keys)`` or None when they fit.

    A key missing on one side has the shape None there; keys are taken in ``own``'s order,
    then the keys only ``loaded`` has.
    """
    bad = []
    for key, tensor in own.items():
        other = loaded.get(key)
        if other is None or tuple(other.shape) != tuple(tensor.shape):
            bad.append((key, tuple(tensor.shape), None if other is None else tuple(other.shape)))
    bad += [(key, None, tuple(loaded[key].shape)) for key in loaded if key not in own]
    return bad[0] + (len(bad),) if bad else None


def load_encoder(module, checkpoint, prefix='backbone.', pretrain_config=None,
                 map_location='cpu'):
    """Load the encoder tensors of a pretraining checkpoint into ``module``, strictly.

    Args:
        module (nn.Module): the backbone to fill.
        checkpoint (str): see :func:`resolve_checkpoint`.
        prefix (str): the backbone's prefix in the checkpoint (``backbone.`` for CTGLIP).
        pretrain_config (str, optional): named when the checkpoint is missing.
        map_location (str): where tensors are loaded.

    Returns:
        str: the checkpoint file loaded.

    Raises:
        CheckpointError: no checkpoint there.
        ConfigError: the checkpoint is of another backbone or arch (one line: the first
            mismatched key and both shapes).
    """
    path = resolve_checkpoint(checkpoint, pretrain_config)
    state = encoder_state(path, prefix, map_location)
    own = module.state_dict()
    mismatch = first_mismatch(own, state)
    if mismatch is not None:
        key, mine, theirs, count = mismatch
        shown = lambda s: 'absent' if s is None else str(s)  # noqa: E731
        raise ConfigError(
            f'checkpoint {path} does not fit the backbone {type(module).__name__}: first '
            f'mismatched key {prefix}{key}: model {shown(mine)}, checkpoint {shown(theirs)} '
            f'({count} of {len(set(own) | set(state))} keys differ). Fix: initialise from the '
            'pretraining checkpoint of the same backbone and arch (model.backbone.init_cfg.'
            'checkpoint), or make model.backbone match the pretraining config.')
    module.load_state_dict(state, strict=True)
    print_log(f'encoder initialised from {path}: {len(state)} tensors under {prefix!r}',
              logger='current')
    return path


@WEIGHT_INITIALIZERS.register_module()
class PretrainedEncoder:
    """mmengine initializer (``init_cfg``) that loads a pretraining checkpoint's encoder.

    Put it on the backbone of a fine-tuning model; see :func:`load_encoder` for the checks.

    Args:
        checkpoint (str): a ``.pth`` file, a work dir or a work dir's ``last_checkpoint``.
        prefix (str): the backbone's prefix in the checkpoint.
        pretrain_config (str, optional): the pretraining config, named when the checkpoint
            is missing.
        map_location (str): where tensors are loaded.

    Example:
        >>> init_cfg = dict(type='PretrainedEncoder', checkpoint='work_dirs/x/last_checkpoint',
        ...                 pretrain_config='configs/ctglip/x.py')
    """

    def __init__(self, checkpoint, prefix='backbone.', pretrain_config=None, map_location='cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.pretrain_config = pretrain_config
        self.map_location = map_location

    def __call__(self, module):
        path = load_encoder(module, self.checkpoint, self.prefix, self.pretrain_config,
                            self.map_location)
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(module, init_info=f'{type(self).__name__}: loaded from {path}')
