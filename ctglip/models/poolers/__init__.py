"""Poolers that turn a 3D feature map into organ (or global) embeddings, in ``POOLERS``."""
from ctglip.models.poolers.attention import AttentionOrganPooler
from ctglip.models.poolers.base import BaseOrganPooler, OrganCells, organ_cells
from ctglip.models.poolers.focal import OrganGeMPooler, OrganMeanMaxPooler
from ctglip.models.poolers.global_pool import GlobalPooler
from ctglip.models.poolers.intensity import OrganIntensityStats
from ctglip.models.poolers.organ_mask import OrganMaskPooler

__all__ = ['AttentionOrganPooler', 'BaseOrganPooler', 'GlobalPooler', 'OrganCells',
           'OrganGeMPooler', 'OrganIntensityStats', 'OrganMaskPooler', 'OrganMeanMaxPooler',
           'organ_cells']
