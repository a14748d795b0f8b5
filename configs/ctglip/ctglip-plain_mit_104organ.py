# The paper's plain CT-GLIP (MiT 3D): organ embeddings are the pooled learned map only, without
# the raw-intensity skip that the shipped configs add (docs/abnormality_diagnosis.md).
_base_ = './ctglip_mit_104organ.py'
model = dict(intensity_skip=None)
