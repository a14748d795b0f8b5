"""Datasets of CT studies with organ masks and reports, their pipelines and the phantom data.

Imports are lazy so that light tools (the report structurer) do not pay for torch.
"""

__all__ = ['CTReportDataset']


def __getattr__(name):
    if name == 'CTReportDataset':
        from .ct_report_dataset import CTReportDataset
        return CTReportDataset
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
