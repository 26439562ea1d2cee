"""What a faster matmul precision costs, measured on a CPU: every network golden run as an accelerator would run
it at each policy, against the golden (docs/precision.md).

A CPU computes every float32 dot and convolution in float32 whatever the precision says, so the accelerators'
arithmetic is emulated: each `lax.dot_general` and `lax.conv_general_dilated` of float32 operands gets its
operands rounded first, then runs in float32 (products exact in float32, float32 accumulation), as the hardware
does:
  bf16    one bfloat16 pass (8-bit mantissa): a TPU's "default"
  bf16x3  three bfloat16 passes (hi·hi + hi·lo + lo·hi): a TPU's "high"
  tf32    TF32 (10-bit mantissa): an A100/H100's "default" and "high"
  highest no rounding: every parity result.
Each mode runs the parity checker's own runner of each golden folder (`jaxreenact.evaluation.parity`) and
records, per expected array, the max abs difference and the cosine against the golden.

    python bench/precision_table.py [--golden tests/golden] [--out bench/precision_table.md]

Needs torch (the parity checker rebuilds the upstream checkpoints from the goldens). Minutes on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lax import convolution as _conv
from jax._src.lax import lax as _lax

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxreenact.evaluation import parity  # noqa: E402
from jaxreenact.evaluation.parity import report as parity_report  # noqa: E402
from jaxreenact.evaluation.parity.spec import read_folder  # noqa: E402

NETWORKS = ("stylegan2_vox256", "e4e_vox256", "irse50_arcface", "lpips_perceptual", "deca_coarse", "direction_matrix")
MODES = ("highest", "tf32", "bf16x3", "bf16")


def round_bf16(x):
    return x.astype(jnp.bfloat16).astype(jnp.float32)


def round_tf32(x):
    """Round-to-nearest-even to 10 mantissa bits (TF32), kept in float32."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    bias = jnp.uint32(0xFFF) + ((bits >> 13) & jnp.uint32(1))
    r = jax.lax.bitcast_convert_type((bits + bias) & jnp.uint32(0xFFFFE000), jnp.float32)
    return x + jax.lax.stop_gradient(r - x)  # the gradient passes through, as the bfloat16 convert's does


def _emulated(orig, mode: str):
    def op(lhs, rhs, *args, **kwargs):
        if mode == "highest" or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
            return orig(lhs, rhs, *args, **kwargs)
        if mode == "tf32":
            return orig(round_tf32(lhs), round_tf32(rhs), *args, **kwargs)
        lh, rh = round_bf16(lhs), round_bf16(rhs)
        if mode == "bf16":
            return orig(lh, rh, *args, **kwargs)
        ll, rl = round_bf16(lhs - lh), round_bf16(rhs - rh)  # bf16x3: the low parts' product is dropped
        return orig(lh, rh, *args, **kwargs) + orig(lh, rl, *args, **kwargs) + orig(ll, rh, *args, **kwargs)

    return op


@contextlib.contextmanager
def emulate(mode: str):
    """Every dot/convolution traced inside rounds its float32 operands as `mode` says (jit caches cleared)."""
    saved = [(m, n, getattr(m, n)) for m, n in ((_lax, "dot_general"), (jax.lax, "dot_general"),
                                                  (_conv, "conv_general_dilated"), (jax.lax, "conv_general_dilated"))]  # fmt: skip
    for m, n, f in saved:
        setattr(m, n, _emulated(f, mode))
    jax.clear_caches()
    try:
        yield
    finally:
        for m, n, f in saved:
            setattr(m, n, f)
        jax.clear_caches()


def measure(folders, modes):
    """{(folder, array): {mode: (max_abs, cosine)}}, reusing each conversion across modes."""
    out: dict = {}
    orig_compare = parity_report.compare
    shared: dict = {}
    for mode in modes:
        current = {}

        def compare(name, got, want, entry, current=current):
            a, b = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
            if a.size == b.size:
                cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))
                current[name] = (float(np.abs(a - b).max(initial=0.0)), cos)
            return orig_compare(name, got, want, entry)

        parity_report.compare = compare
        try:
            with emulate(mode):
                for f in folders:
                    t = time.time()
                    current.clear()
                    parity.check_folder(f, shared=shared)
                    for name, v in current.items():
                        out.setdefault((f.name, name), {})[mode] = v
                    print(f"{mode:8s} {f.name}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        finally:
            parity_report.compare = orig_compare
    return out


def table(results, modes) -> str:
    head = "| golden | array | " + " | ".join(f"{m}: max abs / cosine" for m in modes) + " |"
    lines = [head, "|" + "---|" * (2 + len(modes))]
    for (folder, name), per in results.items():
        cells = []
        for m in modes:
            if m in per:
                err, cos = per[m]
                cells.append(f"{err:.2e} / {1 - cos:.1e}" if cos < 1 else f"{err:.2e} / 0")
            else:
                cells.append("-")
        lines.append(f"| {folder} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--golden", default=str(ROOT / "tests" / "golden"), help="folder of the golden folders")
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), help="golden folder names")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    a = p.parse_args(argv)
    folders = [read_folder(pathlib.Path(a.golden) / n, parity.KINDS) for n in a.networks]
    results = measure(folders, a.modes)
    text = (
        f"Max abs difference / (1 - cosine) against each golden array, {jax.devices()[0].device_kind} "
        f"emulating each precision (bench/precision_table.py)\n\n" + table(results, a.modes)
    )
    print(text)
    if a.out:
        pathlib.Path(a.out).write_text(text + "\n")
        print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
