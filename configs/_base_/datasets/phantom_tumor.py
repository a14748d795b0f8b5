# Tumor fine-tuning data: the built-in phantom restricted to abdominal CTs, in the manifest
# format, with tumor masks of liver, pancreatic and renal masses (generated on first use).
# 'tumor' profile: the benchmark profile (every finding visible at 5 mm) with hyperdense
# masses 150-250 HU above their organ, of at least 26-30 mm (5-6 voxels at 5 mm), at 13-18 %
# prevalence each (why: docs/finetuning.md, "Why the tumor profile"); a seed of its own, so
# no fine-tuning patient is a pretraining patient (data/phantom).
# Point every dataloader at other data with --data-root DIR (a manifest folder whose studies
# of every split have "tumor_mask").
data_root = 'data/phantom_tumor'
organ_vocab = 'totalseg_v1'
phantom = dict(num_cases=240, seed=14, spacing=5.0, fov='abdomen', profile='tumor')
# the pretraining grid and intensity scale (configs/_base_/datasets/phantom_104organ.py): the
# encoder was pretrained on them
spacing = (5.0, 5.0, 5.0)  # mm
hu_window = (-1000.0, 1000.0)  # HU mapped to [0, 1]
crop_size = (48, 48, 48)  # training crops (240 mm); also the model's sliding-window roi_size
tumor_organs = ('liver', 'pancreas', 'kidney_left', 'kidney_right')
spatial_keys = ['image', 'organ_label', 'tumor_mask']

load_pipeline = [
    dict(type='CachedPreprocess', cache_dir='.cache/preprocessed', transforms=[
        dict(type='LoadCTStudy', organ_vocab=organ_vocab),
        dict(type='SelectTumorLabels', values=(1,)),  # the phantom's masks are binary
        dict(type='Spacingd', keys=spatial_keys, pixdim=spacing,
             mode=('bilinear', 'nearest', 'nearest')),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=hu_window[0],
             a_max=hu_window[1], b_min=0.0, b_max=1.0, clip=True),
        dict(type='RecordAffine'),  # predictions are written on the input CT's grid
    ]),
]
train_pipeline = load_pipeline + [
    dict(type='RandTumorCrop', spatial_size=crop_size, tumor_prob=0.5, organs=tumor_organs,
         organ_vocab=organ_vocab),
    dict(type='RandFlipLR', prob=0.5, organ_vocab=organ_vocab),
    dict(type='PackCTInputs'),
]
# whole volumes (the model slides its window over them) with per-organ tumor labels
test_pipeline = load_pipeline + [
    dict(type='TumorOrganLabels', organs=tumor_organs, organ_vocab=organ_vocab),
    dict(type='PackCTInputs'),
]

# The phantom writes tumor_masks/ only for studies with a tumor (its README.txt), so a study
# without one is tumor free. Keep the default missing_tumor_mask='error' for other data.
dataset = dict(type='TumorManifestDataset', data_root=data_root, organ_vocab=organ_vocab,
               phantom=phantom, missing_tumor_mask='tumor_free')
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(dataset, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,  # whole volumes of different sizes
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(dataset, split='val', pipeline=test_pipeline, test_mode=True),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = [
    # strict=False: a validation split without both classes in any organ warns, not stops
    dict(type='TumorDetection', n_bootstrap=0, strict=False),
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['liver', 'pancreas', 'kidney'],
         gt_key='tumor_mask'),
]
test_evaluator = [
    dict(type='TumorDetection', n_bootstrap=1000),
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['liver', 'pancreas', 'kidney'],
         gt_key='tumor_mask'),
]
