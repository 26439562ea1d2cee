"""The port's side of a training-step golden: its `Setup` and frozen variables from a spec (components, loss
weights, the 50 % switch, ψ and its centre, pose layout and units), the spec's small text contracts (samples, term
order, step) and the jitted pieces the replay of `train_steps` runs, one per (modules, constants) and shared by the
specs of one session."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.evaluation.parity.report import Row
from jaxreenact.face import deca_crop
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.training.losses import shifted_losses, step_targets
from jaxreenact.training.setup import Setup, deca_codes, geometry, synthetic_sources_from_z
from jaxreenact.weights import Networks

# The authors' loss_dict keys and the port's term names.
TERMS = {
    "loss_shape": "shape",
    "loss_eye": "eye",
    "loss_mouth": "mouth",
    "loss_identity": "identity",
    "loss_perceptual": "perceptual",
    "loss_pixel_wise": "pixel",
}
DECA_PARTS = {"pose": "pose", "exp": "exp", "shape": "shape", "cam": "cam"}  # deca_<role>_<part> -> code key


# ----------------------------------------------------------------------------------------------- helpers
def config_of(spec) -> Row:
    return dict((spec.get("upstream") or {}).get("config") or {})


def samples_of(entry, default) -> list[int]:
    """The samples an entry's upstream text names ("samples [0, 2]"), else `default`."""
    m = re.search(r"samples \[(\d+(?:\s*,\s*\d+)*)\]", (entry or {}).get("upstream", ""))
    return [int(t) for t in m.group(1).split(",")] if m else list(default)


def term_list(entry) -> list[str]:
    """The per-term gradient's term order ("for the terms ['loss_shape', ...]")."""
    m = re.search(r"terms \[([^\]]*)\]", (entry or {}).get("upstream", ""))
    return re.findall(r"'(\w+)'", m.group(1)) if m else []


def step_of(entry) -> int:
    m = re.search(r"step (\d+)", (entry or {}).get("upstream", ""))
    return int(m.group(1)) if m else 0


def steps_view(stacked: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per-step results [S, ...] as the expected array holds them: all steps, or step 0 only (one dim fewer)."""
    return stacked[0] if want.ndim == stacked.ndim - 1 else stacked


def a_params_torch(weight, bias) -> Row:
    """A's parameters from the PyTorch layout (`linear.weight` [out, in], `linear.bias` [out])."""
    return {"params": {"linear": {"weight": jnp.asarray(np.asarray(weight).T), "bias": jnp.asarray(bias)}}}


def make_setup(spec, inputs, networks):
    """The port's `Setup` and frozen variables for a spec: its components, loss weights, 50 % switch, ψ and the
    truncation centre (`inputs.truncation_latent`, stored as the generator's `mean_latent`), pose layout and units."""
    cfg = config_of(spec)
    g, gv = networks.get("generator")
    deca, dv = networks.get("deca")
    arc, av = networks.get("id_loss")
    lp, lv = networks.get("lpips")
    a, a_vars = networks.get("A")
    if "truncation_latent" in inputs:
        gv = {
            **gv,
            "buffers": {**gv["buffers"], "mean_latent": jnp.asarray(inputs["truncation_latent"]).reshape(1, -1)},
        }
    psi = float(inputs["truncation"]) if "truncation" in inputs else float(cfg.get("truncation", 0.7))
    dataset = cfg.get("dataset_type", "voxceleb")
    dc = spec.get("direction_coefficients") or {}
    layout = pose.LAYOUTS[dataset]
    if "shift_scale" in cfg or "shift_scale" in dc:
        layout = dataclasses.replace(layout, shift_scale=float(cfg.get("shift_scale", dc.get("shift_scale"))))
    ranges = inputs.get(f"ranges_{dataset}")
    if ranges is None:
        units = units_from_coefficients(dc, layout)
    else:
        units = pose.shift_units(np.asarray(ranges, np.float64), layout)
    lam = {
        "identity": float(cfg.get("lambda_identity", 10.0)),
        "perceptual": float(cfg.get("lambda_perceptual", 10.0)),
        "shape": float(cfg.get("lambda_shape", 1.0)),
        "eye": float(cfg.get("lambda_eye_shape", 1.0)),
        "mouth": float(cfg.get("lambda_mouth_shape", 1.0)),
        "pixel": float(cfg.get("lambda_pixel_wise", 1.0)),
    }
    if lam["shape"] <= 0:  # upstream computes eye and mouth inside the shape loss's branch
        lam["shape"] = lam["eye"] = lam["mouth"] = 0.0
    s = Setup(
        nets=Networks(g=g, deca=deca, arcface=arc, lpips=lp, A=a),
        units=units,
        layout=layout,
        ranges=None if ranges is None else np.asarray(ranges, np.float64),
        truncation=psi,
        lam=lam,
        disentanglement_50=bool(cfg.get("disentanglement_50", True)),
        theta=deca_lib.fixed_deca_theta(1),
        a=a,
        deca_box="fixed",
    )
    return s, {"g": gv, "deca": dv, "arcface": av, "lpips": lv}, a_vars, cfg


def units_from_coefficients(dc: dict, layout) -> pose.ShiftUnits:
    """Shift units from a spec's `direction_coefficients` (the lines upstream fits), for specs without ranges."""
    d = layout.num_directions
    a, b, is_angle = np.zeros(d), np.zeros(d), np.zeros(d, bool)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if idx != -1:
            a[idx], is_angle[idx] = layout.shift_scale / float(dc.get("angle_scales", layout.angle_scales)[k]), True
    a[layout.jaw], b[layout.jaw] = float(dc["a_jaw"]), float(dc["b_jaw"])
    for i, direction in enumerate(dc.get("A_direction", range(layout.count_pose, d))):
        if int(dc.get("exp_component", range(d))[i]) != i:
            raise ValueError("direction_coefficients: the port maps direction count_pose + i to expression i")
        a[int(direction)], b[int(direction)] = float(dc["a_exp"][i]), float(dc["b_exp"][i])
    return pose.ShiftUnits(a, b, is_angle)


# ----------------------------------------------------------------------------------------------- the replay
_JITS: dict[tuple, tuple] = {}  # the jitted pieces, shared by specs with the same modules and constants


def jitted(s: Setup, paired: bool, name: str, build):
    """One jitted piece per (modules, ψ, layout, units, 50 % switch, paired): specs of one session share them (the
    loss weights are a runtime input of the loss stage). The cache holds the Setup, so an id is never reused."""
    key = (name, paired, s.truncation, s.layout, s.disentanglement_50, s.units.a.tobytes(), s.units.b.tobytes(),
           *(id(m) for m in (s.nets.g, s.nets.deca, s.nets.arcface, s.nets.lpips, s.a)))  # fmt: skip
    if key not in _JITS:
        _JITS[key] = (jax.jit(build(s, paired)), s)
    return _JITS[key][0]


def build_sources(s, paired):
    return lambda fz, z: synthetic_sources_from_z(s, fz, z)


def build_encode(s, paired):
    def encode(fz, images, theta):
        codes = deca_codes(s, fz, images, theta)
        return deca_crop.deca_input(images, theta), codes, deca_lib.angles_of(codes)

    return encode


def build_targets(s, paired):
    return lambda cs, ct, a_s, a_t, draws: step_targets(s, cs, ct, a_s, a_t, draws, paired)


def build_shift(s, paired):
    return s.a.apply


def build_geometry(s, paired):
    return lambda fz, shape, exp, pose_: geometry(s, fz, shape, exp, pose_)


def build_losses(s, paired):
    """The loss stage: `shifted_losses` forward once, then one pullback per cotangent row, for the first n rows."""
    names = term_names(paired)

    def losses(fz, lam, shift, w_s, gt, id_ref, pixel_ref, theta_r, cot, n):
        s_l = dataclasses.replace(s, lam=lam)

        def f(sh):
            total, terms, aux = shifted_losses(s_l, fz, sh, w_s, gt, id_ref, pixel_ref, paired, theta_r)
            return jnp.stack([lam[k] * terms[k] for k in names]), (total, aux["image"])

        vec, pull, (total, img) = jax.vjp(f, shift, has_aux=True)
        zeros = jnp.zeros((cot.shape[0], *shift.shape), shift.dtype)
        grads = jax.lax.fori_loop(0, n, lambda i, g: g.at[i].set(pull(cot[i])[0]), zeros)
        return total, vec, img, grads

    return losses


def term_names(paired: bool) -> list[str]:
    return [t for t in TERMS.values() if t != "pixel" or paired]
