"""Training-step throughput of the synthetic stage (issue 6): JAX (`jaxreenact.training`, the step the trainer runs)
against a PyTorch step of the same shape, same process, full-size networks with random weights.

    python bench/train_step.py                      # batch 2, 2 timed steps, prints a markdown section
    python bench/train_step.py --batches 2 4 --iters 3 --write

The step (METHOD.md 4): z pairs → G 256² (source and target, no gradient) → DECA on both → Δp → A → G(w + A·Δp)
→ DECA → FLAME → shape, eye and mouth losses, ArcFace identity loss, LPIPS → gradient on A → Adam. JAX: the
stage's loss (`training.synthetic.synthetic_loss`, with the 50 % single-attribute scheme) under one `jax.jit` with the optax
update, on one device. PyTorch: the same networks from the tests' pure-torch references (`torch_reference.stylegan2`,
`deca_torch_ref` E_flame + FLAME, `torch_face_ref` ArcFace and LPIPS) with full Δp for every sample (the 50 %
scheme's bookkeeping is negligible next to the networks), `torch.optim.Adam` on A. Both warp the 256² images to
DECA's 224² crop with the fixed box. Weights: StyleGAN2 from `random_generator`, DECA/ArcFace/LPIPS from the golden
specs (random), A random. Numbers are costs; the losses are not compared.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import common

common.setup_paths()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def build():
    import deca_torch_ref

    import goldens as G
    from configs import synthetic
    from converters import arcface, lpips
    from converters.common import to_numpy
    from converters.deca import load_torch as load_deca
    from converters.stylegan2 import convert_state_dict
    from jaxreenact.weights import Networks
    from torch_face_ref import ArcFaceRef, LPIPSRef, load
    from torch_reference.stylegan2 import random_generator

    tg = random_generator(256, 1, seed=0)
    g, g_vars = convert_state_dict({k: v.detach().numpy() for k, v in tg.state_dict().items()}, "bench")
    files = G.write_checkpoint("deca_coarse", tempfile.mkdtemp(prefix="bench_train_") + "/deca")
    deca, deca_vars = load_deca(files / "deca_model.tar", files / "generic_model.pkl", files / "landmark_embedding.npy")
    e_sd = {k: t.float() for k, t in G.state_dict("deca_coarse", "E_flame").items()}
    sd = G.state_dict("irse50_arcface", "facenet")
    am, av = arcface.convert_state_dict(to_numpy(sd, "arcface"), "arcface")
    t_arc = load(ArcFaceRef(), sd)
    a_sd, lin = G.state_dict("lpips_perceptual", "alexnet"), G.state_dict("lpips_perceptual", "lin")
    lm, lv, _ = lpips.convert(a_sd, lin, "alexnet", "lin")
    t_lp = LPIPSRef().eval()
    t_lp.load_weights(a_sd, lin)
    nets = Networks(g=g, deca=deca, arcface=am, lpips=lm)
    frozen = {"g": g_vars, "deca": deca_vars, "arcface": av, "lpips": lv}
    config = synthetic.get_config()
    flame = deca_torch_ref.Flame({k: np.asarray(v) for k, v in deca_vars["buffers"]["flame"].items()}, deca.parents)
    torch_side = dict(tg=tg, e_sd=e_sd, arc=t_arc, lp=t_lp, flame=flame, ref=deca_torch_ref)
    return config, nets, frozen, torch_side


def jax_step(config, nets, frozen, batch: int):
    from jaxreenact.training import setup, synthetic

    s = setup.make_setup(config, nets)
    loss = synthetic.synthetic_loss(s, batch)
    params = setup.init_params_fn(s.a)(jax.random.key(0))
    opt = optax.adam(config.train.lr)
    state = (params, opt.init(params))

    @jax.jit
    def step(state, frozen, key):
        params, opt_state = state
        grads, _ = jax.grad(loss, has_aux=True)(params, frozen, key, None)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return lambda key: step(state, frozen, key)


def to_device(t: dict, device: str) -> dict:
    """The PyTorch side of `build()` moved to `device` (modules, the E_flame state dict, FLAME's buffers)."""
    if device == "cpu":
        return t
    t = dict(t)
    for k in ("tg", "arc", "lp"):
        t[k] = t[k].to(device)
    t["e_sd"] = {k: v.to(device) for k, v in t["e_sd"].items()}
    t["flame"].b = {k: v.to(device) for k, v in t["flame"].b.items()}
    return t


def torch_step(config, frozen, t: dict, batch: int, device: str = "cpu"):
    """The PyTorch step at `batch` on `device` ("cuda": the tensors the references create are made there too,
    through `torch.set_default_device`)."""
    from jaxreenact.pose import params as pose
    from jaxreenact.training import losses

    if device != "cpu":
        torch.set_default_device(device)
        t = to_device(t, device)
    tg, ref, flame = t["tg"], t["ref"], t["flame"]
    a = torch.nn.Linear(15, 8 * 512)
    opt = torch.optim.Adam(a.parameters(), lr=config.train.lr)
    mean = torch.from_numpy(np.asarray(frozen["g"]["buffers"]["mean_latent"])).reshape(1, 512).to(device)
    units = pose.shift_units(pose.load_ranges(pose.default_ranges_path("voxceleb")), pose.VOXCELEB)
    ua, ub = (torch.from_numpy(np.asarray(v, np.float32)).to(device) for v in (units.a, units.b))
    # DECA's fixed-box warp as one affine_grid (the normalised form of pose.deca.fixed_deca_theta's map)
    theta = torch.from_numpy(np.repeat(np.array([[[0.5, 0, 0], [0, 0.5, 0.16]]], np.float32), batch, 0)).to(device)
    cam8 = torch.tensor([[8.0, 0.0, 0.0]]).expand(batch, 3)

    def deca(img):
        x = (img.clamp(-1, 1) + 1) / (2 + 1e-5)
        x = F.grid_sample(x, F.affine_grid(theta, (batch, 3, 224, 224), align_corners=False), align_corners=False)
        return ref.e_flame(t["e_sd"], x)

    def geom(code):
        v, l2, _, _ = flame(code[:, :100], code[:, 150:200], code[:, 200:206])
        return ref.image_space(v, cam8), ref.image_space(l2, cam8)[:, :, :2]

    def p_units(code):  # pose axis-angle as a stand-in for the Euler angles: same cost class (a few flops)
        p = torch.cat([code[:, 200:203], code[:, 203:204], code[:, 150:161]], 1)
        return ua * p + ub

    def id_feats(img):
        return F.normalize(t["arc"](F.adaptive_avg_pool2d(img[:, :, 35:223, 32:220], 112)), dim=1)

    def step():
        with torch.no_grad():
            w_s = tg.style(torch.randn(batch, 512))[:, None].repeat(1, 14, 1)
            w_t = tg.style(torch.randn(batch, 512))[:, None].repeat(1, 14, 1)
            img_s = tg(w_s, truncation=0.7, truncation_latent=mean, input_is_latent=True)
            img_t = tg(w_t, truncation=0.7, truncation_latent=mean, input_is_latent=True)
            c_s, c_t = deca(img_s), deca(img_t)
            gt_v, gt_l = geom(torch.cat([c_s[:, :100], c_t[:, 100:]], 1))
            f_s = id_feats(img_s)
        shift = a(p_units(c_t) - p_units(c_s)).view(batch, 8, 512)
        w = torch.cat([w_s[:, :8] + shift, w_s[:, 8:]], 1)
        img_r = tg(w, truncation=0.7, truncation_latent=mean, input_is_latent=True)
        v, l2 = geom(deca(img_r))
        loss = (
            F.l1_loss(gt_v, v)
            + ref.pair_loss(gt_l, l2, losses.EYE_PAIRS)
            + ref.pair_loss(gt_l, l2, losses.MOUTH_PAIRS)
            + 10 * (1 - (id_feats(img_r) * f_s).sum(1)).mean()
            + 10 * t["lp"](img_r, img_s).sum() / batch
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def run(batches, iters: int) -> list[dict]:
    config, nets, frozen, t = build()
    rows = []
    for b in batches:
        if b % 2:
            raise SystemExit(f"--batches: {b} is odd; the 50 % single-attribute scheme needs even batches")
        j = jax_step(config, nets, frozen, b)
        t0 = time.perf_counter()
        jax.block_until_ready(j(jax.random.key(1)))
        compile_s = time.perf_counter() - t0
        ts = torch_step(config, frozen, t, b)
        keys = iter(jax.random.split(jax.random.key(2), 100))
        tj, tt = common.median_times([lambda j=j, keys=keys: jax.block_until_ready(j(next(keys))), ts], iters)
        rows.append(dict(batch=b, compile_s=compile_s, jax=b / tj, torch=b / tt))
        print(rows[-1], flush=True)
    return rows


def to_markdown(rows, iters) -> str:
    out = [
        *common.section_head("Training step (issue 6)", f"python bench/train_step.py --iters {iters}"),
        "One synthetic-stage step (2×G, 3×DECA, 2×FLAME, ArcFace, LPIPS, backward to A, Adam), full-size networks "
        f"with random weights, fp32, median of {iters} steps after one untimed round (JAX: after the compile), "
        "JAX and PyTorch interleaved. The 2 CPU cores are shared: expect ±30 %. No accelerator was lent to this "
        "session, so there are no GPU/TPU figures yet.",
        "",
        "| batch | JAX compile (s) | JAX samples/s | PyTorch samples/s | JAX / PyTorch |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(f"| {r['batch']} | {r['compile_s']:.1f} | {r['jax']:.3f} | {r['torch']:.3f} | "
                   f"{r['jax'] / r['torch']:.2f} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[2])
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    a = p.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")
    md = to_markdown(run(a.batches, a.iters), a.iters)
    print(md)
    if a.write:
        common.write_section(md)


if __name__ == "__main__":
    main()
