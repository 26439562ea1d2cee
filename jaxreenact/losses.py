"""The training losses (METHOD.md 4.2, 3.4).

Shape, eye and mouth losses act on DECA's decoded geometry in 224-px units with the camera forced to [8, 0, 0]
(`loss_geometry`), exactly like `libs/criteria/losses.py` with `normalize=False`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp

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


def loss_geometry(deca, deca_variables, shape, exp, pose):
    """Loss-space geometry of FLAME parameters: DECA.decode with cam = [8, 0, 0].

    Returns dict(vertices, landmarks2d [B,68,2], landmarks3d, trans_verts [B,V,3]) in 224-px units.
    """
    codes = {"shape": shape, "exp": exp, "pose": pose}
    return deca.apply(deca_variables, codes, fixed_cam=True, method="decode")


def shape_losses(geom_gt: Mapping, geom: Mapping) -> dict:
    """dict(shape, eye, mouth) between two `loss_geometry` outputs (GT first, as the authors call them)."""
    return {
        "shape": shape_loss(geom_gt["trans_verts"], geom["trans_verts"]),
        "eye": eye_loss(geom_gt["landmarks2d"], geom["landmarks2d"]),
        "mouth": mouth_loss(geom_gt["landmarks2d"], geom["landmarks2d"]),
    }
