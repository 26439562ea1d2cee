"""The training losses (METHOD.md 4.2, 3.4) and the one function that computes them for a batch.

Shape, eye and mouth losses act on DECA's decoded geometry in 224-px units with the camera forced to [8, 0, 0]
(`jaxreenact.pose.deca.geometry`), exactly like `libs/criteria/losses.py` with `normalize=False`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxreenact.latent import directions
from jaxreenact.models import arcface as arcface_lib
from jaxreenact.models import lpips as lpips_lib
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.training.setup import Setup, deca_codes, geometry, render

EYE_PAIRS = ((36, 39), (37, 41), (38, 40), (42, 45), (43, 47), (44, 46))
MOUTH_PAIRS = ((48, 54), (49, 59), (50, 58), (51, 57), (52, 56), (53, 55), (60, 64), (61, 67), (62, 66), (63, 65))


def shape_loss(trans_verts_gt, trans_verts):
    """L1 (mean over every B×V×3 element) between GT and reenacted `trans_verts`."""
    return jnp.mean(jnp.abs(trans_verts_gt - trans_verts))


def _pair_distance_loss(lmk_gt, lmk, pairs):
    """mean over pairs of L1(|gt_i − gt_j|, |r_i − r_j|), per coordinate (the authors' accumulation order)."""
    loss = 0.0
    for i, j in pairs:
        d_gt = jnp.abs(lmk_gt[:, i, :] - lmk_gt[:, j, :])
        d_e = jnp.abs(lmk[:, i, :] - lmk[:, j, :])
        loss = loss + jnp.mean(jnp.abs(d_gt - d_e))
    return loss / len(pairs)


def eye_loss(landmarks2d_gt, landmarks2d):
    """Eye-opening loss on 68 iBUG landmarks [B,68,2] (pairs (36,39),(37,41),(38,40),(42,45),(43,47),(44,46))."""
    return _pair_distance_loss(landmarks2d_gt, landmarks2d, EYE_PAIRS)


def mouth_loss(landmarks2d_gt, landmarks2d):
    """Mouth loss on 68 iBUG landmarks [B,68,2] (10 pairs, outer and inner lips)."""
    return _pair_distance_loss(landmarks2d_gt, landmarks2d, MOUTH_PAIRS)


def shape_losses(geom_gt: Mapping, geom: Mapping) -> dict:
    """dict(shape, eye, mouth) between two `pose.deca.geometry` outputs (GT first, as the authors call them)."""
    return {
        "shape": shape_loss(geom_gt["trans_verts"], geom["trans_verts"]),
        "eye": eye_loss(geom_gt["landmarks2d"], geom["landmarks2d"]),
        "mouth": mouth_loss(geom_gt["landmarks2d"], geom["landmarks2d"]),
    }


def reenactment_losses(
    s: Setup, params, frozen, key, w_s, img_s, img_t, id_ref, pixel_ref=None, paired=False, w_ref=None
):
    """One batch's losses. w_s: source W+ (untruncated); img_s/img_t: source/target images (no gradient);
    id_ref: the image the identity and perceptual losses compare with (source, or the target in paired mode);
    w_ref: the target's e4e W+ for the paired stage's W regulariser (used only when its weight is not 0).

    As upstream, the shape, eye and mouth terms exist only when the shape weight is > 0 (`setup.loss_weights`)."""
    sg = jax.lax.stop_gradient
    codes_s = jax.tree.map(sg, deca_codes(s, frozen, img_s))
    codes_t = jax.tree.map(sg, deca_codes(s, frozen, img_t))
    p_s = pose.params_to_p(codes_s, s.layout)
    p_t = pose.params_to_p(codes_t, s.layout)
    if s.disentanglement_50 and not paired:
        dp, idx = pose.delta_p_50(key, p_s, p_t, s.units, s.layout)
        gt = pose.gt_params_50(codes_s, codes_t, deca_lib.angles_of(codes_s), dp, idx, s.units, s.layout)
    else:
        dp = pose.delta_p(p_s, p_t, s.units, s.layout)
        gt = {"pose": codes_t["pose"], "exp": codes_t["exp"]}
    shift = s.a.apply(params, dp)
    w_shifted = directions.shift_wplus(w_s, shift)
    img_r = render(s, frozen, w_shifted)
    terms = {}
    if s.lam["shape"] > 0:
        codes_r = deca_codes(s, frozen, img_r)
        # Identity comes from the source (from the target in paired mode: same person, METHOD.md 3.4).
        gt_shape = codes_t["shape"] if paired else codes_s["shape"]
        geom_gt = jax.tree.map(sg, geometry(s, frozen, gt_shape, gt["exp"], gt["pose"]))
        geom_r = geometry(s, frozen, codes_r["shape"], codes_r["exp"], codes_r["pose"])
        terms.update(shape_losses(geom_gt, geom_r))
    terms["identity"] = arcface_lib.identity_loss(frozen["arcface"], img_r, id_ref, module=s.nets.arcface)
    terms["perceptual"] = lpips_lib.lpips_loss(frozen["lpips"], img_r, id_ref, range_255=paired, module=s.nets.lpips)
    if paired:
        # The authors' pixel L1 is on [0, 255]-converted images (an upstream quirk, kept: METHOD.md 4.2).
        terms["pixel"] = jnp.mean(jnp.abs(lpips_lib.range_1_to_255(img_r) - lpips_lib.range_1_to_255(pixel_ref)))
        if s.lam["w_reg"] != 0:
            # The authors' lambda_w_reg: L1 (mean) between the latent G renders (shifted, then truncated) and the
            # target's raw e4e W+ (`calculate_losses_paired`).
            w_r = directions.truncate(w_shifted, frozen["g"]["buffers"]["mean_latent"], s.truncation)
            terms["w_reg"] = jnp.mean(jnp.abs(w_r - w_ref))
    total = sum(s.lam[k] * v for k, v in terms.items())
    return total, {f"loss/{k}": v for k, v in terms.items()}
