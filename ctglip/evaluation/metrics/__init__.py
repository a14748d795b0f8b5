"""Metrics registered in ``METRICS``: zero-shot organ recognition and abnormality detection."""
from ctglip.evaluation.metrics.zeroshot_abnormality import (ZeroShotAbnormalityDetection,
                                                            load_thresholds)
from ctglip.evaluation.metrics.zeroshot_organ import ZeroShotOrganRecognition

__all__ = ['ZeroShotAbnormalityDetection', 'ZeroShotOrganRecognition', 'load_thresholds']
