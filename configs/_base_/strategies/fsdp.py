# Fully sharded data parallel (FSDP) through mmengine's FlexibleRunner: parameters, gradients and
# AdamW states are sharded over the ranks instead of replicated (DDP, the default, needs no
# fragment). Train with tools/dist_train.sh or tools/slurm_train.sh as for DDP.
# On a machine without CUDA (tests, gloo) add
#   --cfg-options env_cfg.dist_cfg.backend=gloo strategy.model_wrapper.device_id=cpu
# (FSDP looks for an accelerator unless told the device).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # mmengine's FSDP wrapper with ctglip's non-finite guard and global-norm clipping
        type='ctglip.CTGLIPFullyShardedDataParallel',
        use_orig_params=True,
        sharding_strategy='FULL_SHARD',
        # one FSDP unit per submodule of >= 1 M parameters (the paper nnU-Net's deep stages)
        auto_wrap_policy=dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
                              min_num_params=1_000_000),
        # the frozen text encoder stays whole on every rank (and out of checkpoints)
        ignored_modules=['text_encoder'],
    ),
    # checkpoints hold the full (unsharded) state on rank 0, loadable by the DDP runner
    state_dict_cfg='full',
)
