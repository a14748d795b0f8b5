# Tumor fine-tuning (nnU-Net CNN, phantom tumor set) from a random initialisation: the
# lower bound of the comparison. clip_nnunet_tumor.py and ctglip_nnunet_tumor.py differ from it
# only in model.backbone.init_cfg.
_base_ = [
    '../_base_/models/segmentor_nnunet.py',
    '../_base_/datasets/phantom_tumor.py',
    '../_base_/schedules/cpu_finetune.py',
    '../_base_/default_runtime.py',
]
