# The paper's plain CT-GLIP (nnU-Net style CNN): organ embeddings are the pooled learned map
# only, without the raw-intensity skip that the shipped configs add
# (docs/abnormality_diagnosis.md).
_base_ = './ctglip_nnunet_104organ.py'
model = dict(intensity_skip=None)
