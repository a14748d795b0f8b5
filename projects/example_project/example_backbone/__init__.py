from .backbone import ExampleConvEncoder3D

__all__ = ['ExampleConvEncoder3D']
