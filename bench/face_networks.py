"""Face networks throughput (issue 3): ArcFace IR-SE50, e4e and LPIPS-alex, JAX against PyTorch, same process.

    python bench/face_networks.py                 # batch 8, prints a markdown section
    python bench/face_networks.py --write         # ... and appends it to bench/RESULTS.md

Both sides use the same random (golden-spec) weights: the PyTorch side is the pure-torch reference of the tests
(`tests/torch_face_ref.py`, eval mode, `torch.inference_mode()`), the JAX side the converted Flax modules under
`jax.jit`. Inputs: ArcFace 112x112 faces, e4e 256x256 images, LPIPS 256x256 pairs (images/s counts pairs).
Compile time (first call) is reported apart from steady-state throughput (median of `--iters` timed calls after a
warm-up).
"""

from __future__ import annotations

import argparse
import datetime
import time

import common

common.setup_paths()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import goldens as G  # noqa: E402
from converters import arcface, e4e, lpips  # noqa: E402
from converters.common import to_numpy  # noqa: E402
from jaxreenact.common.mesh import cpu_chunks  # noqa: E402
from torch_face_ref import ArcFaceRef, E4ERef, LPIPSRef, load  # noqa: E402


def _nets():
    """(name, jax fn(*np inputs), torch fn(*torch inputs), input shapes NHWC) for each network."""
    sd = G.state_dict("irse50_arcface", "facenet")
    am, av = arcface.convert_state_dict(to_numpy(sd, "arcface"), "arcface")
    yield "ArcFace IR-SE50 (112)", jax.jit(am.apply), av, load(ArcFaceRef(), sd), [(112, 112)]
    del sd, av
    sd = dict(G.state_dict("e4e_vox256", "enc"))
    em, ev, _ = e4e.convert({"e": sd}, "e4e")
    # The library's call (jaxreenact.inference.frames.e4e_codes): a few images at a time on a CPU.
    e4e_fn = jax.jit(lambda v, x: cpu_chunks(lambda xx: em.apply(v, xx), x))
    yield "e4e encoder (256)", e4e_fn, ev, load(E4ERef(), sd), [(256, 256)]
    del sd, ev
    a, lin = G.state_dict("lpips_perceptual", "alexnet"), G.state_dict("lpips_perceptual", "lin")
    lm, lv, _ = lpips.convert(a, lin, "alexnet", "lin")
    ref = LPIPSRef().eval()
    ref.load_weights(a, lin)
    yield "LPIPS-alex (256 pairs)", jax.jit(lm.apply), lv, ref, [(256, 256), (256, 256)]


def run(batch: int, iters: int, with_torch: bool = True) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for name, jfn, variables, tmod, shapes in _nets():
        xs = [np.tanh(rng.standard_normal((batch, h, w, 3))).astype(np.float32) for h, w in shapes]
        jx = [jnp.asarray(x) for x in xs]
        tx = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in xs]
        t0 = time.perf_counter()
        jfn(variables, *jx).block_until_ready()
        compile_s = time.perf_counter() - t0
        fns = [lambda jfn=jfn, variables=variables, jx=jx: jfn(variables, *jx).block_until_ready()]
        if with_torch:  # interleaved with the JAX calls, so the load of other processes hits both alike
            fns.append(lambda tmod=tmod, tx=tx: tmod(*tx))
        with torch.inference_mode():
            tj, *rest = common.median_times(fns, iters)
        tt = rest[0] if rest else float("nan")
        rows.append({"name": name, "jax": batch / tj, "torch": batch / tt, "compile": compile_s})
        print(
            f"{name}: JAX {batch / tj:.2f} img/s, PyTorch {batch / tt:.2f} img/s, compile {compile_s:.1f}s", flush=True
        )
    return rows


def section(rows, batch: int, iters: int) -> str:
    lines = [
        "## Face networks (issue 3)",
        "",
        f"`python bench/face_networks.py --batch {batch} --iters {iters}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Machine: {common.machine()}.",
        "Forward pass only, fp32, batch "
        f"{batch}, median of {iters} calls after a warm-up; same random weights and inputs on both sides (PyTorch: "
        "the tests' pure-torch reference, `inference_mode`), JAX and PyTorch calls interleaved. The 2 CPU cores were "
        "shared with other jobs: expect ±30% noise.",
        "",
        "| network | JAX images/s | PyTorch images/s | JAX / PyTorch | JAX compile (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['jax']:.2f} | {r['torch']:.2f} | {r['jax'] / r['torch']:.2f} | {r['compile']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--write", action="store_true", help="append the section to bench/RESULTS.md")
    p.add_argument("--no-torch", action="store_true", help="JAX only (the PyTorch side runs on the CPU)")
    args = p.parse_args()
    torch.manual_seed(0)
    rows = run(args.batch, args.iters, with_torch=not args.no_torch)
    text = section(rows, args.batch, args.iters)
    print(text)
    if args.write:
        common.write_section(text)


if __name__ == "__main__":
    main()
