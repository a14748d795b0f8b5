# Tumor fine-tuning model on the nnU-Net trunk of pretraining: all four levels of
# NNUNetEncoder3D('small') -> U-Net decoder -> 2-class logits; Dice + CE; sliding-window
# inference; per-organ tumor probability from the predicted mask (CTSegmentor's docstring).
model = dict(
    type='CTSegmentor',
    organ_vocab='totalseg_v1',
    backbone=dict(type='NNUNetEncoder3D', arch='small', out_indices=(0, 1, 2, 3)),
    decoder=dict(type='UNetDecoder3D', num_convs=1),
    loss=dict(type='DiceCELoss', to_onehot_y=True, softmax=True, include_background=False,
              batch=True),
    roi_size=(48, 48, 48),  # = the dataset's crop_size
    sw_batch_size=4,
    sw_overlap=0.25,
    tumor_organs=('liver', 'pancreas', 'kidney_left', 'kidney_right'),
    score_topk=8,
)
