# Pancreas tumors of the Medical Segmentation Decathlon (Task07_Pancreas): the liver task's
# dataset config (msd_liver_tumor.py: layout, TotalSegmentator organ masks, splits, grid)
# with the pancreas as the task organ. Task07's label 2 is the tumor (1 = pancreas).
_base_ = ['./msd_liver_tumor.py']

data_root = 'data/Task07_Pancreas'
tumor_organs = ('pancreas',)

train_pipeline = _base_.load_pipeline + [
    dict(type='RandTumorCrop', spatial_size=_base_.crop_size, tumor_prob=0.5,
         organs=tumor_organs, organ_vocab=_base_.organ_vocab),
    dict(type='PackCTInputs'),
]
test_pipeline = _base_.load_pipeline + [
    dict(type='TumorOrganLabels', organs=tumor_organs, organ_vocab=_base_.organ_vocab),
    dict(type='PackCTInputs'),
]
dataset = dict(data_root=data_root, task_organ='pancreas')  # merged into the liver's
train_dataloader = dict(dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(dataset, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(dataset, pipeline=test_pipeline))
# the Dice of the task organ
val_evaluator = [dict(e, organs=['pancreas']) if e['type'] == 'TumorDice' else e
                 for e in _base_.val_evaluator]
test_evaluator = [dict(e, organs=['pancreas']) if e['type'] == 'TumorDice' else e
                  for e in _base_.test_evaluator]
