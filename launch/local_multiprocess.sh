#!/usr/bin/env bash
# Multi-process training on one machine: N processes over 127.0.0.1, D simulated CPU devices each, talking through
# the gloo CPU collectives. The same code path as a Slurm or TPU pod run (one global mesh over every process's
# devices, each process reading its own part of each batch, collective Orbax checkpoints), on a laptop.
#
# Assumptions: `pip install -e .` (or the wheel) in the active environment; the config's weights exist, or use a
# `:tiny` config, which needs none. The workdir is shared by the processes (it is one folder here).
# Signals: SIGTERM / SIGINT to this script (or to any one process) stop every process after one checkpoint of the
# same step; the exit status is the processes' (143 / 130), and the same command resumes.
# Environment: JAXREENACT_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID (default), or with JAXREENACT_LAUNCH=slurm the
# variables a Slurm step sets (SLURM_JOB_ID, SLURM_STEP_NODELIST=127.0.0.1, SLURM_NTASKS, SLURM_PROCID,
# SLURM_LOCALID), which JAX's own cluster detection reads, as on a real cluster.
# Usage: launch/local_multiprocess.sh configs/synthetic.py:tiny /tmp/mp [N=2] [D=2] [extra --config.x=y flags]
set -uo pipefail
CONFIG=${1:-configs/synthetic.py:tiny}
WORKDIR=${2:-/tmp/jaxreenact-multiprocess}
N=${3:-2}
D=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
PYTHON=${PYTHON:-python}
# A free port; Slurm style: one in JAX's range for Slurm jobs (61440 + job id % 4096), the job id chosen to match.
PORT=${JAXREENACT_PORT:-$("$PYTHON" -c '
import random, socket, sys
for p in ([0] if sys.argv[1] != "slurm" else random.sample(range(61440, 65536), 200)):
    try:
        s = socket.socket(); s.bind(("127.0.0.1", p)); print(s.getsockname()[1]); break
    except OSError:
        pass
' "${JAXREENACT_LAUNCH:-}")}
pids=()
for ((i = 0; i < N; i++)); do
  if [ "${JAXREENACT_LAUNCH:-}" = slurm ]; then
    ENV=(SLURM_JOB_ID=$((PORT - 61440)) SLURM_STEP_NODELIST=127.0.0.1 SLURM_NTASKS="$N" SLURM_PROCID="$i" SLURM_LOCALID="$i")
  else
    ENV=(JAXREENACT_COORDINATOR="127.0.0.1:$PORT" JAXREENACT_NUM_PROCESSES="$N" JAXREENACT_PROCESS_ID="$i")
  fi
  env JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES="$D" XLA_FLAGS="--xla_force_host_platform_device_count=$D" "${ENV[@]}" \
    "$PYTHON" -m jaxreenact.train --config="$CONFIG" --workdir="$WORKDIR" --no_progress "$@" &
  pids+=($!)
  echo "local_multiprocess: process $i of $N: pid $!" >&2
done
forward() { kill -s "$1" "${pids[@]}" 2>/dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT
status=0
for p in "${pids[@]}"; do
  while true; do
    wait "$p"
    rc=$?
    kill -0 "$p" 2>/dev/null || break # a trap interrupted `wait`: the process still runs, wait again
  done
  ((rc != 0 && status == 0)) && status=$rc
done
exit "$status"
