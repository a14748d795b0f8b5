# Tumor fine-tuning from the encoder of CT-GLIP pretraining: the last checkpoint of
# python tools/train.py configs/ctglip/ctglip_mit_104organ.py, which
# work_dirs/ctglip_mit_104organ/last_checkpoint names. Another checkpoint: --cfg-options
# model.backbone.init_cfg.checkpoint=PATH (a .pth file, a work dir or its last_checkpoint).
_base_ = './scratch_mit_tumor.py'
pretrain = 'ctglip_mit_104organ'
model = dict(backbone=dict(init_cfg=dict(
    type='PretrainedEncoder', prefix='backbone.',
    checkpoint=f'work_dirs/{pretrain}/last_checkpoint',
    pretrain_config=f'configs/ctglip/{pretrain}.py')))
