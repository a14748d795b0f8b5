#!/usr/bin/env bash
# Train on several processes of one or more machines with torchrun:
#
#   tools/dist_train.sh CONFIG NPROC [train.py options ...]
#
# NPROC processes start on this machine, one per GPU, and run
# `tools/train.py CONFIG --launcher pytorch [options]`; torchrun gives each its RANK,
# LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, which mmengine reads.
#
# Environment variables (defaults in brackets):
#   NNODES       number of machines [1]
#   NODE_RANK    index of this machine, 0 .. NNODES-1 [0]
#   MASTER_ADDR  address of the machine with NODE_RANK=0, reachable from all the others [127.0.0.1]
#   PORT         free TCP port on that machine for the rendezvous [29500]
#
# Several machines: run the same command on each, with the same NNODES, MASTER_ADDR and PORT
# and its own NODE_RANK, e.g. on two machines with 8 GPUs each, 10.0.0.1 first:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8
# The global rank of a process is NODE_RANK * NPROC + its local rank; the world size is
# NNODES * NPROC. Every machine needs the same code, config and data paths.
#
# CPU-only machines (no CUDA): NCCL needs GPUs, so pass
#   --cfg-options env_cfg.dist_cfg.backend=gloo
# (tools/train.py then sets up the gloo process group itself, see init_cpu_distributed there).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [tools/train.py options ...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
