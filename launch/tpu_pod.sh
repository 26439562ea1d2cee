#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: the same command runs on every worker, JAX forms one global mesh.
#
# Assumptions (edit the variables below):
#   - a TPU VM slice named $TPU_NAME exists in $ZONE (e.g. created with `gcloud compute tpus tpu-vm create`);
#   - every worker has this repository at $REPO_DIR and `pip install -e .` done in its Python environment
#     (JAX with TPU support: `pip install "jax[tpu]"`);
#   - converted weights and the workdir live on storage every worker can read/write at the same path
#     (a GCS FUSE mount or a shared filesystem), because checkpoints are written collectively by Orbax.
# Usage: launch/tpu_pod.sh configs/mixed.py runs/mixed [extra --config.x=y flags]
set -euo pipefail
TPU_NAME=${TPU_NAME:?set TPU_NAME}
ZONE=${ZONE:?set ZONE}
REPO_DIR=${REPO_DIR:-~/jaxreenact}
CONFIG=${1:?config file}
WORKDIR=${2:?workdir (shared storage)}
shift 2
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command \
  "cd $REPO_DIR && JAXREENACT_DISTRIBUTED=1 python -m jaxreenact.train --config=$CONFIG --workdir=$WORKDIR --no_progress $*"
