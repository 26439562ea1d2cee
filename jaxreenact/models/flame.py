"""FLAME with linear blend skinning in pure jnp, as DECA's `models/FLAME.py` + `models/lbs.py` compute it.

DECA's choices (METHOD.md 3.4, 9.3):
* 100 shape + 50 expression components: `shapedirs[..., :100] ++ shapedirs[..., 300:350]` (done by the converter;
  the `shapedirs` buffer here is already [V, 3, 150]);
* full pose = [global (3), neck (3, fixed zero), jaw (3), eyes (6, zero)];
* `batch_rodrigues` with `angle = ‖r + 1e-8‖`;
* landmarks2d = 17 dynamic contour landmarks (LUT row from the neck-chain yaw, `round(clamp(deg, max=39))`,
  negatives → 39 − deg, below −39 → 78, with `rot_mat_to_euler` *without* the minus sign of `lbs.py`'s own helper)
  + 51 static landmarks = 68 in iBUG order; landmarks3d = the full 68.

The FLAME arrays are variables of the `buffers` collection (converted from the user's files by
`converters.deca`), never constants in the code. Every contraction runs at HIGHEST precision so the vertices keep
fp32 accuracy (1e-6 m) on accelerators too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

BUFFERS = "buffers"
HI = lax.Precision.HIGHEST
N_DYNAMIC_ROWS = 79  # DECA's contour LUT: yaw 0..39 then −1..−39


def batch_rodrigues(rot_vecs):
    """[N, 3] axis-angle → [N, 3, 3] rotation matrices, exactly as SMPL-X/DECA: angle = ‖r + 1e-8‖,
    R = I + sin θ K + (1 − cos θ) K²."""
    angle = jnp.linalg.norm(rot_vecs + 1e-8, axis=1, keepdims=True)
    rot_dir = rot_vecs / angle
    cos = jnp.cos(angle)[:, :, None]
    sin = jnp.sin(angle)[:, :, None]
    rx, ry, rz = rot_dir[:, 0], rot_dir[:, 1], rot_dir[:, 2]
    zeros = jnp.zeros_like(rx)
    k = jnp.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], axis=1).reshape(-1, 3, 3)
    ident = jnp.eye(3, dtype=rot_vecs.dtype)[None]
    return ident + sin * k + (1 - cos) * jnp.matmul(k, k, precision=HI)


def rot_mat_to_euler_y(rot_mats):
    """The y rotation DECA's FLAME class uses for the contour LUT: atan2(−R20, √(R00² + R10²)) in radians."""
    sy = jnp.sqrt(rot_mats[:, 0, 0] * rot_mats[:, 0, 0] + rot_mats[:, 1, 0] * rot_mats[:, 1, 0])
    return jnp.arctan2(-rot_mats[:, 2, 0], sy)


def _transform_mat(r, t):
    """[N,3,3], [N,3,1] → [N,4,4] homogeneous transforms."""
    top = jnp.concatenate([r, t], axis=2)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], r.dtype), (r.shape[0], 1, 4))
    return jnp.concatenate([top, bottom], axis=1)


def batch_rigid_transform(rot_mats, joints, parents: Sequence[int]):
    """Posed joints [B,J,3] and the relative transforms A [B,J,4,4] of the kinematic chain (`lbs.py`)."""
    b, nj = joints.shape[:2]
    joints = joints[..., None]  # [B,J,3,1]
    par = np.asarray(parents[1:], np.int64)
    rel_joints = jnp.concatenate([joints[:, :1], joints[:, 1:] - joints[:, par]], axis=1)
    tm = _transform_mat(rot_mats.reshape(-1, 3, 3), rel_joints.reshape(-1, 3, 1)).reshape(b, nj, 4, 4)
    chain = [tm[:, 0]]
    for i in range(1, nj):
        chain.append(jnp.matmul(chain[parents[i]], tm[:, i], precision=HI))
    transforms = jnp.stack(chain, axis=1)
    posed_joints = transforms[:, :, :3, 3]
    joints_h = jnp.concatenate([joints, jnp.zeros_like(joints[:, :, :1])], axis=2)  # [B,J,4,1]
    tj = jnp.matmul(transforms, joints_h, precision=HI)  # [B,J,4,1]
    rel = transforms - jnp.concatenate([jnp.zeros((b, nj, 4, 3), transforms.dtype), tj], axis=3)
    return posed_joints, rel


def lbs(betas, full_pose, v_template, shapedirs, posedirs, j_regressor, parents: Sequence[int], lbs_weights):
    """Linear blend skinning (SMPL-X `lbs`, pose2rot=True). Returns (vertices [B,V,3], joints [B,J,3])."""
    b = betas.shape[0]
    v_shaped = v_template[None] + jnp.einsum("bl,mkl->bmk", betas, shapedirs, precision=HI)
    joints = jnp.einsum("bik,ji->bjk", v_shaped, j_regressor, precision=HI)
    rot_mats = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(b, -1, 3, 3)
    ident = jnp.eye(3, dtype=betas.dtype)
    pose_feature = (rot_mats[:, 1:] - ident).reshape(b, -1)
    pose_offsets = jnp.matmul(pose_feature, posedirs, precision=HI).reshape(b, -1, 3)
    v_posed = pose_offsets + v_shaped
    joints_t, a = batch_rigid_transform(rot_mats, joints, parents)
    nj = j_regressor.shape[0]
    t = jnp.matmul(lbs_weights[None], a.reshape(b, nj, 16), precision=HI).reshape(b, -1, 4, 4)
    v_h = jnp.concatenate([v_posed, jnp.ones_like(v_posed[..., :1])], axis=2)
    verts = jnp.matmul(t, v_h[..., None], precision=HI)[:, :, :3, 0]
    return verts, joints_t


def vertices2landmarks(vertices, faces, lmk_faces_idx, lmk_bary_coords):
    """Barycentric landmarks: vertices [B,V,3], faces [F,3], idx [B,L], bary [B,L,3] → [B,L,3]."""
    lmk_faces = faces[lmk_faces_idx]  # [B,L,3]
    lmk_vertices = jnp.take_along_axis(
        vertices[:, None, :, :], lmk_faces.reshape(lmk_faces.shape[0], 1, -1, 1), axis=2
    ).reshape(*lmk_faces.shape, 3)  # [B,L,3(verts),3(xyz)]
    return jnp.einsum("blfi,blf->bli", lmk_vertices, lmk_bary_coords, precision=HI)


def neck_kin_chain(parents: Sequence[int], neck_idx: int = 1) -> tuple[int, ...]:
    chain, i = [], neck_idx
    while i != -1:
        chain.append(i)
        i = parents[i]
    return tuple(chain)


def dynamic_lmk_row(full_pose, parents: Sequence[int]):
    """The contour-LUT row (int32 [B]) from the neck-chain yaw, as `FLAME._find_dynamic_lmk_idx_and_bcoords`."""
    b = full_pose.shape[0]
    chain = np.asarray(neck_kin_chain(parents))
    aa = full_pose.reshape(b, -1, 3)[:, chain]
    rot = batch_rodrigues(aa.reshape(-1, 3)).reshape(b, -1, 3, 3)
    rel = jnp.broadcast_to(jnp.eye(3, dtype=full_pose.dtype), (b, 3, 3))
    for i in range(len(chain)):
        rel = jnp.matmul(rot[:, i], rel, precision=HI)
    deg = lax.stop_gradient(rot_mat_to_euler_y(rel) * 180.0 / np.pi)
    y = jnp.round(jnp.minimum(deg, 39.0)).astype(jnp.int32)
    neg = jnp.where(y < -39, 78, 39 - y)
    return jnp.where(y < 0, neg, y)


def flame_forward(buffers: Mapping, parents: Sequence[int], shape, exp, pose, eye_pose=None, neck_pose=None):
    """FLAME as DECA calls it. shape [B,100], exp [B,50], pose [B,6] (global, jaw axis-angles, radians).

    `eye_pose` [B,6] and `neck_pose` [1|B,3] default to zero (fixed parameters upstream).
    Returns dict(vertices [B,V,3], landmarks2d [B,68,3], landmarks3d [B,68,3], dyn_lmk_faces_idx [B,17]).
    """
    buffers = {k: jnp.asarray(v) for k, v in buffers.items()}  # numpy leaves cannot be indexed by tracers
    b = shape.shape[0]
    dt = shape.dtype
    eye_pose = jnp.zeros((b, 6), dt) if eye_pose is None else eye_pose
    neck_pose = jnp.zeros((b, 3), dt) if neck_pose is None else jnp.broadcast_to(neck_pose, (b, 3))
    betas = jnp.concatenate([shape, exp], axis=1)
    full_pose = jnp.concatenate([pose[:, :3], neck_pose, pose[:, 3:], eye_pose], axis=1)
    verts, _ = lbs(
        betas,
        full_pose,
        buffers["v_template"],
        buffers["shapedirs"],
        buffers["posedirs"],
        buffers["J_regressor"],
        parents,
        buffers["lbs_weights"],
    )
    faces = buffers["faces"]
    row = dynamic_lmk_row(full_pose, parents)
    dyn_idx = buffers["dynamic_lmk_faces_idx"][row]  # [B,17]
    dyn_bary = buffers["dynamic_lmk_bary_coords"][row]  # [B,17,3]
    n_static = buffers["lmk_faces_idx"].shape[0]
    idx = jnp.concatenate([dyn_idx, jnp.broadcast_to(buffers["lmk_faces_idx"], (b, n_static))], axis=1)
    bary = jnp.concatenate([dyn_bary, jnp.broadcast_to(buffers["lmk_bary_coords"], (b, n_static, 3))], axis=1)
    lmk2d = vertices2landmarks(verts, faces, idx, bary)
    n_full = buffers["full_lmk_faces_idx"].shape[0]
    lmk3d = vertices2landmarks(
        verts,
        faces,
        jnp.broadcast_to(buffers["full_lmk_faces_idx"], (b, n_full)),
        jnp.broadcast_to(buffers["full_lmk_bary_coords"], (b, n_full, 3)),
    )
    return {"vertices": verts, "landmarks2d": lmk2d, "landmarks3d": lmk3d, "dyn_lmk_faces_idx": dyn_idx}


def buffer_shapes(
    n_vertices: int = 5023,
    n_faces: int = 9976,
    n_joints: int = 5,
    n_betas: int = 150,
    n_static: int = 51,
    n_dynamic: int = 17,
    n_full: int = 68,
) -> dict[str, tuple[tuple[int, ...], object]]:
    """Name → (shape, dtype) of the FLAME buffers (integer indices are int32)."""
    f32, i32 = jnp.float32, jnp.int32
    return {
        "v_template": ((n_vertices, 3), f32),
        "shapedirs": ((n_vertices, 3, n_betas), f32),
        "posedirs": (((n_joints - 1) * 9, n_vertices * 3), f32),
        "J_regressor": ((n_joints, n_vertices), f32),
        "lbs_weights": ((n_vertices, n_joints), f32),
        "faces": ((n_faces, 3), i32),
        "lmk_faces_idx": ((n_static,), i32),
        "lmk_bary_coords": ((n_static, 3), f32),
        "dynamic_lmk_faces_idx": ((N_DYNAMIC_ROWS, n_dynamic), i32),
        "dynamic_lmk_bary_coords": ((N_DYNAMIC_ROWS, n_dynamic, 3), f32),
        "full_lmk_faces_idx": ((n_full,), i32),
        "full_lmk_bary_coords": ((n_full, 3), f32),
    }


class FLAME(nn.Module):
    """FLAME decoder (DECA's); its arrays live in the `buffers` collection (zeros until converted weights are given)."""

    n_vertices: int = 5023
    n_faces: int = 9976
    parents: tuple[int, ...] = (-1, 0, 1, 1, 1)
    n_shape: int = 100
    n_exp: int = 50

    def _buffers(self) -> dict:
        shapes = buffer_shapes(self.n_vertices, self.n_faces, len(self.parents), self.n_shape + self.n_exp)
        return {k: self.variable(BUFFERS, k, jnp.zeros, s, d).value for k, (s, d) in shapes.items()}

    @nn.compact
    def __call__(self, shape, exp, pose, eye_pose=None, neck_pose=None):
        return flame_forward(self._buffers(), tuple(self.parents), shape, exp, pose, eye_pose, neck_pose)
