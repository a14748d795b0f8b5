# Full CT-GLIP, MiT 3D backbone, on CT-RATE with its 18 chest findings (abnormality_vocab='ct_rate'
# comes from the dataset base; prompts and dictionary follow the vocabulary).
_base_ = [
    '../_base_/models/ctglip_mit.py',
    '../_base_/datasets/ct_rate.py',
    '../_base_/schedules/gpu_ct_rate.py',
    '../_base_/default_runtime.py',
]
model = dict(
    organ_vocab='totalseg_v2',
    # the raw-intensity skip reads the dataset's HU window (channel 0)
    intensity_skip=dict(window=(-1150.0, 350.0)),
)
default_hooks = dict(checkpoint=dict(interval=5000))
