"""Datasets of CT studies with organ masks and reports (and tumor benchmarks in their own
layouts), their pipelines and the phantom data.

Imports are lazy so that light tools (the report structurer) do not pay for torch.
"""

__all__ = ['CTReportDataset', 'KiTSTumorDataset', 'MSDTumorDataset', 'TumorManifestDataset']

_TUMOR_LAYOUTS = ('KiTSTumorDataset', 'MSDTumorDataset', 'TumorLayoutDataset', 'split_cases')


def __getattr__(name):
    if name == 'CTReportDataset':
        from .ct_report_dataset import CTReportDataset
        return CTReportDataset
    if name == 'TumorManifestDataset':
        from .tumor_manifest import TumorManifestDataset
        return TumorManifestDataset
    if name in _TUMOR_LAYOUTS:
        from . import tumor_layouts
        return getattr(tumor_layouts, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
