#!/usr/bin/env bash
# The first lent accelerator, used well (issues 16, 23): on one GPU (or TPU) in under 8 minutes, correctness on the
# device AND the suite's throughputs, each part under its own time limit, written to bench/RESULTS.md as it goes
# (so a run stopped early keeps what it measured):
#   1. bench/device_checks.py -> "## Device checks: <device>": the network goldens at highest and default
#      precision, both StyleGAN2 upsampling options, the DECA box on the goldens, one training step's loss terms
#      (default vs highest, bfloat16 vs float32); one row each (what, measure, value, tolerance, PASS/FAIL).
#   2. the benches -> "## Accelerator suite: <device>": the roofline of the three stages' steps (bench/roofline.py:
#      XLA FLOPs, samples/s, input pipeline), the synthetic step in bfloat16 and with the landmark box
#      (bench/step.py), the generator, the face networks, the reenactment.
#
#   bench/accelerator.sh              # the device run, full sizes (about 8 minutes on one H100)
#   bench/accelerator.sh --quick      # reduced bench sizes (also JAXREENACT_BENCH_QUICK=1): a smoke run anywhere
#   bench/accelerator.sh --no-write   # print only
#   JAXREENACT_BENCH_SCALE=8 JAX_PLATFORMS=cpu bench/accelerator.sh --quick   # the whole script on a 2-core CPU
#
# Budget (seconds on one GPU; JAXREENACT_BENCH_SCALE multiplies each): device checks 170 (3 at once on a GPU),
# roofline 140, step 60, generator 30, face networks 25, reenactment 45: 470 s, plus start-up. The first lines
# printed name the machine, JAX and the device; every part prints its progress on stderr.
#
# Environment: the package's requirements with JAX for the accelerator, and PyTorch (a CPU build is enough: it
# regenerates the goldens' random weights and builds the benches' random networks). On a machine that lacks some
# of them (the lent GPU machines have JAX, flax, optax, orbax and torch but not ml_collections or imageio-ffmpeg),
# run `bench/device_wheels.sh` here first: it downloads those wheels into .whl/, which this script installs into
# /tmp/site there (carry `.whl` to the machine). The device call (its results come back only from $OUT):
#   PYTHON=python3 JAXREENACT_RESULTS_COPY=$OUT/RESULTS.md timeout 540 bash bench/accelerator.sh 2>&1 | tee $OUT/accelerator.log
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
if [ -z "${PYTHON:-}" ]; then  # the first Python that has JAX (on the lent GPU machines: python3)
  for c in python3 python; do
    if command -v "$c" >/dev/null && "$c" -c 'import jax' 2>/dev/null; then PYTHON=$c; break; fi
  done
fi
PYTHON=${PYTHON:-python3}
COPY=${JAXREENACT_RESULTS_COPY:-}  # a path that gets bench/RESULTS.md after every part (e.g. $OUT/RESULTS.md)
copy_results() { if [ -n "$COPY" ]; then cp bench/RESULTS.md "$COPY"; fi; }
SCALE=${JAXREENACT_BENCH_SCALE:-1}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
START=$SECONDS
budget() { "$PYTHON" -c "print(int($1 * $SCALE))"; }
"$PYTHON" - <<'EOF' >&2 || { echo "accelerator.sh: JAX does not start here" >&2; exit 1; }
import jax, platform
d = jax.devices()[0]
print(f"[accelerator] JAX {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s): "
      f"{d.device_kind}; Python {platform.python_version()}")
EOF
BACKEND=$("$PYTHON" -c 'import jax; print(jax.default_backend())')
JOBS=${JAXREENACT_CHECK_JOBS:-1}
[ "$BACKEND" = gpu ] && JOBS=${JAXREENACT_CHECK_JOBS:-3}  # compiles overlap on 16 cores; a TPU takes one process at a time

# 1. Correctness on the device (writes its own section as each check ends).
WRITE_FLAG=()
[ "$WRITE" = 1 ] && WRITE_FLAG=(--write)
CHECKS_S=$(budget 170)
echo "[accelerator] device checks (limit ${CHECKS_S} s, ${JOBS} at a time)" >&2
timeout $((CHECKS_S + 30)) "$PYTHON" bench/device_checks.py --jobs "$JOBS" --deadline "$CHECKS_S" \
  --budget-scale "$SCALE" ${WRITE_FLAG[@]+"${WRITE_FLAG[@]}"}
echo "[accelerator] device checks: exit $? after $((SECONDS - START)) s" >&2
copy_results

# 2. The benches, most telling first.
NOTORCH=()
[ "$BACKEND" != cpu ] && NOTORCH=(--no-torch)
if [ "$QUICK" = 1 ]; then
  BENCHES=(
    "roofline|140|bench/roofline.py --quick"
    "step|60|bench/step.py --quick --only synthetic:fixed:bfloat16 synthetic:landmarks:float32"
    "generator|30|bench/generator.py --batches 2 --iters 1 --bf16 ${NOTORCH[*]}"
    "face_networks|25|bench/face_networks.py --batch 2 --iters 1 ${NOTORCH[*]}"
    "reenact|45|bench/reenact.py --batches 2 --iters 1 --bf16 --detector-batch 1 ${NOTORCH[*]}"
  )
else
  BENCHES=(
    "roofline|140|bench/roofline.py --batch 12 --iters 3 --networks-lowered-only"
    "step|60|bench/step.py --batch 12 --iters 5 --only synthetic:fixed:bfloat16 synthetic:landmarks:float32"
    "generator|30|bench/generator.py --batches 8 64 --iters 5 --bf16 ${NOTORCH[*]}"
    "face_networks|25|bench/face_networks.py --batch 64 --iters 5 ${NOTORCH[*]}"
    "reenact|45|bench/reenact.py --batches 64 512 --iters 3 --bf16 --detector-batch 32 ${NOTORCH[*]}"
  )
fi
TMPOUT=$(mktemp -d "${TMPDIR:-/tmp}/jaxreenact-accel.XXXXXX")

write_suite() {  # the suite's section from the benches finished so far (the others listed as not run yet)
  "$PYTHON" - "$TMPOUT" "$QUICK" "$WRITE" "$((SECONDS - START))" "$SCALE" "${BENCHES[@]}" <<'EOF'
import datetime
import pathlib
import sys

sys.path.insert(0, "bench")
import common  # noqa: E402

out, quick, write, total, scale = pathlib.Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
import jax  # noqa: E402

dev = jax.devices()[0]
kind = dev.device_kind if dev.device_kind != dev.platform else ""
title = f"Accelerator suite: {dev.platform} {kind}".rstrip() + (" (quick smoke run)" if quick else "")
cmd = "bench/accelerator.sh" + (" --quick" if quick else "")
if scale != "1":
    cmd = f"JAXREENACT_BENCH_SCALE={scale} " + cmd
now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
lines = [f"## {title}", "", f"`{cmd}` — {now}, {total} s so far (device checks included; their rows are in "
         f"\"Device checks\"). Machine: {common.machine()}."]
if quick:
    lines.append("Reduced sizes (tiny training networks, batch 2-4, one timed call): this checks that the suite runs "
                 "end to end; the figures are not the accelerator's.")
for entry in sys.argv[6:]:
    name, limit, cmd = entry.split("|", 2)
    rc_file = out / f"{name}.rc"
    if not rc_file.exists():
        lines += ["", f"### `python {cmd.strip()}`", "", "Not run yet (the script stopped before it)."]
        continue
    rc, secs = rc_file.read_text().split()
    text = (out / f"{name}.out").read_text()
    body = text[text.find("\n## ") + 1 :] if "\n## " in text else (text if text.startswith("## ") else "")
    lines += ["", f"### `python {cmd.strip()}` ({secs} s, exit {rc})", ""]
    if rc != "0" or not body:
        err = (out / f"{name}.err").read_text().strip().splitlines()[-5:]
        lines += ["Did not finish" + (f" (time limit, {limit} s)" if rc == "124" else "") + ":", "", "```", *err, "```"]
    else:  # the bench's own section, one level down, without its heading and machine line
        rest = body.splitlines()[1:]
        while rest and (not rest[0].strip() or rest[0].startswith("`python")):
            rest = rest[1:]
        lines += [x.replace("## ", "#### ", 1) if x.startswith("## ") else x for x in rest]
md = "\n".join(lines).rstrip() + "\n"
if write:
    common.write_section(md)
else:
    print(md)
EOF
}

for entry in "${BENCHES[@]}"; do
  name=${entry%%|*}
  rest=${entry#*|}
  limit=$(budget "${rest%%|*}")
  cmd=${rest#*|}
  echo "[accelerator] $cmd (limit ${limit} s, $((SECONDS - START)) s so far)" >&2
  t0=$SECONDS
  # shellcheck disable=SC2086
  timeout "$limit" "$PYTHON" $cmd >"$TMPOUT/$name.out" 2>"$TMPOUT/$name.err"
  rc=$?
  echo "$rc $((SECONDS - t0))" >"$TMPOUT/$name.rc"
  tail -n 2 "$TMPOUT/$name.err" >&2
  echo "[accelerator]    exit $rc after $((SECONDS - t0)) s" >&2
  write_suite
  copy_results
done
echo "[accelerator] done: $((SECONDS - START)) s in all; results in bench/RESULTS.md" >&2
