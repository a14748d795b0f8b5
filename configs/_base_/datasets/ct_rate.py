# CT-RATE (non-contrast chest CT volumes with reports and 18 per-volume findings), after
# python tools/dataset_converters/ct_rate.py data/ct_rate --root CT-RATE --masks MASKS
# (docs/vocabularies.md: layout, the TotalSegmentator run that makes the organ masks, the
# mapping of the 18 findings to organs). Chest CT read as fVLM reads it: 1 x 1 x 3 mm voxels,
# HU window [-1150, 350]; the view is the bounding box of the organ masks plus a margin.
data_root = 'data/ct_rate'
organ_vocab = 'totalseg_v2'  # TotalSegmentator 2.x masks (one-piece heart, arch vessels)
# The one abnormality-vocabulary key (model, losses, report structurer, metrics read it):
# CT-RATE's 18 findings on TotalSegmentator organs, ctglip/vocabularies/ct_rate.json.
abnormality_vocab = 'ct_rate'
spacing = (1.0, 1.0, 3.0)  # mm, after resampling
hu_window = (-1150.0, 350.0)  # HU mapped to [0, 1]
box_margin = 8  # voxels around the bounding box of the organ masks
crop_size = (224, 224, 96)  # training crops, voxels (22 x 22 x 29 cm)
view_size = (384, 320, 128)  # largest validation / test view, voxels
spatial_keys = ['image', 'organ_label', 'tumor_mask']
# CT-CLIP's and fVLM's per-label table: AUC, F1 (support-weighted over both classes, as they
# report it), accuracy and precision (ppv), with sensitivity, specificity and the positive-class
# F1 next to them; every metric per label and macro over the 18.
ct_rate_rates = ('f1_weighted', 'accuracy', 'ppv', 'f1', 'sensitivity', 'specificity')

# The stride of the backbone's pooled map (2 for the shipped nnU-Net and MiT): the data
# loader's workers then compute each label map's overlap with the feature grid, off the
# training step. Another backbone: set its stride (the model warns on a mismatch) or None.
organ_cells_stride = 2

load_pipeline = [
    dict(type='CachedPreprocess', cache_dir='.cache/preprocessed', transforms=[
        dict(type='LoadCTStudy', organ_vocab=organ_vocab),
        dict(type='Spacingd', keys=spatial_keys, pixdim=spacing,
             mode=('bilinear', 'nearest', 'nearest'), allow_missing_keys=True),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=hu_window[0],
             a_max=hu_window[1], b_min=0.0, b_max=1.0, clip=True),
        dict(type='OrganBoxCrop', margin=box_margin),
    ]),
]
train_pipeline = load_pipeline + [
    dict(type='RandOrganCrop', spatial_size=crop_size),
    dict(type='PackCTInputs', organ_cells_stride=organ_cells_stride),
]
test_pipeline = load_pipeline + [
    dict(type='OrganBoxCrop', margin=box_margin, max_size=view_size),
    dict(type='PackCTInputs', organ_cells_stride=organ_cells_stride),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CTReportDataset', data_root=data_root, split='train',
                 organ_vocab=organ_vocab, phantom=None, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CTReportDataset', data_root=data_root, split='val',
                 organ_vocab=organ_vocab, phantom=None, pipeline=test_pipeline,
                 test_mode=True),
)
# CT-RATE's validation volumes: the held-out set of the published zero-shot tables
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = [
    dict(type='ZeroShotOrganRecognition', organ_vocab=organ_vocab),
    # per volume (CT-RATE's labels are per volume): a finding's score is its highest organ score
    dict(type='ZeroShotAbnormalityDetection', level='study', rates=ct_rate_rates,
         n_bootstrap=200, strict=False),
]
test_evaluator = [
    dict(type='ZeroShotOrganRecognition', organ_vocab=organ_vocab),
    dict(type='ZeroShotAbnormalityDetection', level='study', rates=ct_rate_rates,
         n_bootstrap=1000, bootstrap_unit='patient'),
]
