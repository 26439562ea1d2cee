"""crop → DECA codes: the crop box, the encoder call, the Euler angles and the loss-space geometry (METHOD.md 3).

Functions take explicit `(module, variables)` of DECA, never a bundle of networks.
"""

from __future__ import annotations

import numpy as np

from jaxreenact.common.constants import DECA_BOX_CENTER, DECA_BOX_SIZE
from jaxreenact.face import deca_crop
from jaxreenact.pose.rotations import axis_to_euler_deg


def fixed_deca_theta(batch: int, size: float = DECA_BOX_SIZE, center=DECA_BOX_CENTER) -> np.ndarray:
    """DECA crop matrices [B,3,3] for a fixed 68-landmark box of side `size` px centred at `center` (x, y)."""
    cx, cy = center
    h = size / 2
    box = np.array([[cx - h, cy - h], [cx + h, cy + h]], np.float64)
    return np.broadcast_to(deca_crop.crop_matrix(box), (batch, 3, 3)).copy()


def encode(deca, deca_vars, images_256, theta):
    """Generator-range images [B,256,256,3] + crop matrices [B,3,3] → DECA codes (the authors' clamp, [0,255],
    kornia warp to 224, /255, E_flame)."""
    return deca.apply(deca_vars, deca_crop.deca_input(images_256, theta))


def angles_of(codes):
    """DECA (yaw, pitch, roll) in degrees [B, 3] of the global pose."""
    return axis_to_euler_deg(codes["pose"][:, :3])


def geometry(deca, deca_vars, shape, exp, pose):
    """Loss-space geometry (trans_verts, landmarks2d in 224-px units) with the fixed camera [8, 0, 0]."""
    codes = {"shape": shape, "exp": exp, "pose": pose}
    return deca.apply(deca_vars, codes, fixed_cam=True, method="decode")
