# A seconds-long CT-GLIP run on a converted tiny CT-RATE (ctglip.testing.ct_rate + the converter):
# the CT-RATE configs with a tiny MiT, coarse voxels and 4 iterations. Use with --data-root DIR
# and --cfg-options model.text_encoder.model_path=PATH (a tiny text encoder).
_base_ = ['../ctglip/ctglip_mit_ct_rate.py']

spacing = (4.0, 4.0, 5.0)
crop_size = (24, 24, 16)
keys = ['image', 'organ_label', 'tumor_mask']
load = [
    dict(type='LoadCTStudy', organ_vocab='totalseg_v2'),
    dict(type='Spacingd', keys=keys, pixdim=spacing, mode=('bilinear', 'nearest', 'nearest'),
         allow_missing_keys=True),
    dict(type='ScaleIntensityRanged', keys=['image'], a_min=-1150.0, a_max=350.0, b_min=0.0,
         b_max=1.0, clip=True),
    dict(type='OrganBoxCrop', margin=1),
]
train_pipeline = load + [dict(type='RandOrganCrop', spatial_size=crop_size),
                         dict(type='PackCTInputs')]
test_pipeline = load + [dict(type='OrganBoxCrop', margin=1, max_size=(32, 32, 32)),
                        dict(type='PackCTInputs')]

model = dict(backbone=dict(arch='tiny'), embed_dim=32)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='data/tiny_ct_rate', pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0,
                      dataset=dict(data_root='data/tiny_ct_rate', pipeline=test_pipeline))
test_dataloader = dict(batch_size=2, num_workers=0,
                       dataset=dict(data_root='data/tiny_ct_rate', pipeline=test_pipeline))
rates = ('f1_weighted', 'accuracy', 'ppv', 'f1', 'sensitivity', 'specificity')
val_evaluator = [dict(type='ZeroShotOrganRecognition', organ_vocab='totalseg_v2'),
                 dict(type='ZeroShotAbnormalityDetection', level='study', rates=rates,
                      n_bootstrap=20, strict=False)]
test_evaluator = [dict(type='ZeroShotOrganRecognition', organ_vocab='totalseg_v2'),
                  dict(type='ZeroShotAbnormalityDetection', level='study', rates=rates,
                       n_bootstrap=20, bootstrap_unit='patient')]

max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
