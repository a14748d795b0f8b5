# A seconds-long tumor fine-tuning run for tests: tiny MiT (the backbone of tiny_ctglip.py) +
# SegFormer decoder, 16^3 crops, 4 iterations, on a tiny tumor manifest
# (ctglip.testing.tumor_data.make_tiny_tumor_dataset; --data-root DIR).
# tiny_finetune_clip.py / tiny_finetune_ctglip.py differ only in model.backbone.init_cfg.
_base_ = [
    '../_base_/models/segmentor_mit.py',
    '../_base_/datasets/phantom_tumor.py',
    '../_base_/schedules/cpu_finetune.py',
    '../_base_/default_runtime.py',
]
organ_vocab = 'totalseg_v1'
tumor_organs = ('liver', 'pancreas', 'kidney_left', 'kidney_right')
crop_size = (16, 16, 16)
keys = ['image', 'organ_label', 'tumor_mask']
load = [
    dict(type='LoadCTStudy', organ_vocab=organ_vocab),
    dict(type='SelectTumorLabels', values=(1,)),
    dict(type='Spacingd', keys=keys, pixdim=(4.0, 4.0, 4.0),
         mode=('bilinear', 'nearest', 'nearest')),
    dict(type='ScaleIntensityRanged', keys=['image'], a_min=-1000.0, a_max=1000.0, b_min=0.0,
         b_max=1.0, clip=True),
    dict(type='RecordAffine'),
]
train_pipeline = load + [dict(type='RandTumorCrop', spatial_size=crop_size, tumor_prob=0.5,
                              organs=tumor_organs),
                         dict(type='PackCTInputs')]
test_pipeline = load + [dict(type='TumorOrganLabels', organs=tumor_organs),
                        dict(type='PackCTInputs')]

model = dict(backbone=dict(arch='tiny'), decoder=dict(dim=8), roi_size=crop_size, sw_overlap=0.0,
             sw_batch_size=4)
dataset = dict(data_root='data/tiny_tumor', phantom=None)
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(dataset, pipeline=test_pipeline))
test_dataloader = dict(num_workers=0, dataset=dict(dataset, pipeline=test_pipeline))
val_evaluator = [dict(type='TumorDetection', n_bootstrap=0, strict=False),
                 dict(type='TumorDice', organs=['liver'], gt_key='tumor_mask')]
test_evaluator = [dict(type='TumorDetection', n_bootstrap=20),
                  dict(type='TumorDice', organs=['liver'], gt_key='tumor_mask')]

max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
