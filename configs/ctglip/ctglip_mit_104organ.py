# Full CT-GLIP, MiT 3D backbone, 104 TotalSegmentator v1 organs, built-in phantom data.
_base_ = [
    '../_base_/models/ctglip_mit.py',
    '../_base_/datasets/phantom_104organ.py',
    '../_base_/schedules/cpu_demo.py',
    '../_base_/default_runtime.py',
]
