#!/usr/bin/env bash
# The whole benchmark suite on one accelerator (GPU or TPU) in under 8 minutes, written as ONE section of
# bench/RESULTS.md ("## Accelerator suite: <device>"); the CPU sections of the single benches are left alone.
#
#   bench/accelerator.sh            # on the GPU/TPU machine: generator, face networks, reenactment per frame and
#                                   # end to end, every stage's training step (fixed and faithful box, fp32 and bf16)
#   bench/accelerator.sh --quick    # reduced sizes (also JAXREENACT_BENCH_QUICK=1): a smoke run of the same
#                                   # scripts on any machine, e.g. this repository's 2-core CPU
#   bench/accelerator.sh --no-write # print only
#
# Needs the package's environment with JAX for the accelerator (`pip install "jax[cuda12]"` or `"jax[tpu]"`) and
# PyTorch (a CPU build is enough: it makes the random weights; with a CUDA build the training-step comparison with
# the authors' PyTorch step runs on the GPU too). The single benches' PyTorch sides run on the CPU, so on an
# accelerator they are skipped (--no-torch) except the training step. Each bench has a time limit
# (JAXREENACT_BENCH_LIMIT seconds, default 150), so a hung one cannot eat the budget; its row then says so.
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=${JAXREENACT_BENCH_QUICK:-0}
WRITE=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-write) WRITE=0 ;;
    *) echo "usage: bench/accelerator.sh [--quick] [--no-write]" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python}
LIMIT=${JAXREENACT_BENCH_LIMIT:-150}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/jaxreenact-accel.XXXXXX")
BACKEND=$("$PYTHON" -c 'import jax; print(jax.default_backend())')
NOTORCH=()
[ "$BACKEND" != cpu ] && NOTORCH=(--no-torch)
if [ "$QUICK" = 1 ]; then
  BENCHES=(
    "generator|bench/generator.py --batches 2 --iters 1 --bf16 ${NOTORCH[*]}"
    "face_networks|bench/face_networks.py --batch 2 --iters 1 ${NOTORCH[*]}"
    "reenact|bench/reenact.py --batches 2 --iters 1 --bf16 --detector-batch 1 ${NOTORCH[*]}"
    "step|bench/step.py --quick"
  )
else
  BENCHES=(
    "generator|bench/generator.py --batches 1 8 64 --iters 5 --bf16 ${NOTORCH[*]}"
    "face_networks|bench/face_networks.py --batch 64 --iters 5 ${NOTORCH[*]}"
    "reenact|bench/reenact.py --batches 1 64 512 --iters 5 --bf16 --detector-batch 32 ${NOTORCH[*]}"
    "step|bench/step.py --batch 12 --iters 5"
  )
fi
START=$SECONDS
for entry in "${BENCHES[@]}"; do
  name=${entry%%|*}
  cmd=${entry#*|}
  echo "== $cmd" >&2
  t0=$SECONDS
  # shellcheck disable=SC2086
  timeout "$LIMIT" "$PYTHON" $cmd >"$OUT/$name.out" 2>"$OUT/$name.err"
  rc=$?
  echo "$rc $((SECONDS - t0))" >"$OUT/$name.rc"
  tail -n 3 "$OUT/$name.err" >&2
  echo "   exit $rc after $((SECONDS - t0)) s" >&2
done
echo "suite: $((SECONDS - START)) s" >&2
"$PYTHON" - "$OUT" "$QUICK" "$WRITE" "$((SECONDS - START))" "${BENCHES[@]}" <<'EOF'
import pathlib
import sys

sys.path.insert(0, "bench")
import common  # noqa: E402

out, quick, write, total = pathlib.Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1", int(sys.argv[4])
import jax  # noqa: E402

dev = jax.devices()[0]
kind = dev.device_kind if dev.device_kind != dev.platform else ""
title = f"Accelerator suite: {dev.platform} {kind}".rstrip() + (" (quick smoke run)" if quick else "")
cmd = "bench/accelerator.sh" + (" --quick" if quick else "")
lines = [f"## {title}", "", f"`{cmd}` — {total} s in all. Machine: {common.machine()}."]
if quick:
    lines.append("Reduced sizes (tiny training networks, batch 2-4, one timed call): this checks that the suite runs "
                 "end to end; the figures are not the accelerator's.")
for entry in sys.argv[5:]:
    name, cmd = entry.split("|", 1)
    rc, secs = (out / f"{name}.rc").read_text().split()
    text = (out / f"{name}.out").read_text()
    body = text[text.find("\n## ") + 1 :] if "\n## " in text else (text if text.startswith("## ") else "")
    lines += ["", f"### `python {cmd}` ({secs} s, exit {rc})", ""]
    if rc != "0" or not body:
        err = (out / f"{name}.err").read_text().strip().splitlines()[-5:]
        lines += ["Did not finish" + (" (time limit)" if rc == "124" else "") + ":", "", "```", *err, "```"]
    else:  # the bench's own section, one level down, without its heading and machine line
        rest = body.splitlines()[1:]
        while rest and (not rest[0].strip() or rest[0].startswith("`python")):
            rest = rest[1:]
        lines += [x.replace("## ", "#### ", 1) if x.startswith("## ") else x for x in rest]
md = "\n".join(lines).rstrip() + "\n"
print(md)
if write:
    common.write_section(md)
EOF
