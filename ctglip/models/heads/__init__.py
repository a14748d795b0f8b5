from .projection import ProjectionHead

__all__ = ['ProjectionHead']
