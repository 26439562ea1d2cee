#!/usr/bin/env bash
# Multi-host GPU training with Slurm: one task per node, all GPUs of a node visible to its task.
#
# Assumptions (edit the #SBATCH lines for your cluster):
#   - each node has this repository and an environment with `pip install -e . "jax[cuda12]"`;
#   - $WORKDIR and the converted weights are on a filesystem all nodes share (checkpoints are collective);
#   - jax.distributed.initialize() reads the coordinator, process count and id from Slurm's variables.
# Usage: sbatch launch/slurm_gpu.sh configs/mixed.py runs/mixed [extra --config.x=y flags]
#SBATCH --job-name=jaxreenact
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --time=48:00:00
set -euo pipefail
CONFIG=${1:?config file}
WORKDIR=${2:?workdir (shared filesystem)}
shift 2
srun env JAXREENACT_DISTRIBUTED=1 python -m jaxreenact.train --config="$CONFIG" --workdir="$WORKDIR" --no_progress "$@"
