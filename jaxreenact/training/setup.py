"""What every training stage shares: the static `Setup` (modules, Δp units, loss weights, the DECA crop), A's
initialisation, and DECA as the step reads it (paper Sec. 3, METHOD.md 3.3, 4).

Everything here is a pure function of module definitions (static) and variables (arrays), so one jitted step
holds it all: frozen G, DECA, ArcFace and LPIPS, and the trainable A.

    frozen = {"g": G vars, "deca": DECA vars, "arcface": ..., "lpips": ...}
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.face import deca_box
from jaxreenact.latent import directions
from jaxreenact.latent import render as render_lib
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.weights import Networks, load_A

DECA_BOXES = ("fixed", "landmarks")


@dataclasses.dataclass(frozen=True)
class Setup:
    """Static pieces of a stage: modules, units of Δp, loss weights."""

    nets: Networks
    units: pose.ShiftUnits
    layout: pose.PoseLayout
    ranges: np.ndarray
    truncation: float
    lam: dict
    disentanglement_50: bool
    theta: np.ndarray  # [1, 3, 3] fixed DECA crop (broadcast over the batch; the fallback of "landmarks")
    a: directions.DirectionMatrix = directions.DirectionMatrix()
    deca_box: str = "fixed"  # "fixed" | "landmarks" (S3FD + FAN on every image, jaxreenact.face.deca_box)

    def __hash__(self):
        return id(self)


def weight_names(config) -> tuple[str, ...]:
    """The registry networks a training config needs."""
    names = ("generator", "deca", "arcface", "lpips")
    if config.model.deca_box == "landmarks":
        names += ("sfd", "fan")
    return names


DTYPES = ("float32", "bfloat16")


def make_setup(config, nets: Networks) -> Setup:
    dtype = config.get("dtype", "float32")
    if dtype not in DTYPES:
        raise UserError(f"config.dtype={dtype!r}: use one of {', '.join(DTYPES)}")
    nets = with_dtype(nets, dtype)
    ranges_path = config.ranges_file or pose.default_ranges_path(config.dataset_type)
    ranges = pose.load_ranges(ranges_path)
    if config.dataset_type not in pose.LAYOUTS:
        raise UserError(f"config.dataset_type={config.dataset_type!r}: use one of {', '.join(pose.LAYOUTS)}")
    layout = dataclasses.replace(pose.LAYOUTS[config.dataset_type], shift_scale=float(config.model.shift_scale))
    if config.model.deca_box not in DECA_BOXES:
        raise UserError(f"config.model.deca_box={config.model.deca_box!r}: use one of {', '.join(DECA_BOXES)}")
    if config.model.deca_box == "landmarks" and (nets.sfd is None or nets.fan is None):
        raise UserError('config.model.deca_box="landmarks" needs the S3FD and FAN networks (config.weights.sfd/fan)')
    lam = loss_weights(config.loss)
    return Setup(
        nets=nets,
        units=pose.shift_units(ranges, layout),
        layout=layout,
        ranges=ranges,
        truncation=float(config.model.truncation),
        lam=lam,
        disentanglement_50=bool(config.loss.disentanglement_50),
        theta=deca_lib.fixed_deca_theta(1, config.model.deca_box_size, tuple(config.model.deca_box_center)),
        a=a_module(config),
        deca_box=config.model.deca_box,
    )


FROZEN = ("g", "deca", "arcface", "lpips", "e4e", "sfd", "fan")  # the networks `config.dtype` reaches


def with_dtype(nets: Networks, dtype: str) -> Networks:
    """Every frozen network of `nets` computing in `dtype` (float32 | bfloat16). Parameters stay float32; each
    network accumulates its convolutions and matmuls in float32 and returns float32 (the image, DECA's codes, the
    embeddings, LPIPS's distances), so the losses' sums run in float32."""
    if dtype == "float32":
        return nets
    return dataclasses.replace(
        nets, **{k: getattr(nets, k).clone(dtype=dtype) for k in FROZEN if getattr(nets, k) is not None}
    )


def loss_weights(loss_cfg) -> dict[str, float]:
    """The weight of each loss term. As upstream (`calculate_losses`), the eye and mouth losses live inside the shape
    loss's `lambda_shape > 0` branch: a shape weight <= 0 turns all three off."""
    lam = {k: float(getattr(loss_cfg, k)) for k in ("identity", "perceptual", "shape", "eye", "mouth", "pixel")}
    lam["w_reg"] = float(loss_cfg.get("w_reg", 0.0))
    if lam["shape"] <= 0:
        lam["shape"] = lam["eye"] = lam["mouth"] = 0.0
    return lam


def a_module(config) -> directions.DirectionMatrix:
    return directions.DirectionMatrix(
        config.model.learned_directions, config.model.num_layers_shift, shift_scale=float(config.model.shift_scale)
    )


def init_params_fn(a: directions.DirectionMatrix):
    return lambda key: a.init(key, jnp.zeros((1, a.input_dim), jnp.float32))


def load_init_params(path: str | os.PathLike):
    """A's parameters from a converted A checkpoint or a previous stage's workdir (its latest checkpoint)."""
    return load_A(path)[1]


def deca_codes(s: Setup, frozen, images, theta=None):
    """DECA codes of generator-range images [B,256,256,3]. theta: the crop matrices [B,3,3] (a replay's recorded
    boxes); None: the crop box as `s.deca_box` says."""
    if theta is None:
        return deca_codes_boxed(s.nets, frozen, images, s.deca_box, s.theta)
    return deca_lib.encode(s.nets.deca, frozen["deca"], images, theta)


def deca_codes_boxed(nets: Networks, frozen, images, box: str, fixed_theta):
    """DECA codes of generator-range images with training's crop rule `box` ("fixed": `fixed_theta` [1 or B, 3, 3];
    "landmarks": S3FD + FAN, `fixed_theta` where no face is found). The one function training, validation and the
    ranges statistics (`jaxreenact.training.ranges`) read DECA through."""
    theta = jnp.broadcast_to(jnp.asarray(fixed_theta), (images.shape[0], 3, 3))
    if box == "landmarks":
        theta, _, _ = deca_box.landmark_theta((nets.sfd, frozen["sfd"]), (nets.fan, frozen["fan"]), images, theta)
    return deca_lib.encode(nets.deca, frozen["deca"], images, theta)


def geometry(s: Setup, frozen, shape, exp, pose_):
    return deca_lib.geometry(s.nets.deca, frozen["deca"], shape, exp, pose_)


def render(s: Setup, frozen, w_plus):
    return render_lib.render(s.nets.g, frozen["g"], w_plus, s.truncation)


def reenact_from_codes(s: Setup, params, frozen, w_plus, codes_s, codes_t):
    """Full-Δp reenactment: G(trunc(w + A·Δp)) with Δp = units(p_t) − units(p_s)."""
    p_s = pose.params_to_p(codes_s, s.layout)
    p_t = pose.params_to_p(codes_t, s.layout)
    dp = pose.delta_p(p_s, p_t, s.units, s.layout)
    shift = s.a.apply(params, dp)
    return render(s, frozen, directions.shift_wplus(w_plus, shift))


def synthetic_sources_from_z(s: Setup, frozen, z):
    """z [B, 512] → untruncated W+ and its truncated image (`G(z, ψ)`), both [B, ...] (the image without gradient)."""
    w = render_lib.sample_wplus(s.nets.g, frozen["g"], z)
    return w, jax.lax.stop_gradient(render(s, frozen, w))


def sample_z(key, batch: int):
    """z ~ N(0, I) [B, 512] (the authors' `make_noise`)."""
    return jax.random.normal(key, (batch, 512), jnp.float32)


def synthetic_sources(s: Setup, frozen, key, batch: int):
    """`synthetic_sources_from_z` of z ~ N(0, I) drawn from `key`."""
    return synthetic_sources_from_z(s, frozen, sample_z(key, batch))
