"""Rotations as DECA's `utils/rotation_converter.py` (as modified by the authors) computes them, batched, in jnp.

* `axis_to_matrix`: axis-angle → quaternion (ceres form) → matrix: the route `batch_axis2euler` takes.
* `matrix_to_euler`: the authors' convention, in radians: yaw = asin(R20), pitch = atan2(R21/cos, R22/cos),
  roll = atan2(R10/cos, R00/cos) (METHOD.md 2.3). A pure +0.3 rad rotation about FLAME's y axis gives yaw −17.19°.
* `axis_to_euler_deg`: `rad2deg(batch_axis2euler(aa))` per sample, with DECA's float32 π.

Differences from upstream, on purpose:
* upstream `batch_matrix2euler` returns only the *last* sample of a batch ([1,3]; the authors call it one image at
  a time); ours returns every sample [B,3] (`euler_batch_call_quirk` reproduces the upstream output if needed);
* gimbal case |R20| > 0.998 (|yaw| ≳ 86.4°): upstream raises NameError (undefined `atan2`/`np`). We implement what
  that branch meant: yaw = ±90°, roll = 0, pitch = atan2(∓R01, ∓R02) (R20 > 0.998: atan2(−R01, −R02); R20 < −0.998:
  atan2(R01, R02)). Nothing crashes and the outputs are finite; such poses do not occur for faces DECA can see.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxreenact.models.flame import batch_rodrigues

PI32 = np.float32(3.14159265358979323846)  # rotation_converter's `pi = torch.Tensor([3.14159...])`
GIMBAL = 0.998

__all__ = [
    "PI32",
    "angle_axis_to_quaternion",
    "axis_to_euler_deg",
    "axis_to_matrix",
    "batch_rodrigues",
    "deg2rad",
    "euler_batch_call_quirk",
    "euler_to_axis",
    "euler_to_quaternion",
    "matrix_to_euler",
    "quaternion_to_angle_axis",
    "quaternion_to_matrix",
    "rad2deg",
]


def rad2deg(x):
    """180·x / π with π as float32 (DECA's `rad2deg`)."""
    return 180.0 * x / jnp.asarray(PI32, jnp.result_type(x, jnp.float32))


def deg2rad(x):
    """x·π / 180 with π as float32 (DECA's `deg2rad`)."""
    return x * jnp.asarray(PI32, jnp.result_type(x, jnp.float32)) / 180.0


def _safe_sqrt(x):
    pos = x > 0.0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def angle_axis_to_quaternion(aa):
    """[..., 3] axis-angle → [..., 4] quaternion (w, x, y, z), ceres/kornia form (0.5 / 1 at zero angle)."""
    a0, a1, a2 = aa[..., 0:1], aa[..., 1:2], aa[..., 2:3]
    theta2 = a0 * a0 + a1 * a1 + a2 * a2
    mask = theta2 > 0.0
    theta = _safe_sqrt(theta2)
    half = theta * 0.5
    k = jnp.where(mask, jnp.sin(half) / jnp.where(mask, theta, 1.0), 0.5)
    w = jnp.where(mask, jnp.cos(half), 1.0)
    return jnp.concatenate([w, a0 * k, a1 * k, a2 * k], axis=-1)


def quaternion_to_matrix(q):
    """[B, 4] (w, x, y, z) → [B, 3, 3], normalising q first (DECA `quaternion_to_rotation_matrix`)."""
    q = q / jnp.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    w2, x2, y2, z2 = w * w, x * x, y * y, z * z
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    m = [
        w2 + x2 - y2 - z2,
        2 * xy - 2 * wz,
        2 * wy + 2 * xz,
        2 * wz + 2 * xy,
        w2 - x2 + y2 - z2,
        2 * yz - 2 * wx,
        2 * xz - 2 * wy,
        2 * wx + 2 * yz,
        w2 - x2 - y2 + z2,
    ]
    return jnp.stack(m, axis=1).reshape(-1, 3, 3)


def axis_to_matrix(aa):
    """[B, 3] axis-angle → [B, 3, 3] via the quaternion (DECA `batch_axis2matrix`)."""
    return quaternion_to_matrix(angle_axis_to_quaternion(aa))


def matrix_to_euler(r):
    """[B, 3, 3] → [B, 3] (yaw, pitch, roll) in radians, the authors' convention; gimbal case as the module doc."""
    r20 = r[:, 2, 0]
    gim_pos, gim_neg = r20 > GIMBAL, r20 < -GIMBAL
    regular = ~(gim_pos | gim_neg)
    x = jnp.arcsin(jnp.where(regular, r20, 0.0))
    c = jnp.cos(x)
    y = jnp.arctan2(r[:, 2, 1] / c, r[:, 2, 2] / c)
    z = jnp.arctan2(r[:, 1, 0] / c, r[:, 0, 0] / c)
    half_pi = jnp.asarray(np.pi / 2, r.dtype)
    yaw = jnp.where(gim_pos, half_pi, jnp.where(gim_neg, -half_pi, x))
    pitch = jnp.where(
        gim_pos,
        jnp.arctan2(-r[:, 0, 1], -r[:, 0, 2]),
        jnp.where(gim_neg, jnp.arctan2(r[:, 0, 1], r[:, 0, 2]), y),
    )
    roll = jnp.where(regular, z, 0.0)
    return jnp.stack([yaw, pitch, roll], axis=1)


def axis_to_euler_deg(aa):
    """[B, 3] global axis-angle → [B, 3] (yaw, pitch, roll) in degrees, as `estimate_DECA` computes each sample."""
    return rad2deg(matrix_to_euler(axis_to_matrix(aa)))


def euler_batch_call_quirk(aa):
    """Upstream `rad2deg(batch_axis2euler(aa))` on a whole batch: only the LAST sample, shape [1, 3]."""
    return axis_to_euler_deg(aa)[-1:]


def euler_to_quaternion(r):
    """[..., 3] (angles used as x, y, z halves, radians) → [..., 4], DECA `euler_to_quaternion`."""
    x, y, z = r[..., 0] / 2.0, r[..., 1] / 2.0, r[..., 2] / 2.0
    cz, sz, cy, sy, cx, sx = jnp.cos(z), jnp.sin(z), jnp.cos(y), jnp.sin(y), jnp.cos(x), jnp.sin(x)
    return jnp.stack(
        [
            cx * cy * cz - sx * sy * sz,
            cx * sy * sz + cy * cz * sx,
            cx * cz * sy - sx * cy * sz,
            cx * cy * sz + sx * cz * sy,
        ],
        axis=-1,
    )


def quaternion_to_angle_axis(q):
    """[..., 4] → [..., 3], ceres/kornia form (DECA `quaternion_to_angle_axis`)."""
    q1, q2, q3 = q[..., 1], q[..., 2], q[..., 3]
    sin2 = q1 * q1 + q2 * q2 + q3 * q3
    sin_t = _safe_sqrt(sin2)
    cos_t = q[..., 0]
    two_theta = 2.0 * jnp.where(cos_t < 0.0, jnp.arctan2(-sin_t, -cos_t), jnp.arctan2(sin_t, cos_t))
    pos = sin2 > 0.0
    k = jnp.where(pos, two_theta / jnp.where(pos, sin_t, 1.0), 2.0)
    return jnp.stack([q1 * k, q2 * k, q3 * k], axis=-1)


def euler_to_axis(r):
    """DECA `batch_euler2axis`: [..., 3] radians → [..., 3] axis-angle through the quaternion."""
    return quaternion_to_angle_axis(euler_to_quaternion(r))
