"""Datasets of CT studies with organ masks and reports, their pipelines and the phantom data."""
from .ct_report_dataset import CTReportDataset

__all__ = ['CTReportDataset']
