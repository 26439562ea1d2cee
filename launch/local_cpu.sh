#!/usr/bin/env bash
# Local run on the CPU with N simulated devices (default 4, the tiny batch): exercises the sharded code path on a laptop.
#
# Assumptions: `pip install -e .` in the active environment; the config's weights exist, or use a `:tiny`
# config, which needs none. Simulated devices share the CPU cores: this checks correctness, not speed.
# Usage: launch/local_cpu.sh configs/synthetic.py:tiny /tmp/tiny [N] [extra --config.x=y flags]
set -euo pipefail
CONFIG=${1:-configs/synthetic.py:tiny}
WORKDIR=${2:-/tmp/jaxreenact-tiny}
N=${3:-4}
shift $(( $# < 3 ? $# : 3 ))
JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES="$N" XLA_FLAGS="--xla_force_host_platform_device_count=$N" \
  python -m jaxreenact.train --config="$CONFIG" --workdir="$WORKDIR" "$@"
