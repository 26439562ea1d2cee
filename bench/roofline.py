"""A roofline to read the training-step figures against (issue 23, item 8): for each stage's step, the FLOPs per
sample XLA counts in the compiled step next to the sum of its networks' forward and backward FLOPs (each network
alone, counted the same way), the achieved FLOP/s against the chip's published peak, and the host input pipeline's
samples/s next to the step's.

    python bench/roofline.py                 # full-size random networks, the authors' batch 12, fixed DECA box
    python bench/roofline.py --quick         # tiny networks, batch 4: a smoke run anywhere
    python bench/roofline.py --boxes fixed landmarks --write

Step: `bench/step.py`'s (`loop.make_step` on a mesh of the local devices, float32), timed as there (median after a
warm-up). FLOPs: `cost_analysis()["flops"]` of the lowered step (the HLO before optimisation: the same on every
backend) and of the compiled one (the backend's own count of the optimised program; GPU library calls such as
cuDNN convolutions may be counted differently or not at all, hence both).
Networks: each network's forward alone (`jit(f).lower(x)`), and its forward + backward to its input (the step
differentiates w.r.t. A only, so no network computes weight gradients), per sample, times the number of times
one sample of the stage runs it (`COUNTS`); FLAME, A, the losses and Adam are left out (under 0.1 %).
Input pipeline: the VoxCeleb reader (`VoxCelebFrames`) over a small made-up dataset (`data.fake`, 256² PNG frames
built into TFDS), what one step of the stage reads (mixed: B/2 real frames; paired: B pairs), as samples of the
step per second, alone and with the host→device transfer (`pipeline.to_global`).
"""

from __future__ import annotations

import sys
import tempfile
import time

import common

common.setup_paths()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import step as step_bench  # noqa: E402

# Per sample of a stage's batch: (forward only, forward + backward to the input) of each network.
# synthetic: G(z_s), G(z_t) without gradient, G(w_s + A Δp) with; DECA on source and target (no gradient) and on
# the shifted image; ArcFace on the identity reference and the shifted image; LPIPS on (shifted, reference).
# mixed: half the sources are G(z) (0.5 forward), the other half real frames. paired: sources and targets are frames.
COUNTS = {
    "synthetic": {"G": (2, 1), "DECA": (2, 1), "ArcFace": (1, 1), "LPIPS": (0, 1)},
    "mixed": {"G": (1.5, 1), "DECA": (2, 1), "ArcFace": (1, 1), "LPIPS": (0, 1)},
    "paired": {"G": (0, 1), "DECA": (2, 1), "ArcFace": (1, 1), "LPIPS": (0, 1)},
}
LANDMARK_COUNTS = {"S3FD+FAN": (3, 0)}  # the landmark DECA box on source, target and shifted image (no gradient)

# Published dense peaks per chip (no structured sparsity), TFLOP/s: NVIDIA H100 SXM5 and H200 SXM datasheets
# (FP32 67; TF32 Tensor Core 989 and BF16 1979 "with sparsity", i.e. 494.5 and 989.5 dense); Google Cloud TPU
# system architecture pages (v4: 275 bf16 per chip; v5e: 197 bf16 per chip; TPUs run float32 matmuls as bf16
# passes: "highest" ≈ 6 passes, so about 1/6 of the bf16 peak).
PEAKS = {
    "H100 SXM (FP32 / TF32 / BF16)": (67, 494.5, 989.5),
    "H200 SXM (FP32 / TF32 / BF16)": (67, 494.5, 989.5),
    "TPU v4 (f32 highest ≈ bf16/6 / bf16)": (275 / 6, None, 275),
    "TPU v5e (f32 highest ≈ bf16/6 / bf16)": (197 / 6, None, 197),
}


def flops_of(fn, *args, compile_too: bool = True) -> dict:
    """{"lowered": ..., "compiled": ...} FLOPs of `jit(fn)(*args)` (compiled: None without `compile_too`)."""
    lowered = jax.jit(fn).lower(*args)
    return {"lowered": step_bench.cost_flops(lowered),
            "compiled": step_bench.cost_flops(lowered.compile()) if compile_too else None}  # fmt: skip


def network_flops(nets, frozen, batch: int, with_locator: bool, compile_too: bool = True) -> dict[str, dict]:
    """Per sample, per network: {"fwd": flops, "fwdbwd": flops} (each a {"lowered", "compiled"} dict)."""
    from jaxreenact.face import deca_box
    from jaxreenact.models.arcface import id_crop
    from jaxreenact.pose import deca as deca_lib

    rng = np.random.default_rng(0)
    img = jnp.asarray(np.tanh(rng.standard_normal((batch, 256, 256, 3))).astype(np.float32))
    ref = jnp.asarray(np.tanh(rng.standard_normal((batch, 256, 256, 3))).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((batch, nets.g.n_latent, 512)).astype(np.float32))
    theta = jnp.asarray(np.broadcast_to(deca_lib.fixed_deca_theta(1), (batch, 3, 3)).astype(np.float32))

    def total(tree):
        return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(tree))

    fns = {
        "G": (lambda v, x: nets.g.apply(v, x, input_is_latent=True), frozen["g"], w),
        "DECA": (lambda v, x: deca_lib.encode(nets.deca, v, x, theta), frozen["deca"], img),
        "ArcFace": (lambda v, x: nets.arcface.apply(v, id_crop(x)), frozen["arcface"], img),
        "LPIPS": (lambda v, x: nets.lpips.apply(v, x, ref), frozen["lpips"], img),
    }
    if with_locator:
        fb = deca_box.landmark_theta
        fns["S3FD+FAN"] = (
            lambda v, x: fb((nets.sfd, v[0]), (nets.fan, v[1]), x, deca_lib.fixed_deca_theta(1)),
            (frozen["sfd"], frozen["fan"]),
            img,
        )
    out = {}
    for name, (f, v, x) in fns.items():
        fwd = flops_of(f, v, x, compile_too=compile_too)
        fb_ = None
        if name != "S3FD+FAN":
            # the variables are an argument, not constants closed over (XLA would fold them into the program)
            fb_ = flops_of(jax.grad(lambda x, v, f=f: total(f(v, x))), x, v, compile_too=compile_too)
        per = lambda d: {k: (None if x_ is None else x_ / batch) for k, x_ in d.items()}  # noqa: E731
        out[name] = {"fwd": per(fwd), "fwdbwd": None if fb_ is None else per(fb_)}
        print(f"[roofline] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def networks_sum(stage: str, box: str, per_net: dict, which: str) -> float | None:
    counts = dict(COUNTS[stage], **(LANDMARK_COUNTS if box == "landmarks" else {}))
    tot = 0.0
    for name, (n_f, n_fb) in counts.items():
        d = per_net.get(name)
        if d is None:
            return None
        f = d["fwd"][which]
        fb = d["fwdbwd"][which] if n_fb else 0.0
        if f is None or fb is None:
            return None
        tot += n_f * f + n_fb * fb
    return tot


def matmul_rate(dtype, precision: str) -> float:
    """Achieved FLOP/s of a 4096³ (CPU: 1024³) matrix product on this device (a practical ceiling to read the steps against)."""
    n = 4096 if jax.default_backend() != "cpu" else 1024
    a = jnp.ones((n, n), dtype)
    with jax.default_matmul_precision(precision):
        f = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    jax.block_until_ready(f(a, a))
    (t,) = common.median_times([lambda: jax.block_until_ready(f(a, a))], 5)
    return 2 * n**3 / t


def pipeline_rates(stage: str, batch: int, mesh, steps: int, folder: str) -> dict:
    """Samples of the stage's step per second that the VoxCeleb reader delivers: alone, and with `to_global`."""
    from jaxreenact.data import fake, pipeline
    from jaxreenact.data.voxceleb import VoxCelebFrames

    root = fake.make_fake_dataset(folder, image_size=256, n_ids=2, n_videos=3, n_frames=8)
    with VoxCelebFrames(root, "train") as ds:
        if stage == "mixed":
            it = ds.frame_batches(batch // 2, seed=0)
            keys = ("image", "latent")
        else:
            it = ds.pair_batches(batch, seed=0)
            keys = ("source_image", "target_image", "source_latent", "target_latent")
        next(it)  # threads up, first files opened
        t0 = time.perf_counter()
        for _ in range(steps):
            next(it)
        host = batch * steps / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(steps):
            b = next(it)
            jax.block_until_ready(pipeline.to_global({k: b[k] for k in keys}, mesh))
        moved = batch * steps / (time.perf_counter() - t0)
    return {"host": host, "to_device": moved}


def run(a) -> dict:
    from jaxreenact.common.mesh import make_mesh

    mesh = make_mesh(-1)
    rng = np.random.default_rng(0)
    precision = "highest" if jax.config.jax_default_matmul_precision == "highest" else "default"
    with_locator = "landmarks" in a.boxes
    if a.networks == "full":
        nets, frozen, _ = step_bench.full_networks(with_locator)
    else:
        nets, frozen, _ = step_bench.tiny_networks()
    rates = {}
    for name, dt, prec in (("f32 highest", jnp.float32, "highest"), ("f32 default", jnp.float32, "default"),
                           ("bf16", jnp.bfloat16, "default")):  # fmt: skip
        rates[name] = matmul_rate(dt, prec)
        print(f"[roofline] matmul {name}: {rates[name] / 1e12:.3f} TFLOP/s", file=sys.stderr, flush=True)
    per_net = network_flops(nets, frozen, a.net_batch, with_locator, not a.networks_lowered_only)
    rows = []
    pipe_dir = tempfile.mkdtemp(prefix="jaxreenact_roofline_")
    for box in a.boxes:
        for stage in a.stages:
            c = step_bench.stage_config(stage, box, "float32", a.batch, a.networks == "tiny")
            fn, compile_s, _, flops = step_bench.jax_step(stage, c, nets, frozen, mesh, rng)
            (t,) = common.median_times([fn], a.iters, warmup=1)
            per = {k: (None if v is None else v * mesh.size / a.batch) for k, v in flops.items()}
            row = dict(stage=stage, box=box, compile_s=compile_s, sps=a.batch / t / mesh.size, step=per,
                       nets={k: networks_sum(stage, box, per_net, k) for k in ("lowered", "compiled")})  # fmt: skip
            if stage != "synthetic" and not a.no_pipeline:
                try:
                    row["pipe"] = pipeline_rates(stage, a.batch, mesh, a.pipeline_steps, pipe_dir)
                except Exception as e:  # noqa: BLE001 - e.g. tensorflow_datasets missing on the machine
                    row["pipe_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            rows.append(row)
            print(f"[roofline] {row}", file=sys.stderr, flush=True)
    return dict(rows=rows, per_net=per_net, rates=rates, batch=a.batch, iters=a.iters, networks=a.networks,
                devices=mesh.size, net_batch=a.net_batch, precision=precision)  # fmt: skip


def _g(x, scale=1e9, fmt="{:.1f}") -> str:
    return "–" if x is None else fmt.format(x / scale)


def to_markdown(r: dict, command: str) -> str:
    dev = jax.devices()[0]
    rt = r["rates"]
    out = [
        *common.section_head(f"Roofline of the training steps, {r['networks']} networks ({dev.platform})", command),
        f"Each stage's step (`bench/step.py`'s, float32, global batch {r['batch']} over {r['devices']} device(s), "
        f"median of {r['iters']} after a warm-up) against its networks: GFLOP per sample that XLA's cost analysis "
        "counts in the step (lowered = HLO before optimisation, the same on every backend; compiled = the "
        "backend's count of the optimised program), next to the sum over its networks of (forward-only runs × "
        "forward FLOPs + differentiated runs × forward-and-input-gradient FLOPs), each network counted alone the "
        f"same way at batch {r['net_batch']} (`COUNTS` in `bench/roofline.py`). step / networks ≈ 1 means the step "
        "does the networks' work and little else. TFLOP/s = compiled GFLOP/sample × samples/s.",
        f"Matrix-product ceiling measured on this device (square, largest that fits the budget): float32 at "
        f"highest {rt['f32 highest'] / 1e12:.3f}, float32 at default {rt['f32 default'] / 1e12:.3f}, bfloat16 "
        f'{rt["bf16"] / 1e12:.3f} TFLOP/s. The steps ran at the "{r["precision"]}" matmul precision; the % '
        "column divides by the float32 ceiling at that precision.",
        "",
        "| stage | DECA box | step GFLOP/sample (lowered / compiled) | networks GFLOP/sample (lowered / compiled) | "
        "step / networks | compile (s) | step samples/s/device | TFLOP/s | % of the f32 matmul ceiling | "
        "input pipeline samples/s (host / to device) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        st, nt = x["step"], x["nets"]
        ratio = "–" if not (st["lowered"] and nt["lowered"]) else f"{st['lowered'] / nt['lowered']:.2f}"
        comp = st["compiled"] or st["lowered"]
        tfl = None if comp is None else comp * x["sps"]
        pct = "–" if tfl is None else f"{100 * tfl / rt['f32 ' + r['precision']]:.0f} %"
        if "pipe" in x:
            pipe = f"{x['pipe']['host']:.1f} / {x['pipe']['to_device']:.1f}"
        elif "pipe_error" in x:
            pipe = f"not measured ({x['pipe_error']})"
        else:
            pipe = "– (z drawn on the device)" if x["stage"] == "synthetic" else "not measured"
        out.append(
            f"| {x['stage']} | {x['box']} | {_g(st['lowered'])} / {_g(st['compiled'])} | {_g(nt['lowered'])} / "
            f"{_g(nt['compiled'])} | {ratio} | {x['compile_s']:.1f} | {x['sps']:.3f} | {_g(tfl, 1e12, '{:.3f}')} | "
            f"{pct} | {pipe} |"
        )
    out += [
        "",
        "Per network, GFLOP per sample (lowered / compiled):",
        "",
        "| network | forward | forward + input gradient |",
        "|---|---:|---:|",
    ]
    for name, d in r["per_net"].items():
        fb = d["fwdbwd"]
        fbs = "–" if fb is None else f"{_g(fb['lowered'], 1e9, '{:.2f}')} / {_g(fb['compiled'], 1e9, '{:.2f}')}"
        out.append(f"| {name} | {_g(d['fwd']['lowered'], 1e9, '{:.2f}')} / {_g(d['fwd']['compiled'], 1e9, '{:.2f}')}"
                   f" | {fbs} |")  # fmt: skip
    out += [
        "",
        "Published dense peaks per chip to read a device run against (TFLOP/s; NVIDIA H100 SXM5 and H200 SXM "
        "datasheets, whose TF32/BF16 Tensor Core figures are quoted with 2:4 sparsity and are halved here; Google "
        'Cloud TPU v4 and v5e system architecture pages, bf16 per chip; a TPU runs float32 at "highest" as about '
        "6 bf16 passes):",
        "",
        "| chip | float32 | TF32 (default on H100/H200) | bfloat16 |",
        "|---|---:|---:|---:|",
    ]
    for chip, (f32, tf32, bf16) in PEAKS.items():
        name = chip.split(" (")[0]
        out.append(f"| {name} | {f32:.1f} | {'–' if tf32 is None else f'{tf32:.1f}'} | {bf16:.1f} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = step_bench.step_parser(__doc__)
    p.add_argument("--net-batch", type=int, default=4, help="batch of the per-network counts (default 4)")
    p.add_argument("--stages", nargs="+", choices=tuple(COUNTS), default=list(COUNTS))
    p.add_argument("--boxes", nargs="+", choices=("fixed", "landmarks"), default=["fixed"])
    p.add_argument("--pipeline-steps", type=int, default=10, help="batches read per pipeline rate (default 10)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the input pipeline (needs tensorflow_datasets)")
    p.add_argument("--networks-lowered-only", action="store_true",
                   help="count the networks' FLOPs on the lowered HLO only (no compiles: saves a minute on a GPU)")  # fmt: skip
    a = step_bench.resolve(p.parse_args(argv))
    md = to_markdown(run(a), "python bench/roofline.py " + " ".join(sys.argv[1:] if argv is None else argv))
    common.publish(md, a.write)


if __name__ == "__main__":
    main()
