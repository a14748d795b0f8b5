# The paper's plain CT-GLIP (MiT 3D): organ embeddings are the pooled learned map only, without
# the raw-intensity skip that the shipped configs add (docs/abnormality_diagnosis.md), and the
# MiT keeps SegFormer's LayerNorm after its first patch embedding (stem_norm=True; the shipped
# configs drop it, docs/finetuning.md).
_base_ = './ctglip_mit_104organ.py'
model = dict(intensity_skip=None, backbone=dict(stem_norm=True))
