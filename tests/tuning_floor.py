"""How far any float32 implementation can get to a `generator_tuning` golden: the authors' tuning replayed in PyTorch
(tests/torch_reference/tuning.py) on the golden's inputs and regenerated weights in float32, in float32 on one
thread, and in float64, each graded by the parity program's own rules (`pipelines.tuning_row`), next to the port.

    python tests/tuning_floor.py tests/golden/generator_tuning           # port | float32 / 1-thread / float64 replays
    python tests/tuning_floor.py --variant 911 4 /tmp/gt_911_4           # a folder of another seed and step count
    python tests/tuning_floor.py /tmp/gt_911_4 --no-port

A row the float64 replay (the exact answer, up to float64 rounding) fails is a tolerance below the float32 floor:
the golden itself is that far from the exact tuning. A row the one-thread replay fails is one where the same
float32 code, summing in another order, does not reproduce itself. `--variant` writes a folder in the golden's format whose
expected arrays are the float32 replay's (this project's re-statement, not the authors' harness), for trying the
parity program on seeds and step counts it has not seen.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import torch
from PIL import Image

import goldens
from jaxreenact.common.errors import UserError, cli_main
from jaxreenact.evaluation.parity import check_folders, read_folder
from jaxreenact.evaluation.parity.pipelines import tuning_row
from torch_reference import tuning

# The replays graded next to the port: (column, dtype, torch threads; None = torch's default). The same float32 code
# on one thread sums in another order, which is how far two runs of the authors' code can differ.
REPLAYS = (
    ("float32 ref", torch.float32, None),
    ("float32 1 thread", torch.float32, 1),
    ("float64 ref", torch.float64, None),
)


def networks(spec: dict, dtype) -> tuple:
    """The reference generator and LPIPS of a spec's components, regenerated from their weight blocks."""
    regen = goldens._regen()
    comps = spec["components"]
    gen = regen.tensors(comps["generator"]["weights"])
    lp = regen.tensors(comps["lpips"]["weights"])
    group = lambda ts, name: {k: t for (g, k), t in ts.items() if g == name}  # noqa: E731
    return tuning.generator(group(gen, "g"), dtype), tuning.lpips(group(lp, "alexnet"), group(lp, "lin"), dtype)


def replay(spec: dict, inputs: dict, steps: int, dtype, threads: int | None = None) -> dict[str, np.ndarray]:
    cfg = (spec.get("upstream") or {}).get("config") or {}
    g, lp = networks(spec, dtype)
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        return tuning.replay(
            g, lp, inputs["source_u8"], inputs["wplus"], inputs["truncation_latent"], steps,
            lr=float(cfg.get("lr", 3e-3)), truncation=float(inputs.get("truncation", cfg.get("truncation", 0.7))),
            l2_lambda=float(cfg.get("pt_l2_lambda", 100)), lpips_lambda=float(cfg.get("pt_lpips_lambda", 1)),
        )  # fmt: skip
    finally:
        torch.set_num_threads(default)


def floor_rows(folder: pathlib.Path, port: bool) -> str:
    f = read_folder(folder)
    if f.kind != "generator_tuning":
        raise UserError(f"{folder}: kind {f.kind!r}; this tool replays generator_tuning folders only")
    steps = int(np.shape(f.expected["loss"])[0])
    cols = {}
    if port:
        cols["port"] = {r.name: r for r in check_folders([folder])[0].rows}
    for name, dt, threads in REPLAYS:
        got = replay(f.spec, f.inputs, steps, dt, threads)
        cols[name] = {k: tuning_row(k, got[k], f.spec, f.expected) for k in f.expected if k in got}
    w = max(len(k) for k in f.expected)
    lines = [f"{folder} ({steps} steps)", f"  {'name':<{w}}  {'measure':<8} {'tol':>8}" +
             "".join(f"  {c:>17}" for c in cols)]  # fmt: skip
    fails = dict.fromkeys(cols, 0)
    for k in f.expected:
        first = next(c[k] for c in cols.values() if k in c)
        cells = []
        for c, rows in cols.items():
            r = rows.get(k)
            cells.append(f"  {'-':>17}" if r is None else f"  {r.value:>12.3g} {r.status}")
            fails[c] += r is not None and not r.ok
        lines.append(f"  {k:<{w}}  {first.measure:<8} {first.tol:>8.3g}" + "".join(cells))
    lines.append("  failing rows: " + ", ".join(f"{c} {n}" for c, n in fails.items()))
    return "\n".join(lines)


def smooth_image(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A [1, 3, size, size] uint8 image of summed bicubic noise octaves (mean ~127, std ~53, like the golden's
    source): white noise would make the 3e-3 Adam steps overshoot, which no real crop does."""
    acc = np.zeros((size, size, 3))
    for res, amp in ((4, 1.0), (8, 0.8), (16, 0.6), (32, 0.45), (64, 0.35), (size, 0.25)):
        n = rng.standard_normal((res, res, 3)).astype(np.float32)
        acc += amp * np.stack([np.asarray(Image.fromarray(n[..., c]).resize((size, size), Image.BICUBIC))
                               for c in range(3)], -1)  # fmt: skip
    acc = 127.5 + 53.0 * (acc - acc.mean()) / acc.std()
    return np.ascontiguousarray(np.clip(np.round(acc), 0, 255).astype(np.uint8).transpose(2, 0, 1)[None])


def write_variant(base: pathlib.Path, seed: int, steps: int, out: pathlib.Path) -> None:
    """A generator_tuning folder like `base` with new inputs from `seed` and `steps` steps (float32 replay)."""
    f = read_folder(base)
    rng = np.random.default_rng(seed)
    size = int(f.inputs["source_u8"].shape[-1])
    inputs = {"source_u8": smooth_image(rng, size),
              "wplus": rng.standard_normal(f.inputs["wplus"].shape).astype(np.float32),
              "truncation": np.float32(f.inputs.get("truncation", 0.7))}  # fmt: skip
    torch.manual_seed(seed)
    g, _ = networks(f.spec, torch.float32)
    with torch.no_grad():  # the tuner's own centre: G.mean_latent(4096)
        inputs["truncation_latent"] = g.style(torch.randn(4096, g.style_dim)).mean(0, keepdim=True).numpy()
    exp = replay(f.spec, inputs, steps, torch.float32)
    spec = json.loads(json.dumps(f.spec))
    spec["seed"], spec["variant"] = seed, f"tests/tuning_floor.py: seed {seed}, {steps} steps, float32 replay"
    spec["upstream"]["call"] = spec["upstream"]["call"].replace("opt_steps=3", f"opt_steps={steps}")
    expected = {k: np.asarray(v, np.float32) for k, v in exp.items() if k in spec["expected"]}
    for k, v in expected.items():
        spec["expected"][k]["shape"] = list(v.shape)
    goldens.write_folder(spec, inputs, expected, out, base)
    print(f"wrote {out} ({steps} steps, seed {seed})")


@cli_main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folders", nargs="*", type=pathlib.Path, help="generator_tuning golden folders")
    ap.add_argument("--variant", nargs=3, metavar=("SEED", "STEPS", "OUT"), help="write a variant folder")
    ap.add_argument("--base", type=pathlib.Path, default=goldens.GOLDEN / "generator_tuning",
                    help="the folder a variant copies its spec and weights from")  # fmt: skip
    ap.add_argument("--no-port", action="store_true", help="only the PyTorch replays (no JAX run)")
    args = ap.parse_args(argv)
    if args.variant:
        seed, steps, out = args.variant
        if not (seed.isdigit() and steps.isdigit()):
            raise UserError(f"--variant {seed} {steps} {out}: SEED and STEPS must be non-negative integers")
        write_variant(args.base, int(seed), int(steps), pathlib.Path(out))
    for folder in args.folders:
        print(floor_rows(folder, port=not args.no_port), flush=True)
    if not args.folders and not args.variant:
        ap.print_usage(sys.stderr)


if __name__ == "__main__":
    main()
