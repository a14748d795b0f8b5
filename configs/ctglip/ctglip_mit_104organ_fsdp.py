# The main MiT CT-GLIP config trained with FSDP (mmengine FlexibleRunner + FSDPStrategy) instead
# of DDP; same model, data and schedule:
#   tools/dist_train.sh configs/ctglip/ctglip_mit_104organ_fsdp.py 8
_base_ = [
    './ctglip_mit_104organ.py',
    '../_base_/strategies/fsdp.py',
]
