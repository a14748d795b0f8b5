# Kidney tumors of KiTS (KiTS19 / KiTS21 / KiTS23), read from the case folders
# (case_XXXXX/imaging.nii.gz, segmentation.nii.gz; label 2 = tumor, 3 = cyst, not counted).
# Organ masks come from your TotalSegmentator run in each case folder (TotalSegmentator 2.x):
#   TotalSegmentator -i case_00000/imaging.nii.gz -o case_00000/organ_mask.nii.gz --ml
# Splits are drawn over the cases (val 10 %, test 20 %, seed 0). Detection is scored per kidney:
# the kidney without tumor is the negative. --data-root DIR points every dataloader at another
# folder of case folders.
data_root = 'data/kits23/dataset'
organ_vocab = 'totalseg_v1'
spacing = (5.0, 5.0, 5.0)  # the pretraining grid (mm)
hu_window = (-1000.0, 1000.0)  # the pretraining intensity scale
crop_size = (48, 48, 48)
tumor_organs = ('kidney_left', 'kidney_right')
spatial_keys = ['image', 'organ_label', 'tumor_mask']

load_pipeline = [
    dict(type='CachedPreprocess', cache_dir='.cache/preprocessed', transforms=[
        dict(type='LoadCTStudy', organ_vocab=organ_vocab),
        dict(type='SelectTumorLabels', values=(2,)),
        dict(type='Spacingd', keys=spatial_keys, pixdim=spacing,
             mode=('bilinear', 'nearest', 'nearest')),
        dict(type='ScaleIntensityRanged', keys=['image'], a_min=hu_window[0],
             a_max=hu_window[1], b_min=0.0, b_max=1.0, clip=True),
        dict(type='RecordAffine'),
    ]),
]
train_pipeline = load_pipeline + [
    dict(type='RandTumorCrop', spatial_size=crop_size, tumor_prob=0.5, organs=tumor_organs,
         organ_vocab=organ_vocab),
    dict(type='RandFlipLR', prob=0.5, organ_vocab=organ_vocab),
    dict(type='PackCTInputs'),
]
test_pipeline = load_pipeline + [
    dict(type='TumorOrganLabels', organs=tumor_organs, organ_vocab=organ_vocab),
    dict(type='PackCTInputs'),
]

dataset = dict(type='KiTSTumorDataset', data_root=data_root, tumor_labels=(2,),
               label_scheme='totalseg_v2', organ_vocab=organ_vocab)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(dataset, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(dataset, split='val', pipeline=test_pipeline, test_mode=True),
)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = [
    dict(type='TumorDetection', n_bootstrap=0, strict=False),
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['kidney'], gt_key='tumor_mask'),
]
test_evaluator = [
    dict(type='TumorDetection', n_bootstrap=1000, strict=False),
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['kidney'], gt_key='tumor_mask'),
]
