from .ct_data_preprocessor import CTDataPreprocessor

__all__ = ['CTDataPreprocessor']
