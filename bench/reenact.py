"""Reenactment throughput (issue 8): the per-frame part (DECA + A + G) and the whole driving-frame pipeline,
JAX against a PyTorch pipeline of the authors' shape, same process, same random weights.

    python bench/reenact.py                               # batches 1 and 32, prints a markdown section
    python bench/reenact.py --batches 1 32 --iters 2 --write

Per-frame part, per driving frame (what `python -m jaxreenact.reenact` runs in jitted batches): the 256² crop →
DECA's 224² warp → E_flame (ResNet-50) → p → shift units → Δp = p − p_source → A → W+ rows 0-7 shifted →
G(ψ = 0.7) → uint8 frame. PyTorch: the same steps with the tests' pure-torch references (`deca_torch_ref.e_flame`,
`F.affine_grid`/`grid_sample`, `torch.nn.Linear`, `torch_reference.stylegan2`), batched like ours (the authors'
`extract_DECA_params` loops DECA over single images; their batch-1 numbers are the batch-1 row).

End to end adds, per frame: video decoding, the resize to width 1000, S3FD on the resized frame and 2D-FAN on the
256² face crop (JAX: our ports; PyTorch: face-alignment's modules, random weights). Each stage is timed on its own
(S3FD and FAN at batch ≤ `--detector-batch` to bound memory) and the per-frame times are summed; NMS and the crop
arithmetic on the host are the same NumPy code for both and are not included. Random weights: the numbers are
costs, the pictures mean nothing. fp32; `--bf16` adds JAX's bfloat16 generator (DECA stays fp32).

`--end-to-end N` (issue 24) runs the library's pipelined path on the first N frames of the shipped driving video
and reports its wall-clock frames/s: PyAV decoding in a thread ahead (`data.pipeline.prefetch`), the OpenCV resize
to width 1000, `face.pipeline.FaceLocator` (S3FD + 2D-FAN, fixed batches, bucketed heights, sharded over the local
devices), DECA + A + G (`inference.frames`-style jitted batches) and H.264 encoding in a writer thread
(`inference.writer`), after one untimed warm-up pass over the same frames (compilation). Random S3FD weights find
no face, so its host NMS is replaced by one fixed box per frame (FAN then runs on every frame, as on real faces).
The breakdown times each stage alone per frame (decode + resize, detect = S3FD + FAN, DECA + A + G, encode); the
authors' pipeline runs the same stages one after the other per frame in PyTorch (`run_inference.py` loops frame
by frame), so its frames/s is 1 / (decode + PyTorch S3FD + FAN + per-frame part at batch 1 + encode).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import common

common.setup_paths()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VIDEO = common.ROOT / "jaxreenact" / "resources" / "examples" / "driving_lWOTF8SdzJw_2614-2801.mp4"


# ----------------------------------------------------------------------------------------------- networks
def build(bf16: bool):
    import deca_torch_ref

    import goldens
    from converters.deca import load_torch as load_deca
    from converters.stylegan2 import convert_state_dict
    from jaxreenact.latent import directions
    from jaxreenact.pose import params as pose
    from torch_reference.stylegan2 import random_generator

    tg = random_generator(256, 1, seed=0)
    sd = {k: v.detach().numpy() for k, v in tg.state_dict().items()}
    gens = {"float32": convert_state_dict(sd, "bench")}
    if bf16:
        gens["bfloat16"] = convert_state_dict(sd, "bench", dtype="bfloat16")
    tmp = tempfile.mkdtemp(prefix="bench_reenact_")
    files = goldens.write_checkpoint("deca_coarse", f"{tmp}/deca")
    deca, deca_vars = load_deca(files / "deca_model.tar", files / "generic_model.pkl", files / "landmark_embedding.npy")
    e_sd = torch.load(files / "deca_model.tar", map_location="cpu", weights_only=False)["E_flame"]
    a = directions.DirectionMatrix(15, 8, 512)
    a_params = a.init(jax.random.key(0), jnp.zeros((1, 15)))
    ta = torch.nn.Linear(15, 8 * 512)
    with torch.no_grad():
        ta.weight.copy_(torch.from_numpy(np.asarray(a_params["params"]["linear"]["weight"]).T.copy()))
        ta.bias.copy_(torch.from_numpy(np.array(a_params["params"]["linear"]["bias"])))
    layout = pose.VOXCELEB
    units = pose.shift_units(pose.load_ranges(pose.default_ranges_path("voxceleb")), layout)
    mean = tg.style(torch.randn(4096, 512, generator=torch.Generator().manual_seed(0))).mean(0, keepdim=True)
    return dict(tg=tg, gens=gens, deca=deca, deca_vars=deca_vars, e_sd=e_sd, e_flame=deca_torch_ref.e_flame,
                a=a, a_params=a_params, ta=ta, layout=layout, units=units, mean=mean.detach())  # fmt: skip


def jax_per_frame(nets: dict, dtype: str):
    """jit fn(crops uint8 [B,256,256,3], theta [B,3,3], w_src [1,14,512], u_src [1,15]) → uint8 [B,256,256,3]."""
    from jaxreenact.face import deca_crop
    from jaxreenact.latent import directions
    from jaxreenact.latent.render import render
    from jaxreenact.pose import params as pose

    g, g_vars = nets["gens"][dtype]
    deca, a, layout, units = nets["deca"], nets["a"], nets["layout"], nets["units"]

    @jax.jit
    def fn(deca_vars, a_params, g_vars, crops, theta, w_src, u_src):
        x = crops.astype(jnp.float32) / 127.5 - 1.0
        codes = deca.apply(deca_vars, deca_crop.deca_input(x, theta))
        dp = pose.to_units(pose.params_to_p(codes, layout), units, layout) - u_src
        w = directions.shift_wplus(jnp.broadcast_to(w_src, (crops.shape[0], *w_src.shape[1:])), a.apply(a_params, dp))
        img = render(g, g_vars, w, 0.7)
        return jnp.clip(jnp.rint((img + 1.0) * 127.5), 0, 255).astype(jnp.uint8)

    return functools.partial(fn, nets["deca_vars"], nets["a_params"], g_vars)


def torch_euler_deg(aa: torch.Tensor) -> torch.Tensor:
    """[B, 3] global axis-angle → (yaw, pitch, roll) degrees in torch: DECA's quaternion route to R, then
    asin(R20), atan2(R21, R22), atan2(R10, R00) (the regular branch of `jaxreenact.pose.rotations`)."""
    theta = aa.norm(dim=1, keepdim=True)
    half = 0.5 * theta
    k = torch.where(theta > 0, torch.sin(half) / theta.clamp_min(1e-30), torch.full_like(theta, 0.5))
    q = torch.cat([torch.where(theta > 0, torch.cos(half), torch.ones_like(theta)), aa * k], 1)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    r00, r10 = w * w + x * x - y * y - z * z, 2 * (w * z + x * y)
    r20, r21, r22 = 2 * (x * z - w * y), 2 * (w * x + y * z), w * w - x * x - y * y + z * z
    yaw = torch.asin(r20)
    c = torch.cos(yaw)
    ang = torch.stack([yaw, torch.atan2(r21 / c, r22 / c), torch.atan2(r10 / c, r00 / c)], 1)
    return ang * (180.0 / np.float32(np.pi))


def torch_per_frame(nets: dict):
    """The same steps in PyTorch, NCHW: fn(crops uint8 [B,3,256,256], theta [B,3,3], w_src, u_src)."""
    layout, units = nets["layout"], nets["units"]
    scales = np.ones(layout.num_directions, np.float32)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        scales[idx] = layout.angle_scales[k]
    is_angle = torch.from_numpy(np.asarray(units.is_angle))
    ua, ub = (torch.from_numpy(np.asarray(v, np.float32)) for v in (units.a, units.b))
    scales = torch.from_numpy(scales)

    @torch.inference_mode()
    def fn(crops, theta, w_src, u_src):
        b = crops.shape[0]
        x = (crops.float() / 127.5 - 1.0).clamp(-1, 1)
        x = (x + 1) / (2 + 1e-5)  # [0, 255] / 255
        # The kornia warp as an affine_grid/grid_sample on normalised coordinates (same cost as kornia's).
        grid = F.affine_grid(theta[:, :2], (b, 3, 224, 224), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        code = nets["e_flame"](nets["e_sd"], x)
        exp, pose_ = code[:, 150:200], code[:, 200:206]
        p = torch.cat([torch_euler_deg(pose_[:, :3]), pose_[:, 3:4], exp[:, : layout.num_expressions]], 1)
        u = torch.where(is_angle, p * layout.shift_scale / scales, ua * p + ub)
        shift = nets["ta"](u - u_src).view(b, 8, 512)
        w = w_src.expand(b, -1, -1).clone()
        w[:, :8] += shift
        img = nets["tg"](w, truncation=0.7, truncation_latent=nets["mean"], input_is_latent=True)
        return ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    return fn


# ----------------------------------------------------------------------------------------------- front end
def front_end(det_batch: int):
    """(name, jax fn, torch fn, input maker) for S3FD on a width-1000 frame and FAN on a 256² crop."""
    from face_alignment.detection.sfd.net_s3fd import s3fd as TorchS3FD
    from face_alignment.models.fan import FAN as TorchFAN

    from jaxreenact.models import fan, sfd

    torch.manual_seed(0)
    ts, tf = TorchS3FD().eval(), TorchFAN(4).eval()
    js, jf = sfd.S3FD(), fan.FAN(4)
    sv = jax.jit(js.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    fv = jax.jit(jf.init)(jax.random.key(1), jnp.zeros((1, 256, 256, 3)))
    s_fn = jax.jit(lambda v, x: sfd.decode_outputs(js.apply(v, sfd.prepare_input(x))))
    f_fn = jax.jit(lambda v, x: jf.apply(v, x)[-1])
    with torch.inference_mode():
        ts_fn, tf_fn = (lambda x: ts(x)), (lambda x: tf(x)[-1])
    return [("S3FD (1000×563)", functools.partial(s_fn, sv), ts_fn, (563, 1000)),
            ("2D-FAN (256² crop)", functools.partial(f_fn, fv), tf_fn, (256, 256))]  # fmt: skip


def time_decode(n: int) -> float:
    """Seconds per frame to decode the driving video and resize to width 1000 (shared by both pipelines)."""
    from jaxreenact.data import video
    from jaxreenact.face import crop

    t = time.perf_counter()
    k = 0
    for f in video.iter_frames(VIDEO, max_frames=n):
        crop.resize_to_width(f)
        k += 1
    return (time.perf_counter() - t) / k


def time_encode(n: int) -> float:
    """Seconds per frame to encode 256² frames as H.264 (PyAV, in process)."""
    from jaxreenact.data import video

    frames = np.random.default_rng(0).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        video.write_video(f"{d}/x.mp4", frames, fps=25)
        return (time.perf_counter() - t) / n


def end_to_end(nets: dict, n: int, batch: int) -> dict:
    """Wall-clock frames/s of the pipelined path on the first n frames of the driving video (see the module doc),
    and the per-frame seconds of each stage alone."""
    from unittest import mock

    from jaxreenact.data import pipeline, preprocessing, video
    from jaxreenact.face import pipeline as face_pipeline
    from jaxreenact.inference import source, writer
    from jaxreenact.models import fan, sfd
    from jaxreenact.pose.deca import fixed_deca_theta

    torch.manual_seed(0)
    js, jf = sfd.S3FD(), fan.FAN(4)
    sv = jax.jit(js.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    fv = jax.jit(jf.init)(jax.random.key(1), jnp.zeros((1, 256, 256, 3)))
    locate = source.fixed_shapes(face_pipeline.FaceLocator((js, sv), (jf, fv)), batch)
    pre = face_pipeline.FacePreprocessor(locate)
    per_frame = jax_per_frame(nets, "float32")
    rng = np.random.default_rng(0)
    w_src = rng.standard_normal((1, 14, 512)).astype(np.float32) * 0.5
    u_src = np.zeros((1, 15), np.float32)
    theta1 = fixed_deca_theta(1).astype(np.float32)
    spec = preprocessing.inspect_input(str(VIDEO), n)
    fixed = lambda b, s: [np.array([[400, 120, 640, 400, 0.999]], np.float32)] * len(b)  # noqa: E731

    def once(timed: dict | None):
        out = tempfile.mkdtemp(prefix="bench_e2e_")
        enc = writer.Writer(lambda fr: video.write_video(f"{out}/r.mp4", fr, fps=25))
        pre.reset()
        t0 = time.perf_counter()
        decoded = pipeline.prefetch((f for _, f in preprocessing.iter_input(spec, n)), 2 * batch)
        for chunk in preprocessing.batches(decoded, batch):
            crops = np.stack([r.crop for r in pre(chunk)])
            k = len(crops)
            crops = np.concatenate([crops, np.repeat(crops[-1:], batch - k, 0)])
            img = np.asarray(per_frame(crops, np.repeat(theta1, batch, 0), w_src, u_src))[:k]
            for f in img:
                enc.put(f)
        enc.close()
        if timed is not None:
            timed["wall"] = time.perf_counter() - t0

    with mock.patch.object(sfd, "postprocess", fixed):
        once(None)  # compiles
        timed: dict = {}
        once(timed)
        # the stages alone, per frame
        frames = video.read_video(VIDEO, max_frames=batch)
        work = np.stack([pre(list(frames))[0].crop] * batch)
        t = time.perf_counter()
        pre(list(frames))
        detect = (time.perf_counter() - t) / batch
    t = time.perf_counter()
    np.asarray(per_frame(work, np.repeat(theta1, batch, 0), w_src, u_src))
    core = (time.perf_counter() - t) / batch
    return dict(frames=n, batch=batch, fps=n / timed["wall"], decode=time_decode(n), detect=detect, core=core,
                encode=time_encode(n))  # fmt: skip


# ----------------------------------------------------------------------------------------------- run
def run(batches, iters: int, bf16: bool, det_batch: int, with_torch: bool = True, e2e: int = 0) -> dict:
    from jaxreenact.pose.deca import fixed_deca_theta

    nets = build(bf16)
    rng = np.random.default_rng(0)
    w_src = rng.standard_normal((1, 14, 512)).astype(np.float32) * 0.5
    u_src = np.zeros((1, 15), np.float32)
    theta1 = fixed_deca_theta(1).astype(np.float32)
    t_fn = torch_per_frame(nets)
    rows = []
    for b in batches:
        crops = rng.integers(0, 256, (b, 256, 256, 3), dtype=np.uint8)
        theta = np.repeat(theta1, b, 0)
        # torch's affine_grid wants the normalised inverse map; same cost whatever its values
        t_theta = torch.from_numpy(np.repeat(np.eye(3, dtype=np.float32)[None] * 0.875, b, 0))
        t_args = (torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()), t_theta, torch.from_numpy(w_src),
                  torch.from_numpy(u_src))  # fmt: skip
        for dtype in ("float32", "bfloat16") if bf16 else ("float32",):
            j_fn = jax_per_frame(nets, dtype)
            j_args = tuple(jax.device_put(x) for x in (crops, theta, w_src, u_src))
            t0 = time.perf_counter()
            j_fn(*j_args).block_until_ready()
            compile_s = time.perf_counter() - t0
            fns = [lambda j_fn=j_fn, j_args=j_args: j_fn(*j_args).block_until_ready()]
            if dtype == "float32" and with_torch:
                fns.append(lambda t_args=t_args: t_fn(*t_args))
            ts = common.median_times(fns, iters, warmup=0 if dtype != "float32" else 1)
            row = dict(batch=b, dtype=dtype, compile_s=compile_s, jax_fps=b / ts[0])
            if len(ts) > 1:
                row["torch_fps"] = b / ts[1]
            rows.append(row)
            print(row, flush=True)
    front = {}
    for name, j, t, (h, w) in front_end(det_batch):
        x = rng.integers(0, 256, (det_batch, h, w, 3)).astype(np.float32)
        jx = jax.device_put(x / (255.0 if "FAN" in name else 1.0))
        tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) / (255.0 if "FAN" in name else 1.0)))
        jax.block_until_ready(j(jx))
        fns = [lambda j=j, jx=jx: jax.block_until_ready(j(jx))] + ([lambda t=t, tx=tx: t(tx)] if with_torch else [])
        tj, *tt = common.median_times(fns, iters, warmup=1)
        front[name] = (tj / det_batch, tt[0] / det_batch if tt else float("nan"))
        print(name, front[name], flush=True)
    e2e_row = end_to_end(nets, e2e, max(batches)) if e2e else None
    if e2e_row:
        print(e2e_row, flush=True)
    return dict(rows=rows, front=front, decode=time_decode(16), iters=iters, det_batch=det_batch, e2e=e2e_row)


def to_markdown(r: dict) -> str:
    front_j = sum(v[0] for v in r["front"].values())
    front_t = sum(v[1] for v in r["front"].values())
    out = [
        *common.section_head("Reenactment (issue 8)", f"python bench/reenact.py --iters {r['iters']}"),
        "Per-frame part = DECA (224² warp + ResNet-50) + p → Δp + A + G 256² (ψ 0.7) → uint8, random weights, "
        f"median of {r['iters']} calls after one untimed round (the JAX compile, a warm-up), calls interleaved. "
        "End to end adds decoding + resize to width 1000 "
        f"({r['decode'] * 1e3:.0f} ms/frame, shared), S3FD and 2D-FAN per frame (timed at batch {r['det_batch']}): "
        + ", ".join(f"{k} JAX {v[0]:.2f} s / PyTorch {v[1]:.2f} s" for k, v in r["front"].items())
        + ". The 2 CPU cores are shared: expect ±30 %. No accelerator was lent to this session, so the issue's "
        "H200 goal (> 1000 frames/s for the per-frame part in bf16) is not measured.",
        "",
        "| batch | dtype | JAX compile (s) | per-frame JAX fps | per-frame PyTorch fps | ratio | "
        "end-to-end JAX fps | end-to-end PyTorch fps | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        e2e_j = 1.0 / (r["decode"] + front_j + 1.0 / row["jax_fps"])
        if "torch_fps" in row:
            e2e_t = 1.0 / (r["decode"] + front_t + 1.0 / row["torch_fps"])
            tail = (f"{row['torch_fps']:.2f} | {row['jax_fps'] / row['torch_fps']:.2f} | {e2e_j:.3f} | {e2e_t:.3f} | "
                    f"{e2e_j / e2e_t:.2f} |")  # fmt: skip
        else:
            tail = f"– | – | {e2e_j:.3f} | – | – |"
        out.append(f"| {row['batch']} | {row['dtype']} | {row['compile_s']:.1f} | {row['jax_fps']:.2f} | {tail}")
    return "\n".join(out) + "\n"


def e2e_markdown(r: dict) -> str:
    """The end-to-end section (issue 24): the pipelined run, its breakdown and the authors' sequential rate."""
    e = r["e2e"]
    t1 = next((row for row in r["rows"] if row["batch"] == 1 and "torch_fps" in row), None)
    torch_front = sum(v[1] for v in r["front"].values())
    authors = None
    if t1 is not None:
        authors = 1.0 / (e["decode"] + torch_front + 1.0 / t1["torch_fps"] + e["encode"])
    ms = lambda s: f"{s * 1e3:.0f}"  # noqa: E731
    cmd = f"python bench/reenact.py --batches {e['batch']} --end-to-end {e['frames']} --iters {r['iters']}"
    lines = [
        *common.section_head("Reenactment end to end, pipelined (issue 24)", cmd),
        f"The library's path on the first {e['frames']} frames of the shipped driving video at batch {e['batch']} "
        "(decode thread ahead, OpenCV resize, S3FD + FAN with fixed shapes, DECA + A + G, H.264 in a writer "
        "thread), wall clock after a warm-up pass; the stages alone per frame; the authors' pipeline as the sum of "
        "its sequential stages in PyTorch (batch-1 per-frame part, S3FD + FAN timed above, the same decode and "
        "encode).",
        "",
        "| end-to-end JAX fps | decode + resize (ms/frame) | detect: S3FD + FAN (ms/frame) | DECA + A + G (ms/frame) "
        "| encode (ms/frame) | authors' pipeline fps (PyTorch, sequential) | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {e['fps']:.3f} | {ms(e['decode'])} | {ms(e['detect'])} | {ms(e['core'])} | {ms(e['encode'])} | "
        + (f"{authors:.3f} | {e['fps'] / authors:.2f} |" if authors else "– | – |"),
        "",
        "The 2 CPU cores are shared with other jobs: expect ±30 %.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--detector-batch", type=int, default=2, help="S3FD/FAN batch for the end-to-end stage timings")
    p.add_argument("--bf16", action="store_true", help="also time JAX's bfloat16 generator")
    p.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    p.add_argument("--no-torch", action="store_true", help="JAX only (the PyTorch side runs on the CPU)")
    p.add_argument("--end-to-end", type=int, default=0, metavar="N",
                   help="also run the pipelined library path on N frames of the example video (issue 24)")  # fmt: skip
    a = p.parse_args(argv)
    if jax.default_backend() == "cpu":  # parity-grade matmuls; accelerators keep their default precision
        jax.config.update("jax_default_matmul_precision", "highest")
    torch.set_grad_enabled(False)
    r = run(a.batches, a.iters, a.bf16, a.detector_batch, with_torch=not a.no_torch, e2e=a.end_to_end)
    md = to_markdown(r)
    print(md)
    if r["e2e"]:
        print(e2e_markdown(r))
    if a.write:
        common.write_section(e2e_markdown(r) if r["e2e"] else md)  # --end-to-end writes its own section


if __name__ == "__main__":
    main()
