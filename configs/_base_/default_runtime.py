# Runtime shared by every config: hooks, logging, visualisation, scope, randomness.
default_scope = 'ctglip'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# Exact resume: random generator states travel with each checkpoint. Inference metadata
# (preprocessing, vocabulary, prompts, thresholds) too: tools/infer.py and tools/export.py
# need nothing but the checkpoint.
custom_hooks = [dict(type='RNGStateHook'), dict(type='InferenceMetaHook')]

# Distributed runs keep the non-finite guard of the model's training step. The scope prefix is
# needed: the Runner looks the type up in mmengine's root MODEL_WRAPPERS, which does not search
# its ctglip child for an unprefixed name.
model_wrapper_cfg = dict(type='ctglip.CTGLIPDistributedDataParallel', find_unused_parameters=False)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=False, window_size=10)
log_level = 'INFO'

load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
