from .ct_data_sample import CTDataSample

__all__ = ['CTDataSample']
