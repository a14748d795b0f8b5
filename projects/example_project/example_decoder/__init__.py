from .decoder import ExampleLinearDecoder3D

__all__ = ['ExampleLinearDecoder3D']
