# Tumor fine-tuning model on the MiT 3D transformer of pretraining: its four stage maps and its
# pretrained fused map (levels 0-4 of MiT3D('small')) -> SegFormer all-MLP decoder -> 2-class
# logits; Dice + CE; sliding-window inference; per-organ tumor probability from the mask.
model = dict(
    type='CTSegmentor',
    organ_vocab='totalseg_v1',
    # stem_norm as in pretraining (configs/_base_/models/ctglip_mit.py): the checkpoints of the
    # two settings do not fit each other
    backbone=dict(type='MiT3D', arch='small', out_indices=(0, 1, 2, 3, 4), stem_norm=False),
    decoder=dict(type='SegFormerDecoder3D', dim=64, dropout=0.1),
    loss=dict(type='DiceCELoss', to_onehot_y=True, softmax=True, include_background=False,
              batch=True),
    roi_size=(48, 48, 48),  # = the dataset's crop_size
    sw_batch_size=4,
    sw_overlap=0.25,
    tumor_organs=('liver', 'pancreas', 'kidney_left', 'kidney_right'),
    score_topk=8,
)
