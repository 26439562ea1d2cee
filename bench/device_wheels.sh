#!/usr/bin/env bash
# Wheels the lent GPU machines lack, downloaded HERE (where pip reaches PyPI) into .whl/ (git-ignored) for their
# Python 3.12 on x86-64; bench/accelerator.sh installs them there into /tmp/site when .whl/ exists (name `.whl` in
# the device call's `carry`). Their image has JAX, flax, optax, orbax, chex, torch, scipy, pillow, imageio and
# absl, but not ml_collections (configs/) nor imageio-ffmpeg (the reenactment bench decodes a video with it;
# 0.5.1, the oldest the package allows, is 27 MB, so the carried tree stays under the 64 MiB a call takes).
#
#   bench/device_wheels.sh               # ml-collections + imageio-ffmpeg
#   bench/device_wheels.sh --no-ffmpeg   # ml-collections only (the reenactment bench then stops at decoding)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-"${PYTHON:-python3} -m pip"}
PKGS=(ml-collections==1.1.0 imageio-ffmpeg==0.5.1)
[ "${1:-}" = --no-ffmpeg ] && PKGS=(ml-collections==1.1.0)
mkdir -p .whl
# shellcheck disable=SC2086
$PIP download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux2010_x86_64 --platform manylinux1_x86_64 -d .whl "${PKGS[@]}"
ls -la .whl
