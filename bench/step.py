"""Training-step throughput and memory of every stage (issue 16): per-device samples/s and the step's memory for
the synthetic, mixed and paired stages, DECA box fixed and faithful ("landmarks"), float32 and bfloat16, against the
authors' PyTorch synthetic step (`bench/train_step.py`'s) in the same run where the networks allow.

    python bench/step.py                          # full-size random networks, the authors' batch 12
    python bench/step.py --quick                  # tiny networks, batch 4, one timed step: a smoke run anywhere
    python bench/step.py --stages synthetic --boxes fixed --dtypes float32 bfloat16 --write

JAX: the step the trainer runs (`training.loop.make_step`: the stage's loss with the 50 % scheme, its gradient on
A, Adam, the metrics), jitted over a mesh of every local device with the batch padded to it as in training
(`common.mesh.Padding`). Real-data stages read random frames and latents of the dataset's shapes (the input
pipeline is not timed). dtype = `config.dtype` (the generator's synthesis; DECA, ArcFace, LPIPS, S3FD and FAN stay
float32). Memory: XLA's account of the compiled step (arguments + outputs + temporaries,
`compiled.memory_analysis()`), and on GPU/TPU the device's peak bytes in use (cumulative over the run: the rows are
in order of growing size). PyTorch: `train_step.torch_step` (the synthetic stage, fixed box, fp32, full Δp), on
the GPU when torch sees one; only with `--networks full` (the tiny networks have no PyTorch twin).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import common

common.setup_paths()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

STAGES = {"synthetic": "configs.synthetic", "mixed": "configs.mixed", "paired": "configs.paired"}


def full_networks(with_face_locator: bool):
    """Full-size random networks (train_step.build's) and their PyTorch side; S3FD + FAN(4) random for the box."""
    import train_step

    from jaxreenact.models import fan, sfd

    config, nets, frozen, torch_side = train_step.build()
    if with_face_locator:
        s, f = sfd.S3FD(), fan.FAN(4)
        frozen = dict(frozen)
        frozen["sfd"] = jax.jit(s.init)(jax.random.key(21), jnp.zeros((1, 64, 64, 3)))
        frozen["fan"] = jax.jit(f.init)(jax.random.key(22), jnp.zeros((1, 256, 256, 3)))
        nets = dataclasses.replace(nets, sfd=s, fan=f)
    return nets, frozen, torch_side


def tiny_networks():
    from jaxreenact.weights import tiny

    nets, frozen = tiny.bundle(("generator", "deca", "arcface", "lpips", "sfd", "fan"))
    return nets, frozen, None


def stage_config(stage: str, box: str, dtype: str, batch: int, tiny: bool):
    import importlib

    c = importlib.import_module(STAGES[stage]).get_config("tiny" if tiny else None)
    with c.unlocked():
        c.model.deca_box, c.dtype, c.train.batch_size = box, dtype, batch
    return c


def fake_batch(stage: str, batch: int, mesh, rng):
    """Random real-data inputs of the stage's shapes, laid out and split as the trainer's (None for synthetic)."""
    from jaxreenact.common.mesh import batch_padding, batch_sharded

    if stage == "synthetic":
        return None
    rows = batch_padding(batch // 2 if stage == "mixed" else batch, mesh.size).padded

    def img():
        return np.tanh(rng.standard_normal((rows, 256, 256, 3))).astype(np.float32)

    def lat():
        return (0.5 * rng.standard_normal((rows, 14, 512))).astype(np.float32)

    data = {"image": img(), "latent": lat()} if stage == "mixed" else {
        "source_image": img(), "target_image": img(), "source_latent": lat(), "target_latent": lat()}  # fmt: skip
    return jax.device_put(data, batch_sharded(mesh))


def jax_step(stage: str, config, nets, frozen, mesh, rng):
    """(step fn() -> metrics, compile seconds, XLA memory bytes) of one stage configuration."""
    import importlib

    from jaxreenact.common.mesh import put_replicated
    from jaxreenact.training import loop, setup

    s = setup.make_setup(config, nets)
    mod = importlib.import_module(f"jaxreenact.training.{stage}")
    b = config.train.batch_size
    loss = {"synthetic": lambda: mod.synthetic_loss(s, b, mesh), "mixed": lambda: mod.mixed_loss(s, b, mesh=mesh),
            "paired": lambda: mod.paired_loss(s, b, mesh)}[stage]()  # fmt: skip
    tx = loop.make_optimizer(config.train)
    data = fake_batch(stage, b, mesh, rng)
    step = loop.make_step(loss, tx, jax.random.key(1), mesh, with_batch=data is not None)
    params = setup.init_params_fn(s.a)(jax.random.key(0))
    state = put_replicated(
        loop.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params)), mesh
    )
    names = ("g", "deca", "arcface", "lpips") + (("sfd", "fan") if config.model.deca_box == "landmarks" else ())
    fz = put_replicated({n: frozen[n] for n in names}, mesh)
    t0 = time.perf_counter()
    lowered = step.lower(state, fz, data)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    flops = {"lowered": cost_flops(lowered), "compiled": cost_flops(compiled)}
    mem = None
    try:
        ma = compiled.memory_analysis()
        mem = ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes
    except Exception:  # noqa: BLE001 - not every backend reports it
        pass
    box = {"state": state}

    def run():
        box["state"], metrics = compiled(box["state"], fz, data)
        return jax.block_until_ready(metrics)

    return run, compile_s, mem, flops


def cost_flops(stage) -> float | None:
    """XLA's FLOP count of a lowered or compiled computation (`cost_analysis()`; None where the backend gives
    none). The lowered count is the HLO before optimisation (backend-independent); the compiled one is what the
    backend's own analysis makes of the optimised program (library calls such as cuDNN's may count differently)."""
    try:
        ca = stage.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend or JAX version has it
        return None
    if isinstance(ca, (list, tuple)):  # older JAX: one dict per computation
        ca = ca[0] if ca else None
    flops = (ca or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def device_peak() -> int | None:
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def torch_runner(torch_side, batch: int):
    """The authors'-shape PyTorch synthetic step at `batch`, on the GPU when torch has one."""
    import torch
    import train_step

    from configs import synthetic

    device = "cuda" if torch.cuda.is_available() else "cpu"
    fn = train_step.torch_step(synthetic.get_config(), torch_side["frozen"], torch_side, batch, device=device)

    def run():
        fn()
        if device == "cuda":
            torch.cuda.synchronize()

    return run, device


def run(a) -> dict:
    from jaxreenact.common.mesh import make_mesh

    mesh = make_mesh(-1)
    rng = np.random.default_rng(0)
    need_locator = "landmarks" in a.boxes or any(":landmarks:" in x for x in a.only or ())
    if a.networks == "full":
        nets, frozen, torch_side = full_networks(need_locator)
        torch_side["frozen"] = frozen
    else:
        nets, frozen, torch_side = tiny_networks()
    rows = []
    combos = [(stage, box, dtype) for box in a.boxes for stage in a.stages for dtype in a.dtypes]
    if a.only:
        combos = [tuple(x.split(":")) for x in a.only]
    for stage, box, dtype in combos:
        c = stage_config(stage, box, dtype, a.batch, a.networks == "tiny")
        fn, compile_s, mem, flops = jax_step(stage, c, nets, frozen, mesh, rng)
        fns = [fn]
        with_torch = torch_side is not None and not a.no_torch and (stage, box, dtype) == (
            "synthetic", "fixed", "float32")  # fmt: skip
        if with_torch:
            t_fn, t_dev = torch_runner(torch_side, a.batch)
            fns.append(t_fn)
        ts = common.median_times(fns, a.iters, warmup=1)
        row = dict(stage=stage, box=box, dtype=dtype, batch=a.batch, devices=mesh.size, compile_s=compile_s,
                   jax=a.batch / ts[0] / mesh.size, xla_mem=mem, peak=device_peak(),
                   gflop=None if flops["compiled"] is None else flops["compiled"] * mesh.size / a.batch / 1e9)  # fmt: skip
        if with_torch:
            row.update(torch=a.batch / ts[1], torch_device=t_dev)
        rows.append(row)
        print(row, flush=True)
    return dict(rows=rows, iters=a.iters, networks=a.networks, batch=a.batch, devices=mesh.size)


def _mib(x) -> str:
    return "–" if x is None else f"{x / 2**20:.0f}"


def to_markdown(r: dict, command: str) -> str:
    out = [
        *common.section_head(f"Training steps, {r['networks']} networks (issue 16)", command),
        f"One optimizer step of each stage as the trainer runs it (`loop.make_step`), global batch {r['batch']} over "
        f"{r['devices']} device(s), padded to a multiple of them; median of {r['iters']} steps after one untimed "
        "round (after the compile). samples/s are per device. XLA memory: arguments + outputs + temporaries of the "
        "compiled step; peak: the device's peak bytes in use so far (GPU/TPU only). dtype: the generator's "
        "synthesis (`config.dtype`). PyTorch: the authors'-shape synthetic step of `bench/train_step.py` (full "
        "Δp, fixed box, fp32)"
        + (" — not run: the tiny networks have no PyTorch twin." if r["networks"] == "tiny" else "."),
        "",
        "GFLOP/sample: XLA's cost analysis of the compiled step (`bench/roofline.py` reads it against the networks' "
        "own counts and the chip's peak); TFLOP/s: that × samples/s.",
        "",
        "| stage | DECA box | dtype | compile (s) | JAX samples/s/device | GFLOP/sample | TFLOP/s | XLA memory (MiB) | "
        "peak (MiB) | PyTorch samples/s | JAX / PyTorch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        t = (
            f"{x['torch']:.3f} ({x['torch_device']}) | {x['jax'] * x['devices'] / x['torch']:.2f}"
            if "torch" in x
            else "– | –"
        )
        gf = x.get("gflop")
        fl = "– | –" if gf is None else f"{gf:.1f} | {gf * x['jax'] / 1e3:.3f}"
        out.append(f"| {x['stage']} | {x['box']} | {x['dtype']} | {x['compile_s']:.1f} | {x['jax']:.3f} | {fl} | "
                   f"{_mib(x['xla_mem'])} | {_mib(x['peak'])} | {t} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv=None):
    p = step_parser(__doc__)
    p.add_argument("--stages", nargs="+", choices=tuple(STAGES), default=list(STAGES))
    p.add_argument("--boxes", nargs="+", choices=("fixed", "landmarks"), default=["fixed", "landmarks"])
    p.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"])
    p.add_argument("--only", nargs="+", default=None, metavar="STAGE:BOX:DTYPE",
                   help="exactly these configurations (e.g. synthetic:landmarks:float32), instead of the product")  # fmt: skip
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch step")
    a = resolve(p.parse_args(argv))
    md = to_markdown(run(a), "python bench/step.py " + " ".join(sys.argv[1:] if argv is None else argv))
    common.publish(md, a.write)


def step_parser(doc: str) -> argparse.ArgumentParser:
    """The flags of the benches that time training steps (this one, roofline.py)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny networks, batch 4, 1 timed step (a smoke run)")
    p.add_argument("--networks", choices=("full", "tiny"), default=None, help="default: full (tiny with --quick)")
    p.add_argument("--batch", type=int, default=None, help="global batch (default 12, the authors'; 4 with --quick)")
    p.add_argument("--iters", type=int, default=None, help="timed steps (default 3; 1 with --quick)")
    p.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    return p


def resolve(a):
    """The defaults `--quick` changes (networks, batch, timed steps), and the matmul precision stated on a CPU
    (GPUs and TPUs run the backend's default, as training does)."""
    a.networks = a.networks or ("tiny" if a.quick else "full")
    a.batch = a.batch or (4 if a.quick else 12)
    a.iters = a.iters or (1 if a.quick else 3)
    if jax.default_backend() == "cpu":
        jax.config.update("jax_default_matmul_precision", "highest")
    return a


if __name__ == "__main__":
    main()
