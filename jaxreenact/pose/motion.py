"""Motion over time: Δp(t) of a driving sequence for a source, with modes, gains, masks, smoothing, held frames
and motion files (METHOD.md 7.2; the motion options are ours, the `absolute` mode is the authors').

* `absolute` (the authors'): Δp(t) = units(p_t) − units(p_source). Same code path for self and cross reenactment.
* `relative`: Δp(t) = units(p_t) − units(p_first): the driving motion relative to its first frame, added to the
  source's own pose and expression. A constant driving video gives Δp = 0 for every frame, i.e. every output frame
  is G(ψ-truncated w + A(0)). A(0) is A's bias, which the authors' A has (METHOD.md 2.1), so "Δp = 0" is not the
  plain inversion G(w), only close to it.
* per-component gains (multiply Δp), `pose` only (yaw, pitch, roll) or `expression` only (jaw + expressions) masks;
* temporal smoothing of p(t): a centred Gaussian of `smooth` frames (σ), edge-padded, on the raw p before Δp; off
  by default in `absolute` (parity with the authors), σ = 1 frame by default in `relative`.
* a frame without a face keeps the previous frame's p (`hold_missing`);
* motion files (`save_motion` / `load_motion`): the driving p(t) (raw DECA units, held, unsmoothed), a validity
  mask and the fps, so an export and its replay on the same source give the same frames.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.pose import params as pose

MODES = ("absolute", "relative")
COMPONENTS = ("all", "pose", "expression")


@dataclasses.dataclass
class MotionOptions:
    mode: str = "absolute"
    gains: tuple[float, ...] | None = None  # [D] multipliers of Δp
    component: str = "all"  # "all" | "pose" | "expression"
    smooth: float | None = None  # σ in frames; None = the mode's default

    def __post_init__(self):
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.component not in COMPONENTS:
            raise UserError(f"component {self.component!r}: use one of {', '.join(COMPONENTS)}")
        if self.smooth is not None and self.smooth < 0:
            raise UserError(f"--smooth must be >= 0 (frames), got {self.smooth}")

    @property
    def sigma(self) -> float:
        if self.smooth is not None:
            return float(self.smooth)
        return 1.0 if self.mode == "relative" else 0.0


def direction_names(layout: pose.PoseLayout = pose.VOXCELEB) -> list[str]:
    names = [""] * layout.num_directions
    for n, i in (("yaw", layout.yaw), ("pitch", layout.pitch), ("roll", layout.roll)):
        if i != -1:
            names[i] = n
    names[layout.jaw] = "jaw"
    for k in range(layout.num_expressions):
        names[layout.count_pose + k] = f"exp{k}"
    return names


def parse_gains(items, layout: pose.PoseLayout = pose.VOXCELEB) -> tuple[float, ...] | None:
    """`--gains`: either D numbers, or NAME=VALUE items with NAME among yaw, pitch, roll, jaw, exp0.., `pose` (the
    angles), `exp` (every expression) or `all`."""
    if not items:
        return None
    d = layout.num_directions
    names = direction_names(layout)
    if all("=" not in s for s in items):
        try:
            vals = [float(s) for s in items]
        except ValueError:
            raise UserError(f"--gains {' '.join(items)}: give {d} numbers or NAME=VALUE items") from None
        if len(vals) != d:
            raise UserError(f"--gains: {len(vals)} numbers given, {d} needed ({', '.join(names)})")
        return tuple(vals)
    g = np.ones(d)
    for s in items:
        name, _, val = s.partition("=")
        try:
            v = float(val)
        except ValueError:
            raise UserError(f"--gains {s!r}: the value is not a number") from None
        if name == "all":
            g[:] = v
        elif name == "pose":
            g[list(layout.angle_dirs)] = v
        elif name == "exp":
            g[layout.count_pose :] = v
        elif name in names:
            g[names.index(name)] = v
        else:
            raise UserError(f"--gains {s!r}: unknown name {name!r}; use all, pose, exp or one of {', '.join(names)}")
    return tuple(float(x) for x in g)


def smooth_p(p: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing of p(t) [T, D] over time (σ frames, edge padding); σ = 0 returns p unchanged."""
    if sigma <= 0 or len(p) < 2:
        return p
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(p.astype(np.float64), ((r, r), (0, 0)), mode="edge")
    out = np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(p.shape[1])], 1)
    return out.astype(p.dtype)


def component_mask(component: str, layout: pose.PoseLayout = pose.VOXCELEB) -> np.ndarray:
    m = np.ones(layout.num_directions, np.float32)
    if component == "pose":
        m[layout.count_pose - 1 :] = 0  # yaw, pitch, roll only (the jaw counts as expression)
    elif component == "expression":
        m[list(layout.angle_dirs)] = 0
    return m


def motion_delta(p_src, p_drv, units: pose.ShiftUnits, layout: pose.PoseLayout, opts: MotionOptions) -> np.ndarray:
    """Δp [T, D] (shift units) of driving p(t) [T, D] for a source p [D] (see the module doc)."""
    p_drv = smooth_p(np.asarray(p_drv, np.float32), opts.sigma)
    ref = np.asarray(p_src, np.float32)[None] if opts.mode == "absolute" else p_drv[:1]
    dp = pose.make_shift(ref, p_drv, units, layout)  # float64 on the host, as the authors' make_shift
    if opts.gains is not None:
        dp = dp * np.asarray(opts.gains, np.float32)
    return (dp * component_mask(opts.component, layout)).astype(np.float32)


def hold_missing(p: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Frames without a face keep the previous frame's p; frames before the first face take the first face's p."""
    if not valid.any():
        raise UserError("no face was found in any driving frame")
    p = p.copy()
    first = int(np.argmax(valid))
    p[:first] = p[first]
    for i in range(first + 1, len(p)):
        if not valid[i]:
            p[i] = p[i - 1]
    return p


def save_motion(path, p: np.ndarray, valid: np.ndarray, fps: float, layout_name: str = "voxceleb") -> None:
    buf = io.BytesIO()
    np.savez(buf, p=p.astype(np.float32), valid=valid.astype(bool), fps=np.float64(fps), layout=layout_name,
             names=np.asarray(direction_names(pose.LAYOUTS[layout_name])))  # fmt: skip
    atomic_write_bytes(path, buf.getvalue())


def load_motion(path, layout: pose.PoseLayout = pose.VOXCELEB):
    """(p [T, D], valid [T], fps) of a `--export-motion` file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"--motion {path}: no such file (write one with --export-motion)")
    try:
        with np.load(path, allow_pickle=False) as z:
            p, valid, fps = np.asarray(z["p"], np.float32), np.asarray(z["valid"], bool), float(z["fps"])
    except (KeyError, ValueError, OSError) as e:
        raise UserError(f"--motion {path}: not a motion file written by --export-motion ({str(e)[:100]})") from None
    if p.ndim != 2 or p.shape[1] != layout.num_directions or valid.shape != (len(p),) or len(p) == 0:
        raise UserError(f"--motion {path}: p has shape {p.shape}, expected [T, {layout.num_directions}]")
    if not np.all(np.isfinite(p)) or not fps > 0:
        raise UserError(f"--motion {path}: p has non-finite values or fps {fps} is not positive")
    return p, valid, fps
