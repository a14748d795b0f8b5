"""Organ-level masked average pooling, the paper's grounded visual embedding."""
from ctglip.models.poolers.base import BaseOrganPooler
from ctglip.registry import POOLERS


@POOLERS.register_module()
class OrganMaskPooler(BaseOrganPooler):
    """Average of the feature map over each organ's mask, for all organs at once.

    The label map may be finer than the feature grid (by an integer factor per axis). Each
    feature cell then weighs by the number of the organ's voxels inside it, which makes the
    result the exact masked mean of the nearest-upsampled feature map: no organ is lost to
    downsampling, and an organ smaller than one cell still gets the embedding of the cells it
    touches. Validity counts voxels at the label map's resolution (``min_voxels``).

    Args:
        min_voxels (int): fewest voxels for an organ to be valid; fewer -> valid False and a
            zero embedding.
        num_organs (int | None): K; see ``BaseOrganPooler``.
        in_channels (int | None): accepted for the model's build call; unused.

    Shapes:
        ``feats`` ``B x C x d x h x w``, ``organ_label`` ``B x D x H x W`` (long, 0..K) ->
        ``organ_embeds`` ``B x K x C`` (float32), ``valid`` ``B x K`` (bool).
    """

    def forward(self, feats, organ_label, num_organs=None, cells=None):
        """Pool ``feats`` over every organ of ``organ_label``; see the class docstring."""
        cells = self._cells(feats, organ_label, num_organs, cells)
        pooled = cells.weighted_mean(cells.gather_map(feats))
        return self._finish(pooled, cells)
