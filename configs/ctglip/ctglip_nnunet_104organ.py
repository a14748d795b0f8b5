# Full CT-GLIP, nnU-Net style 3D CNN backbone (pooled at its highest-resolution decoder map).
_base_ = [
    '../_base_/models/ctglip_mit.py',
    '../_base_/datasets/phantom_104organ.py',
    '../_base_/schedules/cpu_demo.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(_delete_=True, type='NNUNetEncoder3D', arch='small'))
