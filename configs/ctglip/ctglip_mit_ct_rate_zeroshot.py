# Zero-shot test of a CT-GLIP (MiT) model on CT-RATE's validation volumes (the 'test' split of the
# converted manifest), reported as CT-CLIP and fVLM report it: per label and macro over the 18,
# AUC, F1 (support-weighted over both classes), accuracy and precision, with patient-level
# bootstrap intervals. For the nnU-Net model use _base_ = './ctglip_nnunet_ct_rate.py'.
#
#   python tools/test.py configs/ctglip/ctglip_mit_ct_rate_zeroshot.py CKPT --out-metrics m.json
#
# Thresholds are chosen on the val split in the same run (tools/test.py); CT-CLIP chooses them
# on the evaluated volumes themselves: add --no-val-calibration for numbers made that way.
# Keys: zeroshot/abn_auc/<group>/<finding>, zeroshot/abn_f1_weighted/..., zeroshot/abn_accuracy/...,
# zeroshot/abn_ppv/... (precision); zeroshot/abn_auc etc. are the macro averages.
_base_ = './ctglip_mit_ct_rate.py'
test_evaluator = [
    dict(type='ZeroShotAbnormalityDetection', level='study',
         rates=('f1_weighted', 'accuracy', 'ppv', 'f1', 'sensitivity', 'specificity'),
         threshold_rule='nearest_01', n_bootstrap=1000, bootstrap_unit='patient'),
]
