"""Attention pooling per organ (fVLM style): a learnable query per organ over its cells."""
import math

import torch
from timm.layers import trunc_normal_
from torch import nn

from ctglip.models.poolers.base import BaseOrganPooler, feature_cells
from ctglip.registry import POOLERS
from ctglip.utils.errors import ConfigError


@POOLERS.register_module()
class AttentionOrganPooler(BaseOrganPooler):
    """Multi-head attention of one learnable query per organ over the cells of its mask.

    Organ ``k``'s query attends to the feature cells that hold at least one of its voxels; all
    other cells are masked out (as if their logits were -inf). The masked softmax is computed
    over the sparse (study, organ, cell) overlap rather than a dense ``B x K x cells`` logit
    tensor, which would not fit at 104 organs and a full-resolution grid. Absent organs have
    no cells: valid False, zero embedding, no NaN.

    Args:
        num_organs (int): K, one query per organ (the model passes it).
        in_channels (int): C of the feature map (the model passes it).
        num_heads (int): attention heads; must divide ``in_channels``.
        overlap_bias (bool): add ``log(fraction of the cell inside the organ)`` to the logits,
            so cells the organ barely touches weigh less (useful on coarse grids). fVLM uses
            plain masking: False.
        min_voxels (int): see ``BaseOrganPooler``.

    Shapes:
        ``feats`` ``B x C x d x h x w``, ``organ_label`` ``B x D x H x W`` (long, 0..K) ->
        ``organ_embeds`` ``B x K x C`` (float32), ``valid`` ``B x K`` (bool).
    """

    def __init__(self, num_organs=None, in_channels=None, num_heads=4, overlap_bias=False,
                 min_voxels=1):
        super().__init__(min_voxels=min_voxels, num_organs=num_organs, in_channels=in_channels)
        if num_organs is None or in_channels is None:
            raise ConfigError('AttentionOrganPooler needs num_organs and in_channels (one '
                              'query per organ); the model passes them, or set them in the '
                              f'config (got num_organs={num_organs}, in_channels={in_channels}).')
        if in_channels % num_heads:
            raise ConfigError(f'AttentionOrganPooler: num_heads={num_heads} must divide '
                              f'in_channels={in_channels}.')
        self.num_heads = num_heads
        self.overlap_bias = overlap_bias
        self.queries = nn.Parameter(torch.empty(num_organs, in_channels))
        self.norm = nn.LayerNorm(in_channels)
        self.q_proj = nn.Linear(in_channels, in_channels)
        self.kv_proj = nn.Linear(in_channels, 2 * in_channels)
        self.out_proj = nn.Linear(in_channels, in_channels)
        trunc_normal_(self.queries, std=.02)

    def forward(self, feats, organ_label, num_organs=None, cells=None):
        """Attend from each organ's query to its cells; see the class docstring."""
        cells = self._cells(feats, organ_label, num_organs, cells)
        if cells.num_organs != self.queries.shape[0]:
            raise ValueError(f'AttentionOrganPooler was built for {self.queries.shape[0]} '
                             f'organs, called with num_organs={cells.num_organs}.')
        batch_size, channels = feats.shape[:2]
        heads, head_dim = self.num_heads, channels // self.num_heads
        keys, values = self.kv_proj(self.norm(feature_cells(feats))).chunk(2, dim=-1)
        queries = self.q_proj(self.queries).view(-1, heads, head_dim)          # K x h x c
        organ = cells.segment % cells.num_organs
        pair_keys = cells.gather(keys).view(-1, heads, head_dim)               # P x h x c
        logits = (queries[organ] * pair_keys).sum(-1) / math.sqrt(head_dim)    # P x h
        if self.overlap_bias:
            cell_volume = organ_label[0].numel() / feats[0, 0].numel()
            logits = logits + torch.log(cells.voxels / cell_volume)[:, None]
        # Softmax within each (study, organ): subtract the segment max, normalise by the sum.
        peak = cells.segment_max(logits.detach())
        weights = torch.exp(logits - peak[cells.segment])
        weights = weights / cells.segment_sum(weights)[cells.segment]
        pair_values = cells.gather(values).view(-1, heads, head_dim)
        pooled = cells.segment_sum(weights[..., None] * pair_values)             # B*K x h x c
        pooled = self.out_proj(pooled.reshape(batch_size * cells.num_organs, channels))
        return self._finish(pooled, cells)
