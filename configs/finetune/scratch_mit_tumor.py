# Tumor fine-tuning (MiT 3D transformer, phantom tumor set) from a random initialisation: the
# lower bound of the comparison. clip_mit_tumor.py and ctglip_mit_tumor.py differ from it
# only in model.backbone.init_cfg.
_base_ = [
    '../_base_/models/segmentor_mit.py',
    '../_base_/datasets/phantom_tumor.py',
    '../_base_/schedules/cpu_finetune.py',
    '../_base_/default_runtime.py',
]

