# Pancreas tumors of the Medical Segmentation Decathlon (Task07_Pancreas), read from the task
# folder as extracted (dataset.json, imagesTr/, labelsTr/; label 2 = tumor). Organ masks come
# from your TotalSegmentator run on each training image (TotalSegmentator 2.x, --ml):
#   TotalSegmentator -i imagesTr/<case>.nii.gz -o organ_masks/<case>.nii.gz --ml
# Splits are drawn over the cases (val 10 %, test 20 %, seed 0). --data-root DIR points every
# dataloader at another task folder.
data_root = 'data/Task07_Pancreas'
organ_mask_dir = 'organ_masks'  # relative to data_root
organ_vocab = 'totalseg_v1'
spacing = (5.0, 5.0, 5.0)  # the pretraining grid (mm)
hu_window = (-1000.0, 1000.0)  # the pretraining intensity scale
crop_size = (48, 48, 48)
tumor_organs = ('pancreas',)
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
    dict(type='PackCTInputs'),
]
test_pipeline = load_pipeline + [
    dict(type='TumorOrganLabels', organs=tumor_organs, organ_vocab=organ_vocab),
    dict(type='PackCTInputs'),
]

dataset = dict(type='MSDTumorDataset', data_root=data_root, organ_mask_dir=organ_mask_dir,
               task_organ='pancreas', label_scheme='totalseg_v2', organ_vocab=organ_vocab)
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
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['pancreas'], gt_key='tumor_mask'),
]
# Most cases of the task hold a tumor: detection AUC needs tumor-free cases in the test split
# (strict=False reports only the counts when there are none).
test_evaluator = [
    dict(type='TumorDetection', n_bootstrap=1000, strict=False),
    dict(type='TumorDice', organ_vocab=organ_vocab, organs=['pancreas'], gt_key='tumor_mask'),
]
