# CT-GLIP-initialised nnU-Net fine-tuned on msd-pancreas data in its own layout
# (configs/_base_/datasets/msd_pancreas_tumor.py; --data-root points at your copy). Swap the model
# base for segmentor_mit.py and the init_cfg (or drop it: scratch) for the other rows. The
# schedule is the CPU-sized phantom one: raise train_cfg.max_iters (and use a GPU) for real CT.
_base_ = [
    '../_base_/models/segmentor_nnunet.py',
    '../_base_/datasets/msd_pancreas_tumor.py',
    '../_base_/schedules/cpu_finetune.py',
    '../_base_/default_runtime.py',
]
pretrain = 'ctglip_nnunet_104organ'
model = dict(
    tumor_organs=('pancreas',),
    backbone=dict(init_cfg=dict(
        type='PretrainedEncoder', prefix='backbone.',
        checkpoint=f'work_dirs/{pretrain}/last_checkpoint',
        pretrain_config=f'configs/ctglip/{pretrain}.py')))
