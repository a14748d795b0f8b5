"""Global average pooling: the whole CT as one embedding (the vanilla CLIP baseline)."""
import torch
from torch import nn

from ctglip.registry import POOLERS


@POOLERS.register_module()
class GlobalPooler(nn.Module):
    """Mean of the feature map over all cells, as one "organ" per study.

    Args:
        num_organs (int | None): accepted for the model's build call; unused.
        in_channels (int | None): accepted for the model's build call; unused.

    Shapes:
        ``feats`` ``B x C x d x h x w`` -> ``embeds`` ``B x 1 x C`` (float32), ``valid``
        ``B x 1`` (all True). ``organ_label``, ``num_organs`` and ``cells`` are ignored.
    """

    is_global = True  # the model pairs its one row per study with study-level text

    def __init__(self, num_organs=None, in_channels=None):
        super().__init__()

    def out_channels(self, in_channels):
        """Channels of the pooled embedding: those of the feature map."""
        return in_channels

    def forward(self, feats, organ_label=None, num_organs=None, cells=None):
        """Average ``feats`` over its spatial axes; see the class docstring."""
        if feats.dim() != 5:
            raise ValueError(f'GlobalPooler expects feats B x C x d x h x w, got shape '
                             f'{tuple(feats.shape)}.')
        embeds = feats.float().mean(dim=(2, 3, 4))[:, None]
        valid = torch.ones(embeds.shape[:2], dtype=torch.bool, device=feats.device)
        return embeds, valid
