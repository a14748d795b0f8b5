# A seconds-long CT-GLIP run for tests and smoke checks: tiny MiT, 32^3 crops, 4 iterations.
# Use with --data-root DIR (e.g. a folder from ctglip.testing.make_tiny_dataset) and
# --cfg-options model.text_encoder.model_path=PATH for a tiny text encoder.
_base_ = ['../ctglip/ctglip_mit_104organ.py']

spacing = (4.0, 4.0, 4.0)
crop_size = (32, 32, 32)
keys = ['image', 'organ_label', 'tumor_mask']
load = [
    dict(type='LoadCTStudy', organ_vocab='totalseg_v1'),
    dict(type='Spacingd', keys=keys, pixdim=spacing, mode=('bilinear', 'nearest', 'nearest'),
         allow_missing_keys=True),
    dict(type='ScaleIntensityRanged', keys=['image'], a_min=-1000.0, a_max=1000.0, b_min=0.0,
         b_max=1.0, clip=True),
]
train_pipeline = load + [dict(type='RandOrganCrop', spatial_size=crop_size),
                         dict(type='PackCTInputs')]
test_pipeline = load + [dict(type='CenterPadCrop', spatial_size=crop_size),
                        dict(type='PackCTInputs')]

model = dict(backbone=dict(arch='tiny'), embed_dim=32)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='data/tiny', phantom=None,
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0,
                      dataset=dict(data_root='data/tiny', phantom=None, pipeline=test_pipeline))
test_dataloader = dict(batch_size=2, num_workers=0,
                       dataset=dict(data_root='data/tiny', phantom=None, pipeline=test_pipeline))
val_evaluator = [dict(type='ZeroShotOrganRecognition'),
                 dict(type='ZeroShotAbnormalityDetection', n_bootstrap=20)]
test_evaluator = val_evaluator

max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
