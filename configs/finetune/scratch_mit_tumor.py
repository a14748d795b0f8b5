# Tumor fine-tuning (MiT 3D transformer, phantom tumor set) from a random initialisation: the
# lower bound of the comparison. clip_mit_tumor.py and ctglip_mit_tumor.py differ from it
# only in model.backbone.init_cfg.
_base_ = [
    '../_base_/models/segmentor_mit.py',
    '../_base_/datasets/phantom_tumor.py',
    '../_base_/schedules/cpu_finetune.py',
    '../_base_/default_runtime.py',
]

# MiT needs twice the nnU-Net's schedule: from scratch it predicts no tumor voxel at 600
# iterations and reaches tumor AUC 0.82 at 1200 (seed 0, stem_norm=False; with SegFormer's
# stem LayerNorm 0.48 even at 1200). docs/finetuning.md, "Why MiT learns no tumor".
max_iters = 1200
val_interval = max_iters
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-5),
]
