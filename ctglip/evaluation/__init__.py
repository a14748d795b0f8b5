"""Evaluation: metric functions (:mod:`ctglip.evaluation.functional`) and the registered
metrics. Importing this package registers the metrics in ``ctglip.registry.METRICS``."""
from ctglip.evaluation.functional import compute_thresholds, select_threshold
from ctglip.evaluation.metrics import (ZeroShotAbnormalityDetection, ZeroShotOrganRecognition,
                                       load_thresholds)

__all__ = ['ZeroShotAbnormalityDetection', 'ZeroShotOrganRecognition', 'compute_thresholds',
           'load_thresholds', 'select_threshold']
