# An iteration-based schedule for CT-RATE on one GPU (batch size 4, warm-up then cosine decay);
# a starting point, not a tuned recipe: scale max_iters with the data and the number of GPUs.
max_iters = 60000
val_interval = 5000

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=2000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=2000, end=max_iters, eta_min=1e-6),
]
