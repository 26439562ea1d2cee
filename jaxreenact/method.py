"""The method's forward pieces and the training stages' losses (paper Sec. 3, METHOD.md 1.4, 3, 4).

Everything here is a pure function of module definitions (static) and variables (arrays), so one jitted step
holds it all: frozen G, DECA, ArcFace and LPIPS, and the trainable A.

    frozen = {"g": G vars, "deca": DECA vars, "arcface": ..., "lpips": ...}
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact import directions
from jaxreenact.errors import UserError
from jaxreenact.evaluation import metrics
from jaxreenact.face import deca_crop, pose
from jaxreenact.face.rotations import axis_to_euler_deg
from jaxreenact.losses import shape_losses
from jaxreenact.models import arcface as arcface_lib
from jaxreenact.models import lpips as lpips_lib
from jaxreenact.nn.torch_layers import adaptive_avg_pool2d, interpolate_bilinear

IMAGE_SIZE = 256

# What `config.weights.<name>` must hold, and the converter command that makes it.
CONVERT = {
    "generator": "python -m converters.stylegan2 stylegan2-voxceleb.pt {dst}",
    "deca": "python -m converters.deca deca_model.tar generic_model.pkl landmark_embedding.npy {dst}",
    "arcface": "python -m converters.arcface model_ir_se50.pth {dst}",
    "lpips": "python -m converters.lpips alexnet-owt-7be5be79.pth alex.pth {dst}",
    "e4e": "python -m converters.e4e e4e-voxceleb.pt {dst}",
    "sfd": "python -m converters.sfd s3fd-619a316812.pth {dst}",
    "fan": "python -m converters.fan 2DFAN4-11f355bf06.pth.tar {dst}",
}
DECA_BOXES = ("fixed", "landmarks")


@dataclasses.dataclass(frozen=True)
class Networks:
    """The frozen modules (hashable, static under jit); their variables travel separately."""

    g: Any
    deca: Any
    arcface: Any
    lpips: Any
    e4e: Any = None
    sfd: Any = None  # S3FD and 2D-FAN: only for config.model.deca_box = "landmarks"
    fan: Any = None


def check_weights(config, names) -> None:
    """Fail before any work with one message listing every missing converted checkpoint and its command."""
    missing = []
    for name in names:
        path = getattr(config.weights, name)
        if not path or not pathlib.Path(path).exists():
            missing.append(f"  config.weights.{name} = {path!r}: make it with `{CONVERT[name].format(dst=path)}`")
    if missing:
        raise UserError("missing converted weights (or run a ':tiny' config, which needs none):\n" + "\n".join(missing))


def load_networks(config, names=("generator", "deca", "arcface", "lpips")) -> tuple[Networks, dict]:
    """The frozen networks of `config`: converted checkpoints, or small random ones when `config.tiny`. With
    `config.model.deca_box = "landmarks"`, S3FD and 2D-FAN too."""
    landmarks = config.model.deca_box == "landmarks"
    if config.tiny:
        from jaxreenact import tiny

        nets, frozen = tiny.networks(config.seed, with_e4e="e4e" in names)
        if landmarks:
            (sfd, sfd_vars), (fan, fan_vars) = tiny.face_locator_networks(config.seed)
            nets = dataclasses.replace(nets, sfd=sfd, fan=fan)
            frozen = {**frozen, "sfd": sfd_vars, "fan": fan_vars}
        return nets, frozen
    if landmarks:
        names = (*names, "sfd", "fan")
    from jaxreenact import weights

    check_weights(config, names)
    mods, frozen = {}, {}
    key = {"generator": "g", "deca": "deca", "arcface": "arcface", "lpips": "lpips", "e4e": "e4e", "sfd": "sfd",
           "fan": "fan"}  # fmt: skip
    for name in names:
        m, v = weights.load(getattr(config.weights, name))
        mods[key[name]], frozen[key[name]] = m, v
    return Networks(**mods), frozen


# ----------------------------------------------------------------------------------------------- forward pieces
def to_256(images):
    """The authors' `generate_image` pools anything larger than 256 down to 256; tiny generators are upsampled."""
    size = images.shape[1]
    if size > IMAGE_SIZE:
        return adaptive_avg_pool2d(images, IMAGE_SIZE)
    if size < IMAGE_SIZE:
        return interpolate_bilinear(images, (IMAGE_SIZE, IMAGE_SIZE), align_corners=False)
    return images


def mapping(nets: Networks, frozen, z):
    """z [B, 512] → untruncated W [B, 512] (`G.get_latent`)."""
    return nets.g.apply(frozen["g"], z, method="mapping")


def render(nets: Networks, frozen, w_plus, truncation: float):
    """G(W+) with truncation toward the stored mean latent (applied to W+ too, as upstream) → [B,256,256,3]."""
    img = nets.g.apply(frozen["g"], w_plus, truncation=truncation, input_is_latent=True)
    return to_256(img)


# The landmark box of a face in the authors' 256x256 framing (METHOD.md 7.1: the crop side is twice the landmark
# extent and the face centre sits size/6 below the crop centre): side 128 px, centre (128, 128 + 128/6).
DECA_BOX_SIZE = 128.0
DECA_BOX_CENTER = (128.0, 149.0)


def fixed_deca_theta(batch: int, size: float = DECA_BOX_SIZE, center=DECA_BOX_CENTER) -> np.ndarray:
    """DECA crop matrices [B,3,3] for a fixed 68-landmark box of side `size` px centred at `center` (x, y)."""
    cx, cy = center
    h = size / 2
    box = np.array([[cx - h, cy - h], [cx + h, cy + h]], np.float64)
    return np.broadcast_to(deca_crop.crop_matrix(box), (batch, 3, 3)).copy()


def deca_encode(nets: Networks, frozen, images_256, theta):
    """Generator-range images → DECA codes (the authors' clamp, [0,255], kornia warp, /255, E_flame)."""
    return nets.deca.apply(frozen["deca"], deca_crop.deca_input(images_256, theta))


def angles_of(codes):
    """DECA (yaw, pitch, roll) in degrees [B, 3] of the global pose."""
    return axis_to_euler_deg(codes["pose"][:, :3])


def geometry(nets: Networks, frozen, shape, exp, pose_):
    """Loss-space geometry (trans_verts, landmarks2d in 224-px units) with the fixed camera [8, 0, 0]."""
    codes = {"shape": shape, "exp": exp, "pose": pose_}
    return nets.deca.apply(frozen["deca"], codes, fixed_cam=True, method="decode")


# ----------------------------------------------------------------------------------------------- the stages
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


def make_setup(config, nets: Networks) -> Setup:
    ranges_path = config.ranges_file or pose.default_ranges_path(config.dataset_type)
    ranges = pose.load_ranges(ranges_path)
    layout = pose.LAYOUTS[config.dataset_type]
    if config.model.deca_box not in DECA_BOXES:
        raise UserError(f"config.model.deca_box={config.model.deca_box!r}: use one of {', '.join(DECA_BOXES)}")
    if config.model.deca_box == "landmarks" and (nets.sfd is None or nets.fan is None):
        raise UserError('config.model.deca_box="landmarks" needs the S3FD and FAN networks (config.weights.sfd/fan)')
    lam = {k: float(getattr(config.loss, k)) for k in ("identity", "perceptual", "shape", "eye", "mouth", "pixel")}
    return Setup(
        nets=nets,
        units=pose.shift_units(ranges, layout),
        layout=layout,
        ranges=ranges,
        truncation=float(config.model.truncation),
        lam=lam,
        disentanglement_50=bool(config.loss.disentanglement_50),
        theta=fixed_deca_theta(1, config.model.deca_box_size, tuple(config.model.deca_box_center)),
        a=a_module(config),
        deca_box=config.model.deca_box,
    )


def a_module(config) -> directions.DirectionMatrix:
    return directions.DirectionMatrix(config.model.learned_directions, config.model.num_layers_shift)


def _deca(s: Setup, frozen, images):
    theta = jnp.broadcast_to(jnp.asarray(s.theta), (images.shape[0], 3, 3))
    if s.deca_box == "landmarks":
        from jaxreenact.face import deca_box

        theta, _, _ = deca_box.landmark_theta((s.nets.sfd, frozen["sfd"]), (s.nets.fan, frozen["fan"]), images, theta)
    return deca_encode(s.nets, frozen, images, theta)


def reenact_from_codes(s: Setup, params, frozen, w_plus, codes_s, codes_t):
    """Full-Δp reenactment: G(trunc(w + A·Δp)) with Δp = units(p_t) − units(p_s)."""
    p_s = pose.params_to_p(codes_s, s.layout)
    p_t = pose.params_to_p(codes_t, s.layout)
    dp = pose.delta_p(p_s, p_t, s.units, s.layout)
    shift = s.a.apply(params, dp)
    return render(s.nets, frozen, directions.shift_wplus(w_plus, shift), s.truncation)


def reenactment_losses(s: Setup, params, frozen, key, w_s, img_s, img_t, id_ref, pixel_ref=None, paired=False):
    """One batch's losses. w_s: source W+ (untruncated); img_s/img_t: source/target images (no gradient);
    id_ref: the image the identity and perceptual losses compare with (source, or the target in paired mode)."""
    sg = jax.lax.stop_gradient
    codes_s = jax.tree.map(sg, _deca(s, frozen, img_s))
    codes_t = jax.tree.map(sg, _deca(s, frozen, img_t))
    p_s = pose.params_to_p(codes_s, s.layout)
    p_t = pose.params_to_p(codes_t, s.layout)
    if s.disentanglement_50 and not paired:
        dp, idx = pose.delta_p_50(key, p_s, p_t, s.units, s.layout)
        gt = pose.gt_params_50(codes_s, codes_t, angles_of(codes_s), dp, idx, s.units, s.layout)
    else:
        dp = pose.delta_p(p_s, p_t, s.units, s.layout)
        gt = {"pose": codes_t["pose"], "exp": codes_t["exp"]}
    shift = s.a.apply(params, dp)
    img_r = render(s.nets, frozen, directions.shift_wplus(w_s, shift), s.truncation)
    codes_r = _deca(s, frozen, img_r)
    # Identity comes from the source (from the target in paired mode: same person, METHOD.md 3.4).
    gt_shape = codes_t["shape"] if paired else codes_s["shape"]
    geom_gt = jax.tree.map(sg, geometry(s.nets, frozen, gt_shape, gt["exp"], gt["pose"]))
    geom_r = geometry(s.nets, frozen, codes_r["shape"], codes_r["exp"], codes_r["pose"])
    terms = shape_losses(geom_gt, geom_r)
    terms["identity"] = arcface_lib.identity_loss(frozen["arcface"], img_r, id_ref, module=s.nets.arcface)
    terms["perceptual"] = lpips_lib.lpips_loss(frozen["lpips"], img_r, id_ref, range_255=paired, module=s.nets.lpips)
    if paired:
        # The authors' pixel L1 is on [0, 255]-converted images (an upstream quirk, kept: METHOD.md 4.2).
        terms["pixel"] = jnp.mean(jnp.abs(lpips_lib.range_1_to_255(img_r) - lpips_lib.range_1_to_255(pixel_ref)))
    total = sum(s.lam[k] * v for k, v in terms.items())
    return total, {f"loss/{k}": v for k, v in terms.items()}


def synthetic_sources(s: Setup, frozen, key, batch: int):
    """z ~ N(0, I) → untruncated W+ and its truncated image (`G(z, ψ)`), both [B, ...]."""
    z = jax.random.normal(key, (batch, 512), jnp.float32)
    w = directions.repeat_w(mapping(s.nets, frozen, z), s.nets.g.n_latent)
    return w, jax.lax.stop_gradient(render(s.nets, frozen, w, s.truncation))


def synthetic_loss(s: Setup, batch: int):
    def loss(params, frozen, key, data):
        del data
        k_s, k_t, k_attr = jax.random.split(key, 3)
        w_s, img_s = synthetic_sources(s, frozen, k_s, batch)
        _, img_t = synthetic_sources(s, frozen, k_t, batch)
        return reenactment_losses(s, params, frozen, k_attr, w_s, img_s, img_t, id_ref=img_s)

    return loss


def validation_metrics(s: Setup, params, frozen, w_s, img_s, img_t, csim_ref):
    """Per-sample validation metrics on full-Δp reenactments, as the authors define them (METHOD.md 8), on the
    whole batch: CSIM to `csim_ref`, pose error (degrees) and range-normalised expression error vs the target."""
    codes_s, codes_t = _deca(s, frozen, img_s), _deca(s, frozen, img_t)
    img_r = reenact_from_codes(s, params, frozen, w_s, codes_s, codes_t)
    codes_r = _deca(s, frozen, img_r)
    n_exp = s.layout.num_expressions
    pe_r = metrics.expression_params(codes_r["exp"], codes_r["pose"][:, 3], n_exp)
    pe_t = metrics.expression_params(codes_t["exp"], codes_t["pose"][:, 3], n_exp)
    per_sample = {
        "csim": metrics.csim_images(frozen["arcface"], img_r, csim_ref, module=s.nets.arcface),
        "pose_error_deg": metrics.pose_error(angles_of(codes_r), angles_of(codes_t)),
        "exp_error_norm": metrics.expression_error_normalized(pe_r, pe_t, s.ranges),
    }
    return per_sample, {"source": img_s, "target": img_t, "reenacted": img_r}


def synthetic_validate(s: Setup, batch: int):
    def validate(params, frozen, val):
        w_s, img_s = synthetic_sources(s, frozen, val["key_s"], batch)
        _, img_t = synthetic_sources(s, frozen, val["key_t"], batch)
        return validation_metrics(s, params, frozen, w_s, img_s, img_t, csim_ref=img_s)

    return validate


def synthetic_validation(config, s: Setup):
    """The validation function and its fixed seeded pairs (keys of z_s, z_t per batch of `config.eval`)."""
    val_key = jax.random.key(config.eval.seed)
    vb = config.eval.batch_size
    val = [
        {"key_s": jax.random.fold_in(val_key, 2 * i), "key_t": jax.random.fold_in(val_key, 2 * i + 1)}
        for i in range(max(1, config.eval.num_pairs // vb))
    ]
    return synthetic_validate(s, vb), val


def init_params_fn(a: directions.DirectionMatrix):
    return lambda key: a.init(key, jnp.zeros((1, a.input_dim), jnp.float32))


def load_init_params(path: str | os.PathLike):
    """A's parameters from a converted A checkpoint or a previous stage's workdir (its latest checkpoint)."""
    from jaxreenact import checkpointing, weights

    path = pathlib.Path(path)
    if (path / "checkpoints").is_dir():
        mgr = checkpointing.Manager(path / "checkpoints")
        try:
            state = mgr.restore()
        finally:
            mgr.close()
        return jax.tree.map(jnp.asarray, state["params"])
    module, variables = weights.load(path)
    if not isinstance(module, directions.DirectionMatrix):
        raise UserError(f"{path}: not a direction matrix checkpoint (holds {type(module).__name__})")
    return variables


def build_stage(config, mesh):
    """The `trainer.Stage` of `config.mode`."""
    from jaxreenact.trainer import Stage

    mode = config.mode
    if mode not in ("synthetic", "real_synthetic", "paired"):
        raise UserError(f"config.mode={mode!r}: use synthetic, real_synthetic or paired")
    nets, frozen = load_networks(config)
    s = make_setup(config, nets)
    if mode == "synthetic":
        if config.loss.disentanglement_50 and config.train.batch_size % 2:
            raise UserError(f"config.train.batch_size={config.train.batch_size} must be even (50% scheme)")
        validate, val = synthetic_validation(config, s)
        return Stage(
            init_params=init_params_fn(s.a),
            loss=synthetic_loss(s, config.train.batch_size),
            validate=validate,
            frozen=frozen,
            val_data=val,
        )
    from jaxreenact import real_stages

    return real_stages.build(config, mesh, s, frozen)
