#!/usr/bin/env bash
# Train on a Slurm cluster with srun:
#
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options ...]
#
# srun starts GPUS tasks (GPUS_PER_NODE per node), each running
# `tools/train.py CONFIG --launcher slurm [options]`. mmengine's init_dist reads the Slurm
# variables of its task: SLURM_PROCID (global rank), SLURM_NTASKS (world size), SLURM_LOCALID
# (rank on the node, the GPU it uses) and SLURM_NODELIST (the first node, found with
# `scontrol show hostname`, becomes MASTER_ADDR unless MASTER_ADDR is set). MASTER_PORT, when
# set, is the rendezvous port [29500].
#
# Environment variables (defaults in brackets):
#   GPUS           total number of tasks (= GPUs) [8]
#   GPUS_PER_NODE  tasks (= GPUs) per node [8, at most GPUS]
#   CPUS_PER_TASK  CPU cores per task, for data loading workers [5]
#   SRUN_ARGS      further srun options, e.g. "--quotatype=auto" or "--time=24:00:00" []
#
# Example, 16 GPUs on two nodes of partition "gpu":
#   GPUS=16 GPUS_PER_NODE=8 tools/slurm_train.sh gpu ctglip configs/ctglip/ctglip_mit_104organ.py
#
# --launcher slurm expects GPUs (mmengine gives each task the GPU of its SLURM_LOCALID); for
# CPU-only runs use tools/dist_train.sh with --cfg-options env_cfg.dist_cfg.backend=gloo.
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [tools/train.py options ...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# SRUN_ARGS is split into words on purpose: it holds several options.
# shellcheck disable=SC2086
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${@:4}"
