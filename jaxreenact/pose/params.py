"""The pose/expression vector p, its shift units, Δp and the 50 % single-attribute scheme (METHOD.md 2.3-2.5, 4.3).

p (raw, per sample) for the VoxCeleb layout: [yaw°, pitch°, roll°, jaw (pose[3], rad), exp0 … exp10] (15);
for FFHQ: [yaw°, pitch°, jaw, exp0 … exp11] (no roll). In shift units (±6):
* angles: value·6/scale with scale 40 / 20 / 20 (yaw / pitch / roll);
* jaw and expressions: a·x + b, the line through (min, −6) and (max, +6) of the ranges file (np.linalg.lstsq, as the
  authors), so Δ = a·(tgt − src).

Everything after `shift_units` is a pure jnp function, jit-able. The 50 % scheme's random draws are explicit inputs
of its cores (`single_attribute_shift`, `delta_p_50_from_draws`); the key-taking functions only draw and call them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.pose.rotations import axis_to_euler_deg, deg2rad, euler_to_axis

SHIFT_SCALE = 6.0
RANGES_SHAPE = (54, 2)  # rows: yaw, pitch, roll, jaw, exp0..exp49; columns [min, max]


@dataclasses.dataclass(frozen=True)
class PoseLayout:
    """Where each attribute sits in p. `roll = -1` means no roll direction (FFHQ)."""

    yaw: int = 0
    pitch: int = 1
    roll: int = 2
    angle_scales: tuple[float, float, float] = (40.0, 20.0, 20.0)
    num_directions: int = 15
    shift_scale: float = SHIFT_SCALE

    @property
    def angle_dirs(self) -> tuple[int, ...]:
        return tuple(d for d in (self.yaw, self.pitch, self.roll) if d != -1)

    @property
    def count_pose(self) -> int:
        return len(self.angle_dirs) + 1  # + jaw

    @property
    def jaw(self) -> int:
        return self.count_pose - 1  # the authors use count_pose − 1, not the config's jaw_direction

    @property
    def num_expressions(self) -> int:
        return self.num_directions - self.count_pose


VOXCELEB = PoseLayout()
FFHQ = PoseLayout(roll=-1)
LAYOUTS = {"voxceleb": VOXCELEB, "ffhq": FFHQ}


class ShiftUnits(NamedTuple):
    """Per-direction line `units = a·raw + b` ([D] each) and which directions are angles ([D] bool)."""

    a: np.ndarray
    b: np.ndarray
    is_angle: np.ndarray


def load_ranges(path: str | os.PathLike) -> np.ndarray:
    """Read a ranges file (`ranges_voxceleb.npy` / `ranges_FFHQ.npy`): float64 [54, 2] rows [min, max]."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ranges file not found (the authors' libs/configs/ranges_*.npy)")
    try:
        r = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: not a ranges .npy file ({str(e)[:120]})") from None
    if r.shape != RANGES_SHAPE or not np.issubdtype(r.dtype, np.number):
        raise UserError(f"{path}: ranges must be a numeric [54, 2] array (rows [min, max]), got {r.dtype} {r.shape}")
    r = r.astype(np.float64)
    if not np.all(np.isfinite(r)) or np.any(r[3:, 1] <= r[3:, 0]):
        bad = np.where(~(r[3:, 1] > r[3:, 0]))[0] + 3
        raise UserError(f"{path}: rows {bad.tolist()} are not finite with min < max")
    return r


def default_ranges_path(dataset: str = "voxceleb") -> pathlib.Path:
    """The authors' ranges file shipped in `jaxreenact/resources`."""
    name = {"voxceleb": "ranges_voxceleb.npy", "ffhq": "ranges_ffhq.npy"}.get(dataset)
    if name is None:
        raise UserError(f"unknown dataset {dataset!r}: expected 'voxceleb' or 'ffhq'")
    return pathlib.Path(__file__).resolve().parents[1] / "resources" / name


@dataclasses.dataclass(frozen=True, eq=False)
class PoseSpace:
    """The layout of p, the ranges that define its shift units, and those units: what turns DECA codes into Δp."""

    layout: PoseLayout
    ranges: np.ndarray
    units: ShiftUnits


def pose_space(
    dataset: str = "voxceleb", ranges_file: str | os.PathLike | None = None, shift_scale: float = SHIFT_SCALE
) -> PoseSpace:
    """The `PoseSpace` of a dataset layout, from `ranges_file` or the authors' ranges file shipped for it, in units
    of ±`shift_scale` (the value an A was trained with: `DirectionMatrix.shift_scale`, as the authors' inference
    reads it from the A checkpoint; the jaw line keeps ±6, as upstream)."""
    if dataset not in LAYOUTS:
        raise UserError(f"dataset {dataset!r}: use one of {', '.join(LAYOUTS)}")
    if not float(shift_scale) > 0:
        raise UserError(f"shift_scale must be positive, got {shift_scale!r}")
    layout = dataclasses.replace(LAYOUTS[dataset], shift_scale=float(shift_scale))
    ranges = load_ranges(ranges_file or default_ranges_path(dataset))
    return PoseSpace(layout, ranges, shift_units(ranges, layout))


def _line(lo: float, hi: float, scale: float) -> tuple[float, float]:
    a_mat = np.vstack([[lo, hi], np.ones(2)]).T
    m, c = np.linalg.lstsq(a_mat, np.array([-scale, scale]), rcond=None)[0]
    return float(m), float(c)


def shift_units(ranges: np.ndarray, layout: PoseLayout = VOXCELEB) -> ShiftUnits:
    """The a, b of every direction (angles: a = shift_scale/scale, b = 0). Jaw uses ±6 hard-coded (as upstream)."""
    d = layout.num_directions
    a, b, is_angle = np.zeros(d), np.zeros(d), np.zeros(d, bool)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if idx != -1:
            a[idx], is_angle[idx] = layout.shift_scale / layout.angle_scales[k], True
    a[layout.jaw], b[layout.jaw] = _line(ranges[3, 0], ranges[3, 1], 6.0)
    for i in range(layout.num_expressions):
        a[layout.count_pose + i], b[layout.count_pose + i] = _line(
            ranges[4 + i, 0], ranges[4 + i, 1], layout.shift_scale
        )
    return ShiftUnits(a, b, is_angle)


def p_vector(angles_deg, pose, exp, layout: PoseLayout = VOXCELEB):
    """Raw p [B, D]: the layout's angles (degrees), jaw = pose[:, 3], then exp[:, :num_expressions]."""
    cols = [angles_deg[:, k] for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)) if idx != -1]
    cols.append(pose[:, 3])
    return jnp.concatenate([jnp.stack(cols, axis=1), exp[:, : layout.num_expressions]], axis=1)


def params_to_p(params: dict, layout: PoseLayout = VOXCELEB):
    """p from DECA codes dict(pose [B,6], exp [B,50]); the angles are computed from pose[:, :3] per sample."""
    return p_vector(axis_to_euler_deg(params["pose"][:, :3]), params["pose"], params["exp"], layout)


def to_units(p_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """Raw p → shift units: angle·shift_scale/scale, a·x + b otherwise (the authors' operation order)."""
    scales = np.ones(layout.num_directions)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if idx != -1:
            scales[idx] = layout.angle_scales[k]
    ang = p_raw * layout.shift_scale / jnp.asarray(scales, p_raw.dtype)
    lin = jnp.asarray(units.a, p_raw.dtype) * p_raw + jnp.asarray(units.b, p_raw.dtype)
    return jnp.where(jnp.asarray(units.is_angle), ang, lin)


def to_units_host(p_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB) -> np.ndarray:
    """`to_units` in float64 NumPy on host values: what the authors' `run_inference.make_shift` computes (the
    scales are np.float64, so under NumPy 2 each term is float64 before the result is stored as float32)."""
    p = np.asarray(p_raw, np.float64)
    scales = np.ones(layout.num_directions)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if idx != -1:
            scales[idx] = layout.angle_scales[k]
    ang = p * layout.shift_scale / scales
    lin = np.asarray(units.a, np.float64) * p + np.asarray(units.b, np.float64)
    return np.where(np.asarray(units.is_angle), ang, lin)


def make_shift(p_src_raw, p_tgt_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB) -> np.ndarray:
    """Δp [B, D] float32 = units(target) − units(source), computed in float64 on the host (`make_shift` of the
    authors' inference; `delta_p` is the float32, jit-able form of the training step)."""
    return (to_units_host(p_tgt_raw, units, layout) - to_units_host(p_src_raw, units, layout)).astype(np.float32)


def from_units(p_units, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """Inverse of `to_units`: angle = u·scale/shift_scale; x = (u − b)/a."""
    scales = np.ones(layout.num_directions)
    for k, idx in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if idx != -1:
            scales[idx] = layout.angle_scales[k]
    ang = p_units * jnp.asarray(scales, p_units.dtype) / layout.shift_scale
    lin = (p_units - jnp.asarray(units.b, p_units.dtype)) / jnp.asarray(units.a, p_units.dtype)
    return jnp.where(jnp.asarray(units.is_angle), ang, lin)


def delta_p(p_src_raw, p_tgt_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """Full Δp [B, D] = units(target) − units(source) (`make_shift_vector`)."""
    return to_units(p_tgt_raw, units, layout) - to_units(p_src_raw, units, layout)


def single_attribute_shift(p_src_raw, target_indices, rand_u, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """The pure core of the single-attribute draw: sample b moves direction `target_indices[b]` only, by
    (min − max)·rand_u[b] + max with min/max = ∓6 − start (start = the source's value in shift units), so the
    target lands ~U(−6, 6); all other entries 0. `target_indices` [B] int (the authors' `np.random.choice`),
    `rand_u` [B] in [0, 1) (their `torch.rand(1)` per sample). Returns Δp [B, D]."""
    idx = jnp.asarray(target_indices).astype(jnp.int32)
    u = jnp.asarray(rand_u, p_src_raw.dtype)
    start = jnp.take_along_axis(to_units(p_src_raw, units, layout), idx[:, None], axis=1)[:, 0]
    lo, hi = -layout.shift_scale - start, layout.shift_scale - start
    shift = (lo - hi) * u + hi
    return jax.nn.one_hot(idx, layout.num_directions, dtype=p_src_raw.dtype) * shift[:, None]


def draw_single_attribute(key, n: int, layout: PoseLayout = VOXCELEB, dtype=jnp.float32) -> dict:
    """The random draws of `n` single-attribute samples: dict(target_indices [n] int32, rand_u [n])."""
    k_idx, k_u = jax.random.split(key)
    return {
        "target_indices": jax.random.randint(k_idx, (n,), 0, layout.num_directions),
        "rand_u": jax.random.uniform(k_u, (n,), dtype),
    }


def sample_single_attribute(key, p_src_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """`single_attribute_shift` with its draws sampled from `key`. Returns (Δp [B, D], direction index [B])."""
    d = draw_single_attribute(key, p_src_raw.shape[0], layout, p_src_raw.dtype)
    return single_attribute_shift(p_src_raw, d["target_indices"], d["rand_u"], units, layout), d["target_indices"]


def _check_even(b: int) -> int:
    if b % 2:
        raise UserError(f"the 50% single-attribute scheme needs an even batch, got {b}")
    return b // 2


def delta_p_50_from_draws(p_src_raw, p_tgt_raw, target_indices, rand_u, units: ShiftUnits, layout=VOXCELEB):
    """The pure core of `make_shift_vector_50`: first half full Δp, second half one direction each, from the given
    draws (`target_indices`, `rand_u`: [B/2] each, one per second-half sample in sample order, as the authors draw
    them). Returns (Δp [B, D], idx [B]) with idx −1 for the first half. The batch must be even."""
    h = _check_even(p_src_raw.shape[0])
    full = delta_p(p_src_raw[:h], p_tgt_raw[:h], units, layout)
    single = single_attribute_shift(p_src_raw[h:], target_indices, rand_u, units, layout)
    idx = jnp.asarray(target_indices).astype(jnp.int32)
    return jnp.concatenate([full, single], 0), jnp.concatenate([jnp.full((h,), -1, idx.dtype), idx])


def delta_p_50(key, p_src_raw, p_tgt_raw, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """`delta_p_50_from_draws` with the draws of the second half sampled from `key` (`draw_single_attribute`)."""
    h = _check_even(p_src_raw.shape[0])
    d = draw_single_attribute(key, h, layout, p_src_raw.dtype)
    return delta_p_50_from_draws(p_src_raw, p_tgt_raw, d["target_indices"], d["rand_u"], units, layout)


def _swap_axis(aa):
    """The authors' GT fix-up after euler→axis: [aa1, −aa0, aa2]."""
    return jnp.stack([aa[..., 1], -aa[..., 0], aa[..., 2]], axis=-1)


def single_attribute_gt(src_params: dict, src_angles_deg, dp, idx, units: ShiftUnits, layout: PoseLayout = VOXCELEB):
    """`get_params_gt_reenacted` for single-attribute samples: source pose/exp with only direction `idx` replaced.

    src_params: dict(pose [B,6], exp [B,50]); src_angles_deg [B,3] (yaw, pitch, roll); dp [B,D] from
    `single_attribute_shift`; idx [B]. Angles: new° = (start + shift)·scale/6 into a copy of the source angles →
    `batch_euler2axis(deg2rad(.))` (quaternion route) → [aa1, −aa0, aa2] → pose[:3]. Jaw/exp: x = (start + shift − b)/a.
    Returns dict(pose [B,6], exp [B,50]).
    """
    pose, exp = src_params["pose"], src_params["exp"]
    shift = jnp.take_along_axis(dp, idx[:, None], axis=1)[:, 0]
    a_, b_ = jnp.asarray(units.a, dp.dtype)[idx], jnp.asarray(units.b, dp.dtype)[idx]
    # angles
    new_pose = pose
    for k, d in enumerate((layout.yaw, layout.pitch, layout.roll)):
        if d == -1:
            continue
        scale = layout.angle_scales[k]
        start = src_angles_deg[:, k] * layout.shift_scale / scale
        target = (start + shift) * scale / layout.shift_scale
        ang = src_angles_deg.at[:, k].set(target)
        aa = _swap_axis(euler_to_axis(deg2rad(ang)))
        new_pose = jnp.where((idx == d)[:, None], jnp.concatenate([aa, pose[:, 3:]], axis=1), new_pose)
    # jaw
    jaw_start = a_ * pose[:, 3] + b_
    jaw = ((jaw_start + shift) - b_) / a_
    new_pose = jnp.where((idx == layout.jaw)[:, None], new_pose.at[:, 3].set(jaw), new_pose)
    # expressions
    e = jnp.clip(idx - layout.count_pose, 0, exp.shape[1] - 1)
    x0 = jnp.take_along_axis(exp, e[:, None], axis=1)[:, 0]
    new_x = ((a_ * x0 + b_ + shift) - b_) / a_
    is_exp = idx >= layout.count_pose
    onehot = jax.nn.one_hot(e, exp.shape[1], dtype=bool) & is_exp[:, None]
    new_exp = jnp.where(onehot, new_x[:, None], exp)
    return {"pose": new_pose, "exp": new_exp}


def gt_params_50(src_params: dict, tgt_params: dict, src_angles_deg, dp, idx, units, layout=VOXCELEB):
    """GT pose/exp for a 50 % batch: first half = the target's full pose and exp, second half =
    `single_attribute_gt`. Shape (identity) is the caller's: the source's `shape` (METHOD.md 3.4)."""
    h = dp.shape[0] // 2
    single = single_attribute_gt(
        {"pose": src_params["pose"][h:], "exp": src_params["exp"][h:]},
        src_angles_deg[h:],
        dp[h:],
        idx[h:],
        units,
        layout,
    )
    return {
        "pose": jnp.concatenate([tgt_params["pose"][:h], single["pose"]], 0),
        "exp": jnp.concatenate([tgt_params["exp"][:h], single["exp"]], 0),
    }
