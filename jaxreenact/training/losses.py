"""The training losses (METHOD.md 4.2, 3.4) and the one function that computes them for a batch.

`reenactment_losses_from` is the pure core of every stage's step: the 50 % scheme's draws and the DECA crop
matrices are inputs, so a golden can replay the authors' recorded draws and boxes; `reenactment_losses` draws them
from a key and calls it. Its two halves are public for stage-by-stage checks: `step_targets` (DECA codes → Δp and
the ground truth) and `shifted_losses` (A's output → reenacted image → loss terms).

Shape, eye and mouth losses act on DECA's decoded geometry in 224-px units with the camera forced to [8, 0, 0]
(`jaxreenact.pose.deca.geometry`), exactly like `libs/criteria/losses.py` with `normalize=False`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxreenact.common.mesh import Padding, masked_mean
from jaxreenact.latent import directions
from jaxreenact.models import arcface as arcface_lib
from jaxreenact.models import lpips as lpips_lib
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.training.setup import Setup, deca_codes, geometry, render

EYE_PAIRS = ((36, 39), (37, 41), (38, 40), (42, 45), (43, 47), (44, 46))
MOUTH_PAIRS = ((48, 54), (49, 59), (50, 58), (51, 57), (52, 56), (53, 55), (60, 64), (61, 67), (62, 66), (63, 65))


def shape_loss(trans_verts_gt, trans_verts, weight=None):
    """L1 (mean over every B×V×3 element) between GT and reenacted `trans_verts`; `weight` [B]: see
    `common.mesh.masked_mean` (0 for padded rows)."""
    return masked_mean(jnp.abs(trans_verts_gt - trans_verts), weight)


def _pair_distance_loss(lmk_gt, lmk, pairs, weight=None):
    """mean over pairs of L1(|gt_i − gt_j|, |r_i − r_j|), per coordinate (the authors' accumulation order)."""
    loss = 0.0
    for i, j in pairs:
        d_gt = jnp.abs(lmk_gt[:, i, :] - lmk_gt[:, j, :])
        d_e = jnp.abs(lmk[:, i, :] - lmk[:, j, :])
        loss = loss + masked_mean(jnp.abs(d_gt - d_e), weight)
    return loss / len(pairs)


def eye_loss(landmarks2d_gt, landmarks2d, weight=None):
    """Eye-opening loss on 68 iBUG landmarks [B,68,2] (pairs (36,39),(37,41),(38,40),(42,45),(43,47),(44,46))."""
    return _pair_distance_loss(landmarks2d_gt, landmarks2d, EYE_PAIRS, weight)


def mouth_loss(landmarks2d_gt, landmarks2d, weight=None):
    """Mouth loss on 68 iBUG landmarks [B,68,2] (10 pairs, outer and inner lips)."""
    return _pair_distance_loss(landmarks2d_gt, landmarks2d, MOUTH_PAIRS, weight)


def shape_losses(geom_gt: Mapping, geom: Mapping, weight=None) -> dict:
    """dict(shape, eye, mouth) between two `pose.deca.geometry` outputs (GT first, as the authors call them)."""
    return {
        "shape": shape_loss(geom_gt["trans_verts"], geom["trans_verts"], weight),
        "eye": eye_loss(geom_gt["landmarks2d"], geom["landmarks2d"], weight),
        "mouth": mouth_loss(geom_gt["landmarks2d"], geom["landmarks2d"], weight),
    }


# The order in which the authors add the terms into the total (`calculate_losses`, `calculate_losses_paired`).
TERM_ORDER = ("mouth", "shape", "eye", "identity", "perceptual", "pixel", "w_reg")


def step_targets(s: Setup, codes_s, codes_t, angles_s, angles_t, draws=None, paired: bool = False):
    """Δp and the ground truth of the shape losses from the DECA codes (and Euler angles, degrees [B, 3]) of the
    sources and targets; no gradient flows here (METHOD.md 3.4, 4.3).

    draws: dict(target_indices [B/2] int, rand_u [B/2]): the 50 % scheme's draws for the second half of the batch
    (`pose.draw_single_attribute`); used when `s.disentanglement_50` and not paired. Returns (Δp [B, D],
    gt dict(shape, exp, pose)): identity from the source (from the target in paired mode: same person)."""
    p_s = pose.p_vector(angles_s, codes_s["pose"], codes_s["exp"], s.layout)
    p_t = pose.p_vector(angles_t, codes_t["pose"], codes_t["exp"], s.layout)
    if s.disentanglement_50 and not paired:
        if draws is None:
            raise ValueError("the 50% scheme needs its draws: dict(target_indices, rand_u) for the second half")
        dp, idx = pose.delta_p_50_from_draws(p_s, p_t, draws["target_indices"], draws["rand_u"], s.units, s.layout)
        gt = pose.gt_params_50(codes_s, codes_t, angles_s, dp, idx, s.units, s.layout)
    else:
        dp = pose.delta_p(p_s, p_t, s.units, s.layout)
        gt = {"pose": codes_t["pose"], "exp": codes_t["exp"]}
    gt["shape"] = codes_t["shape"] if paired else codes_s["shape"]
    return dp, gt


def shifted_losses(s: Setup, frozen, shift, w_s, gt, id_ref, pixel_ref=None, paired: bool = False, theta_r=None,
                   w_ref=None, weight=None):  # fmt: skip
    """Everything after A: the reenacted image G(trunc(w_s + shift)), DECA of it (with gradient; crop matrices
    `theta_r` [B,3,3], or as `s.deca_box` says when None) and the loss terms against the ground truth `gt`
    dict(shape, exp, pose) (no gradient) and the reference image `id_ref` (and `pixel_ref`, paired mode; `w_ref`,
    the target's e4e W+ for the W regulariser of the paired stage when its weight is not 0).

    Both geometries use the camera [8, 0, 0] (the authors overwrite `cam` before decoding). Paired mode compares
    on [0, 255] images (LPIPS and the pixel L1, an upstream quirk kept: METHOD.md 4.2). Returns (total, terms
    {name: unweighted value}, aux dict(image, codes, geom_gt, geom_r)); total = Σ lam·term in the authors' order.
    `weight` [B]: every term a masked mean over the samples (`common.mesh.masked_mean`: 0 for a padded row)."""
    sg = jax.lax.stop_gradient
    w_shifted = directions.shift_wplus(w_s, shift)
    img_r = render(s, frozen, w_shifted)
    terms, codes_r, geom_gt, geom_r = {}, None, None, None
    # As upstream, the shape, eye and mouth terms exist only with a shape weight (a traced weight, as the parity
    # runner passes, keeps them: a zero weight then multiplies them away).
    if not isinstance(s.lam["shape"], int | float) or s.lam["shape"] > 0:
        codes_r = deca_codes(s, frozen, img_r, theta_r)
        geom_gt = jax.tree.map(sg, geometry(s, frozen, gt["shape"], gt["exp"], gt["pose"]))
        geom_r = geometry(s, frozen, codes_r["shape"], codes_r["exp"], codes_r["pose"])
        terms.update(shape_losses(geom_gt, geom_r, weight))
    terms["identity"] = arcface_lib.identity_loss(
        frozen["arcface"], img_r, id_ref, module=s.nets.arcface, weight=weight
    )
    terms["perceptual"] = lpips_lib.lpips_loss(
        frozen["lpips"], img_r, id_ref, range_255=paired, module=s.nets.lpips, weight=weight
    )
    if paired:
        pixel = jnp.abs(lpips_lib.range_1_to_255(img_r) - lpips_lib.range_1_to_255(pixel_ref))
        terms["pixel"] = masked_mean(pixel, weight)
        if s.lam.get("w_reg", 0) != 0 and w_ref is not None:
            # The authors' lambda_w_reg: L1 (mean) between the latent G renders (shifted, then truncated) and the
            # target's raw e4e W+ (`calculate_losses_paired`).
            w_r = directions.truncate(w_shifted, frozen["g"]["buffers"]["mean_latent"], s.truncation)
            terms["w_reg"] = masked_mean(jnp.abs(w_r - w_ref), weight)
    total = 0.0
    for k in TERM_ORDER:
        if k in terms:
            total = total + s.lam[k] * terms[k]
    return total, terms, {"image": img_r, "codes": codes_r, "geom_gt": geom_gt, "geom_r": geom_r}


def reenactment_losses_from(
    s: Setup,
    params,
    frozen,
    w_s,
    img_s,
    img_t,
    id_ref,
    *,
    draws=None,
    thetas=None,
    pixel_ref=None,
    paired=False,
    w_ref=None,
    pad: Padding | None = None,
):
    """One batch's losses, the pure core of every stage's step: no randomness inside.

    w_s: source W+ (untruncated); img_s/img_t: source/target images (no gradient); id_ref: the image the identity
    and perceptual losses compare with (source, or the target in paired mode). draws: the 50 % scheme's draws
    (`step_targets`). thetas: dict(source, target, shifted) of DECA crop matrices [B, 3, 3] (e.g. from the boxes a
    golden recorded); a missing entry is found as `s.deca_box` says. Returns (total, {"loss/<term>": value}).

    `pad`: the per-sample inputs (and thetas) are a padded global batch (`common.mesh.Padding`, any device count):
    Δp and the ground truth come from the real rows (the 50 % scheme is positional; `draws` are for the real
    batch), the padded rows copy them and weigh 0 in every term, so the losses and the gradient are the real rows'."""
    thetas = thetas or {}
    sg = jax.lax.stop_gradient
    codes_s = jax.tree.map(sg, deca_codes(s, frozen, img_s, thetas.get("source")))
    codes_t = jax.tree.map(sg, deca_codes(s, frozen, img_t, thetas.get("target")))
    angles_s, angles_t = deca_lib.angles_of(codes_s), deca_lib.angles_of(codes_t)
    real = (lambda x: x) if pad is None else pad.real
    dp, gt = step_targets(s, real(codes_s), real(codes_t), real(angles_s), real(angles_t), draws, paired)
    if pad is not None:
        dp, gt = pad.pad(dp), pad.pad(gt)
    shift = s.a.apply(params, dp)
    weight = None if pad is None else pad.weights()
    total, terms, _ = shifted_losses(
        s, frozen, shift, w_s, gt, id_ref, pixel_ref, paired, thetas.get("shifted"), w_ref, weight
    )
    return total, {f"loss/{k}": v for k, v in terms.items()}


def reenactment_losses(s: Setup, params, frozen, key, w_s, img_s, img_t, id_ref, pixel_ref=None, paired=False,
                       w_ref=None):  # fmt: skip
    """`reenactment_losses_from` with the 50 % scheme's draws sampled from `key` (crop boxes as `s.deca_box`)."""
    draws = None
    if s.disentanglement_50 and not paired:
        draws = pose.draw_single_attribute(key, img_s.shape[0] // 2, s.layout)
    return reenactment_losses_from(
        s, params, frozen, w_s, img_s, img_t, id_ref, draws=draws, pixel_ref=pixel_ref, paired=paired, w_ref=w_ref
    )
