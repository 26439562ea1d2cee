"""The pipeline kinds: the per-frame reenactment (`reenact_frames`) and the generator tuning (`generator_tuning`);
the training steps (`train_step_*`) are registered as not yet checked.

Stage by stage, as the specs' `comparison` says: each stage is fed the upstream values of the previous one from
`expected.npz`, so an error is measured where it is made, not compounded:
* reenact_frames: DECA (crop matrix from the recorded box, crop, codes, angles) on the given crops; Δp from the
  *expected* DECA angles and codes (`reenact_core.motion_delta`, the authors' float64 `make_shift`); shift = A of
  the *expected* Δp; the reenacted frames from the source W+ and the *expected* shift
  (`reenact_core.render_shifted`, ψ and the centre `truncation_latent` from the inputs).
* generator_tuning: `tuning.tune_trace` runs the tuning itself (nothing upstream records the parameters of the
  intermediate steps), with the tuner's own truncation centre `inputs.truncation_latent`, the steps the spec's
  per-step arrays have, and its learning rate / loss weights.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxreenact.common.errors import UserError
from jaxreenact.evaluation.parity import train_steps
from jaxreenact.evaluation.parity.registry import register
from jaxreenact.evaluation.parity.report import Row, Rows, box_kind, compare, failed, image_input, nchw
from jaxreenact.face import deca_crop
from jaxreenact.latent import render, tuning
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import motion
from jaxreenact.pose import params as pose


# ----------------------------------------------------------------------------------------------- reenact_frames
def pose_layout(spec):
    """The pose layout of a spec's `direction_coefficients` (VoxCeleb: 4 pose directions; FFHQ: 3)."""
    dc = spec.get("direction_coefficients") or {}
    layout = pose.VOXCELEB if int(dc.get("count_pose", 4)) == 4 else pose.FFHQ
    n = int(dc.get("count_pose", layout.count_pose)) + int(dc.get("num_expressions", layout.num_expressions))
    if n != layout.num_directions:
        raise UserError(f"direction_coefficients: {n} directions, the port's layouts have 15 (VoxCeleb) or 15 (FFHQ)")
    return layout


@register("reenact_frames")
def reenact_frames(spec, inputs, expected, nets):
    rows = Rows(spec, expected)
    layout = pose_layout(spec)
    deca, dv = nets.get("deca")

    @jax.jit
    def encode(v, x, theta):
        codes = deca_lib.encode(deca, v, x, theta)
        return deca_crop.deca_input(x, theta), codes, deca_lib.angles_of(codes)

    kind = box_kind(spec)
    for role, img_key in (("source", "source_u8"), ("driving", "driving_u8")):
        if img_key not in inputs or f"boxes_{role}" not in inputs:
            continue
        x = jnp.asarray(image_input(inputs[img_key]))
        theta = deca_crop.crop_matrix_from_box(np.asarray(inputs[f"boxes_{role}"], np.float64), kind=kind)
        rows.add(f"deca_{role}_theta", theta)
        crop, codes, angles = encode(dv, x, jnp.asarray(theta))
        for k in ("pose", "exp", "shape", "cam"):
            rows.add(f"deca_{role}_{k}", codes[k])
        rows.add(f"deca_{role}_angles", angles)
        for name in expected:
            m = re.fullmatch(rf"deca_{role}_crop_sub(\d+)", name)
            if m:
                k = int(m.group(1))
                rows.add(name, nchw(crop)[..., ::k, ::k])

    # Δp from the expected DECA outputs (make_shift: driving − source, float64 on the host).
    need = ("deca_source_angles", "deca_source_pose", "deca_source_exp", "deca_driving_angles", "deca_driving_pose",
            "deca_driving_exp")  # fmt: skip
    ranges = next((inputs[k] for k in sorted(inputs) if k.startswith("ranges")), None)
    if rows.want("shift_vector") and all(k in expected for k in need) and ranges is not None:
        units = pose.shift_units(np.asarray(ranges, np.float64), layout)
        p_src = np.asarray(pose.p_vector(*(jnp.asarray(expected[f"deca_source_{k}"]) for k in ("angles", "pose", "exp")),
                                         layout))  # fmt: skip
        p_drv = np.asarray(pose.p_vector(*(jnp.asarray(expected[f"deca_driving_{k}"]) for k in ("angles", "pose", "exp")),
                                         layout))  # fmt: skip
        dp = motion.motion_delta(p_src[0], p_drv, units, layout, motion.MotionOptions("absolute"))
        rows.add("shift_vector", dp)
    if rows.want("shift") and "shift_vector" in expected:
        a, av = nets.get("A")
        rows.add("shift", jax.jit(a.apply)(av, expected["shift_vector"]))
    if (rows.want("reenacted") or rows.want("reenacted_latents")) and "shift" in expected:
        g, gv = nets.get("generator")
        psi = np.float32(inputs["truncation"]) if "truncation" in inputs else np.float32(render.TRUNCATION)
        img, lat = jax.jit(lambda v, w, s, p, t: render.shifted_image(g, v, w, s, p, t))(
            gv, inputs["wplus"], expected["shift"], psi, inputs.get("truncation_latent")
        )
        rows.add("reenacted", nchw(render.upstream_size(img)))  # generate_image's size
        rows.add("reenacted_latents", lat)
    return rows.finish()


# ----------------------------------------------------------------------------------------------- generator_tuning
def port_path(torch_name: str) -> tuple[str, ...]:
    """'convs.11.conv.modulation.weight' -> ('convs_11', 'conv', 'modulation', 'weight') (the port's names)."""
    out = []
    for part in torch_name.split("."):
        if part.isdigit() and out:
            out[-1] = f"{out[-1]}_{part}"
        else:
            out.append(part)
    return tuple(out)


def torch_view(torch_name: str, value: np.ndarray, shape) -> np.ndarray:
    """A tuned generator leaf in the PyTorch layout: modulated conv weights HWIO -> [1, out, in, k, k], dense
    weights [in, out] -> [out, in]; the rest reshaped."""
    value = np.asarray(value)
    if torch_name.endswith("conv.weight") and value.ndim == 4:
        value = np.transpose(value, (3, 2, 0, 1))[None]
    elif torch_name.endswith("modulation.weight") and value.ndim == 2:
        value = value.T
    return value.reshape(shape)


def _norm(name: str) -> str:
    return re.sub(r"[._]", "", name)


def delta_stats(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, np.float64).ravel()
    return np.array([d.sum(), np.abs(d).sum(), np.sqrt((d * d).sum()), np.abs(d).max(initial=0.0)])


def stats_row(name: str, got: np.ndarray, want: np.ndarray, rtol: float = 1e-3, atol: float = 0.0) -> Row:
    """`tuned_delta_stats` [T, 4] ([sum, sum |.|, L2, max |.|] per tensor): columns 1-3 within rtol, column 0 within
    rtol × column 1 (a sum of signed steps can be ~0); with `atol` (the spec entry's `tol_max_abs`), a value within
    atol also passes, as in `compare`'s rel measure (a one-entry tensor, a noise weight, is then graded as its own
    delta row is). Value: the largest error in those units."""
    if got.shape != want.shape:
        return failed(name, f"shape {list(got.shape)} != expected {list(want.shape)}")
    w = np.asarray(want, np.float64)
    floor = max(atol / rtol, 1e-30)
    rel = np.abs(got[:, 1:] - w[:, 1:]) / np.maximum(np.abs(w[:, 1:]), floor)
    col0 = np.abs(got[:, 0] - w[:, 0]) / np.maximum(np.abs(w[:, 1]), floor)
    v = float(max(rel.max(initial=0), col0.max(initial=0)))
    return Row(name, "stats", v, rtol, v <= rtol, "cols 1-3 rel; col 0 rel to col 1")


def tuning_row(name: str, got, spec, expected) -> Row:
    """The row of one `generator_tuning` array by its spec entry: `tuned_delta_stats` by `stats_row`, the rest by
    `compare`; a failing tuned delta says how many of its entries miss (float noise in a few entries vs a bug in all
    of them). Shared with tests/tuning_floor.py, which grades float32 and float64 replays of the authors' tuning by
    the same rules."""
    entry = spec["expected"].get(name, {})
    if name == "tuned_delta_stats":
        return stats_row(name, np.asarray(got, np.float64), expected[name], atol=float(entry.get("tol_max_abs", 0.0)))
    tol = entry.get("tol_max_abs")
    row = compare(name, got, expected[name], entry)
    if name.startswith("tuned_delta_") and tol is not None and not row.ok and np.shape(got) == np.shape(expected[name]):
        beyond = int((np.abs(np.asarray(got, np.float64) - expected[name]) > float(tol)).sum())
        row.note = (row.note + "; " if row.note else "") + f"{beyond} of {np.size(got)} entries beyond {tol:g}"
    return row


@register("generator_tuning")
def generator_tuning(spec, inputs, expected, nets):
    rows = Rows(spec, expected)
    g, gv = nets.get("generator")
    lp, lv = nets.get("lpips")
    cfg = (spec.get("upstream") or {}).get("config") or {}
    steps = int(np.shape(expected["loss"])[0]) if "loss" in expected else 0
    m = re.search(r"opt_steps=(\d+)", (spec.get("upstream") or {}).get("call", ""))
    if m and "loss" not in expected:
        steps = int(m.group(1))
    psi = float(inputs["truncation"]) if "truncation" in inputs else float(cfg.get("truncation", tuning.TRUNCATION))
    x = image_input(inputs["source_u8"])
    tr = tuning.tune_trace(
        g, gv, lp, lv, inputs["wplus"], x, steps=steps, lr=float(cfg.get("lr", tuning.LR)), truncation=psi,
        truncation_latent=inputs.get("truncation_latent"), l2_lambda=float(cfg.get("pt_l2_lambda", tuning.L2_LAMBDA)),
        lpips_lambda=float(cfg.get("pt_lpips_lambda", tuning.LPIPS_LAMBDA)),
    )  # fmt: skip
    got = {"loss": tr.loss, "l2_loss": tr.l2_loss, "lpips_loss": tr.lpips_loss}  # the port's arrays, golden names
    if len(tr.images):
        got["img_step0"] = nchw(tr.images[:1])
        ims = tr.images.reshape(len(tr.images), -1).astype(np.float64)
        got["img_per_step_mean_std"] = np.stack([ims.mean(1), ims.std(1, ddof=1)], 1)  # torch .std(): unbiased
    if "img_tuned" in expected:
        img = jax.jit(lambda v, w, p, t: g.apply(v, w, truncation=p, truncation_latent=t, input_is_latent=True))(
            tr.variables, inputs["wplus"], np.float32(psi), inputs.get("truncation_latent")
        )
        got["img_tuned"] = nchw(img)

    before = traverse_util.flatten_dict(gv["params"])
    after = traverse_util.flatten_dict(tr.variables["params"])
    tuned = [(n, tuple(s)) for n, s in spec.get("tuned_parameters", [])]
    by_norm = {_norm(n): (n, s) for n, s in tuned}

    def delta(n, s):
        p = port_path(n)
        return torch_view(n, np.asarray(after[p], np.float64) - np.asarray(before[p], np.float64), s)

    def grad0(n, s):
        return torch_view(n, tr.grads0[port_path(n)], s)

    if tuned:
        got["tuned_delta_stats"] = np.stack([delta_stats(delta(n, s)) for n, s in tuned])
        noise = [(n, s) for n, s in tuned if n.endswith("noise.weight")]
        if noise and steps:
            got["grad_step0_noise_weights"] = np.concatenate([grad0(n, s).ravel() for n, s in noise])
    for name in expected:
        for prefix, fn in (("tuned_delta_", delta), ("grad_step0_", grad0)):
            if name.startswith(prefix) and _norm(name[len(prefix) :]) in by_norm and (prefix != "grad_step0_" or steps):
                got[name] = fn(*by_norm[_norm(name[len(prefix) :])])
    for name, value in got.items():
        if name in expected:
            rows.add(name, None, tuning_row(name, value, spec, expected))
    return rows.finish()


# ----------------------------------------------------------------------------------------------- train steps
for _kind, _run in train_steps.KINDS.items():
    register(_kind)(_run)
