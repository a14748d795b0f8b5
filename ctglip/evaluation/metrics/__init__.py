"""Metrics registered in ``METRICS``: zero-shot organ recognition and abnormality detection,
and the fine-tuning benchmarks of tumors (detection AUC, segmentation Dice)."""
from ctglip.evaluation.metrics.tumor import TumorDetection, TumorDice, dice_from_counts
from ctglip.evaluation.metrics.zeroshot_abnormality import (ZeroShotAbnormalityDetection,
                                                            load_thresholds)
from ctglip.evaluation.metrics.zeroshot_organ import ZeroShotOrganRecognition

__all__ = ['TumorDetection', 'TumorDice', 'ZeroShotAbnormalityDetection',
           'ZeroShotOrganRecognition', 'dice_from_counts', 'load_thresholds']
