# tiny_finetune_scratch.py initialised from the encoder of tiny_ctglip.py's last checkpoint.
_base_ = './tiny_finetune_scratch.py'
pretrain = 'tiny_ctglip'
model = dict(backbone=dict(init_cfg=dict(
    type='PretrainedEncoder', prefix='backbone.',
    checkpoint=f'work_dirs/{pretrain}/last_checkpoint',
    pretrain_config=f'configs/tests/{pretrain}.py')))
