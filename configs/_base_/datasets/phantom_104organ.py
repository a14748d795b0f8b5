# The built-in phantom dataset (generated on first use) in the manifest format, 104 organs.
# Point every dataloader at real data with tools/train.py --data-root DIR.
data_root = 'data/phantom'
organ_vocab = 'totalseg_v1'
# The abnormality vocabulary (organ groups and their findings, ctglip/vocabularies/*.json): the one
# key that the model, its losses, the report structurer and the zero-shot metrics all read
# (tools hand it to every component that takes `abnormality_vocab`). 'default': the 16 findings.
abnormality_vocab = 'default'
phantom = dict(num_cases=200, seed=0)  # generated at data_root when it holds no manifest
spacing = (5.0, 5.0, 5.0)  # mm, after resampling
crop_size = (64, 64, 64)  # voxels
hu_window = (-1000.0, 1000.0)  # HU mapped to [0, 1]
spatial_keys = ['image', 'organ_label', 'tumor_mask']

# The stride of the backbone's pooled map (2 for the shipped nnU-Net and MiT): the data
# loader's workers then compute each label map's overlap with the feature grid, off the
# training step. Another backbone: set its stride (the model warns on a mismatch) or None.
organ_cells_stride = 2

# Decode, reorient to RAS, resample and window once per study; cached inside the dataset folder
# (rebuilt when these settings or the files change). tools/preprocess.py fills it up front.
load_pipeline = [
    dict(type='CachedPreprocess', cache_dir='.cache/preprocessed', transforms=[
        dict(type='LoadCTStudy', organ_vocab=organ_vocab),
        dict(type='Spacingd', keys=spatial_keys, pixdim=spacing,
             mode=('bilinear', 'nearest', 'nearest'), allow_missing_keys=True),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=hu_window[0],
             a_max=hu_window[1], b_min=0.0, b_max=1.0, clip=True),
    ]),
]
train_pipeline = load_pipeline + [
    dict(type='RandOrganCrop', spatial_size=crop_size),
    dict(type='PackCTInputs', organ_cells_stride=organ_cells_stride),
]
test_pipeline = load_pipeline + [
    dict(type='CenterPadCrop', spatial_size=crop_size),
    dict(type='PackCTInputs', organ_cells_stride=organ_cells_stride),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CTReportDataset', data_root=data_root, split='train',
                 organ_vocab=organ_vocab, phantom=phantom, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CTReportDataset', data_root=data_root, split='val',
                 organ_vocab=organ_vocab, phantom=phantom, pipeline=test_pipeline,
                 test_mode=True),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = [
    dict(type='ZeroShotOrganRecognition', organ_vocab=organ_vocab),
    # strict=False: a validation split without abnormal cases warns instead of ending the run
    dict(type='ZeroShotAbnormalityDetection', n_bootstrap=200, strict=False),
]
test_evaluator = [
    dict(type='ZeroShotOrganRecognition', organ_vocab=organ_vocab),
    dict(type='ZeroShotAbnormalityDetection', n_bootstrap=1000),
]
