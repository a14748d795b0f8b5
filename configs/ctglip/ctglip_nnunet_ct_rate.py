# Full CT-GLIP, nnU-Net style 3D CNN backbone, on CT-RATE with its 18 chest findings.
_base_ = './ctglip_mit_ct_rate.py'
model = dict(backbone=dict(_delete_=True, type='NNUNetEncoder3D', arch='small'))
