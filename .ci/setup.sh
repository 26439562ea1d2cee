#!/usr/bin/env bash
# The one set-up behind `make demo` and `make test` (and so behind .ci/run): a virtual environment in .venv with
#   demo: the library and its programs (JAX on the CPU);
#   test: that, plus the CPU build of torch (pinned: an unpinned torch pulls a multi-GB CUDA build), the dev, test
#         and browser extras, and Chromium + chromedriver through apt-get where the platform has it.
# Idempotent: a stamp in the venv keyed on pyproject.toml and this script; a second run installs nothing.
# Environment: PYTHON (default python3, must be 3.11 or newer), VENV (default .venv).
set -euo pipefail
what="${1:-demo}"
case "$what" in demo|test) ;; *) echo "usage: .ci/setup.sh demo|test" >&2; exit 2;; esac
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_PIN="torch==2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
EXTRAS="torch,dev,test,browser"

say() { echo "setup: $*"; }

browser_state() {  # prints what is missing for the browser test, nothing when Chromium and its driver are there
  command -v chromedriver >/dev/null 2>&1 || echo -n "chromedriver "
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1 || echo -n "chromium"
}

install_browser() {
  [ -z "$(browser_state)" ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "$sudo" = none ]; then
    say "NOTE: cannot install Chromium + chromedriver here (needs apt-get and root or sudo); install them with your"
    say "      package manager (e.g. brew install --cask chromium chromedriver) or the browser test is skipped"
    say "      (tests/test_webapp_browser.py; it fails instead under CI=true)"
    return 0
  fi
  say "Chromium + chromedriver for the browser test (apt-get; log in ${TMPDIR:-/tmp}/jaxreenact-setup-apt.log)"
  { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver; } \
    >"${TMPDIR:-/tmp}/jaxreenact-setup-apt.log" 2>&1 \
    || say "WARNING: apt-get install chromium chromium-driver failed (see ${TMPDIR:-/tmp}/jaxreenact-setup-apt.log)"
}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: jaxreenact needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1 || echo missing)." \
       "Run again with PYTHON=python3.11 (or newer)" >&2
  exit 2
fi
key=$(cat pyproject.toml .ci/setup.sh | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')
stamp_demo="$VENV/.jaxreenact-setup-demo-$key"
stamp_test="$VENV/.jaxreenact-setup-test-$key"
if [ -f "$stamp_test" ] || { [ "$what" = demo ] && [ -f "$stamp_demo" ]; }; then
  say "$VENV is up to date for '$what' (nothing to install)"
  if [ "$what" = test ] && [ -n "$(browser_state)" ]; then
    say "NOTE: missing for the browser test: $(browser_state)"
  fi
  exit 0
fi

[ -x "$VENV/bin/python" ] || { say "creating $VENV with $("$PYTHON" --version)"; "$PYTHON" -m venv "$VENV"; }
py="$VENV/bin/python"
"$py" -m pip install -q --upgrade pip
if [ "$what" = test ]; then
  if "$py" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${TORCH_PIN#torch==}')" 2>/dev/null; then
    say "$TORCH_PIN already installed"
  else
    say "$TORCH_PIN, CPU build: trying PyTorch's CPU index first"
    if ! "$py" -m pip install -q --timeout 15 --retries 1 "$TORCH_PIN" --index-url "$TORCH_CPU_INDEX" 2>/dev/null; then
      say "PyTorch's CPU index not reachable: $TORCH_PIN from the configured package index"
      "$py" -m pip install -q "$TORCH_PIN"
    fi
  fi
  say "jaxreenact (editable) with the extras $EXTRAS"
  "$py" -m pip install -q -e ".[$EXTRAS]"
  install_browser
else
  say "jaxreenact (editable)"
  "$py" -m pip install -q -e .
fi
rm -f "$VENV"/.jaxreenact-setup-"$what"-*
touch "$VENV/.jaxreenact-setup-$what-$key"
say "done: $VENV ready for '$what'"
