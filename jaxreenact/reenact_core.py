"""Reenactment of a real face by a driving video: the library behind `python -m jaxreenact.reenact` (METHOD.md 7.2).

Pipeline (`run`):
1. Every converted checkpoint the run needs is checked first; one message lists every missing path and the
   converter command that makes it (`check_weight_paths`).
2. Source (a photo, or the first frame of a video): S3FD → FAN → the authors' square crop to 256² (the shared
   preprocessing, `jaxreenact.face.pipeline`). No face in the source is a clear error.
3. Inversion: e4e on the crop → W+ [1, 14, 512] (no latent_avg, as the authors), then generator tuning (PTI-like,
   `jaxreenact.tuning`, on by default as in the authors' `run_inference.py`; `--no-tune` skips it). The tuned
   generator is a new set of variables; the loaded one is left as it is.
4. p of the source and of every driving frame: DECA on the 256² crop (`method.deca_encode`), batched under jit.
   DECA's crop box: the authors' DECA `TestData` runs FAN again on the 256² crop and boxes its 68 landmarks. We
   reuse the FAN landmarks the preprocessor already found on the working frame, mapped into the 256² crop (the same
   network on the same face, so the same box up to FAN's resampling, at half the face-network cost).
5. Δp per driving frame (`motion_delta`), A, W+ rows 0-7 shifted, the (tuned) generator with ψ = 0.7 after the
   shift, batched under jit (fixed batch size, the last batch padded, so one compilation serves the video).
6. `reenacted.mp4` at the driving frame rate with the driving audio, `grid.mp4` (source | driving | reenacted),
   optional PNG frames, `summary.json`.

Motion modes (`MotionOptions`):
* `absolute` (the authors'): Δp(t) = units(p_t) − units(p_source). Same code path for self and cross reenactment.
* `relative`: Δp(t) = units(p_t) − units(p_first): the driving motion relative to its first frame, added to the
  source's own pose and expression. A constant driving video gives Δp = 0 for every frame, i.e. every output frame is
  G(ψ-truncated w + A(0)) (`source_dp0.png`). Note A(0) is A's bias, which the authors' A has (METHOD.md 2.1), so
  "Δp = 0" is not the plain inversion G(w) (`source_inverted.png`), only close to it.
* per-component gains (multiply Δp), `pose` only (yaw, pitch, roll) or `expression` only (jaw + expressions) masks;
* temporal smoothing of p(t): a centred Gaussian of `smooth` frames (σ), edge-padded, on the raw p before Δp; off
  by default in `absolute` (parity with the authors), σ = 1 frame by default in `relative`.
A driving frame without a face keeps the previous frame's p (the frames before the first face take the first
face's p), and is listed in the summary; no face in any driving frame is an error.

`--export-motion m.npz` writes the driving p(t) (raw DECA units, held, unsmoothed), a validity mask and the fps;
`--motion m.npz` replays it on any source in place of a driving video (mode, gains, masks and smoothing apply as for a
video), so an export and its replay on the same source give the same frames.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact import directions, method
from jaxreenact.checkpointing import atomic_write_bytes
from jaxreenact.errors import UserError
from jaxreenact.face import deca_crop, pose
from jaxreenact.face.pipeline import Located

# Converted checkpoints the programs read, with their defaults (relative to the working directory).
DEFAULT_WEIGHTS = {
    "generator": "weights/stylegan2-voxceleb",
    "e4e": "weights/e4e-voxceleb",
    "deca": "weights/deca",
    "A": "weights/A",
    "lpips": "weights/lpips",
    "sfd": "weights/sfd",
    "fan": "weights/fan",
}
CONVERT = {
    **method.CONVERT,
    "A": "python -m converters.direction_matrix A_matrix.pt {dst}",
}
FLAGS = {"generator": "--generator", "e4e": "--e4e", "deca": "--deca", "A": "--A", "lpips": "--lpips", "sfd": "--sfd",
         "fan": "--fan"}  # fmt: skip
TRUNCATION = 0.7
SIZE = 256
MODES = ("absolute", "relative")
COMPONENTS = ("all", "pose", "expression")


def check_weight_paths(paths: dict[str, str]) -> None:
    """One `UserError` listing every missing converted checkpoint of `paths` ({name: path}) and its command."""
    missing = []
    for name, path in paths.items():
        if not path or not pathlib.Path(path).exists():
            missing.append(f"  {FLAGS.get(name, name)} {path}: make it with `{CONVERT[name].format(dst=path)}`")
    if missing:
        raise UserError(
            "missing converted weights (convert the authors' files with our converters, see README; "
            "or pass --tiny for random test networks):\n" + "\n".join(missing)
        )


# ----------------------------------------------------------------------------------------------- models
@dataclasses.dataclass
class Models:
    """The networks of a reenactment/editing run: static modules in `nets` and `a`, arrays in `frozen`/`a_params`."""

    nets: method.Networks
    frozen: dict  # "g", "deca", "e4e", "lpips" (those loaded)
    a: directions.DirectionMatrix
    a_params: dict
    layout: pose.PoseLayout
    units: pose.ShiftUnits


def load_models(paths: dict[str, str], tiny: bool = False, seed: int = 0, dataset: str = "voxceleb") -> Models:
    """Load the converted checkpoints named in `paths` (keys among generator, e4e, deca, A, lpips), or random tiny
    networks (`jaxreenact.tiny`) when `tiny` (tests and demos only)."""
    layout = pose.LAYOUTS[dataset]
    units = pose.shift_units(pose.load_ranges(pose.default_ranges_path(dataset)), layout)
    if tiny:
        from jaxreenact import tiny as tiny_lib

        nets, frozen = tiny_lib.networks(seed, with_e4e=True)
        a = directions.DirectionMatrix(layout.num_directions, 8, nets.g.style_dim)
        a_params = a.init(jax.random.key(seed + 7), jnp.zeros((1, a.input_dim), jnp.float32))
        return Models(nets, frozen, a, a_params, layout, units)
    check_weight_paths(paths)
    mods, frozen = load_converted(paths)
    a, a_params = mods.pop("A"), frozen.pop("A")
    if a.input_dim != layout.num_directions:
        raise UserError(f"--A {paths['A']}: A has {a.input_dim} directions, the {dataset} layout needs "
                        f"{layout.num_directions}")  # fmt: skip
    nets = method.Networks(g=mods["g"], deca=mods.get("deca"), arcface=None, lpips=mods.get("lpips"),
                           e4e=mods.get("e4e"))  # fmt: skip
    return Models(nets, frozen, a, a_params, layout, units)


def load_converted(paths: dict[str, str]) -> tuple[dict, dict]:
    """({key: module}, {key: variables}) of the converted checkpoints in `paths` ({name: path}, names among
    generator, e4e, deca, lpips, A; keys g, e4e, deca, lpips, A); a file holding another network is a `UserError`."""
    from jaxreenact import weights
    from jaxreenact.models import deca as deca_lib
    from jaxreenact.models import e4e as e4e_lib
    from jaxreenact.models import lpips as lpips_lib
    from jaxreenact.models import stylegan2

    kinds = {
        "generator": ("g", stylegan2.Generator),
        "e4e": ("e4e", e4e_lib.Encoder4Editing),
        "deca": ("deca", deca_lib.DECA),
        "lpips": ("lpips", lpips_lib.LPIPS),
        "A": ("A", directions.DirectionMatrix),
    }
    mods, frozen = {}, {}
    for name, path in paths.items():
        if name not in kinds:
            continue
        key, cls = kinds[name]
        m, v = weights.load(path)
        if not isinstance(m, cls):
            raise UserError(
                f"{FLAGS[name]} {path}: holds a converted {type(m).__name__}, not a {cls.__name__} "
                f"(make it with `{CONVERT[name].format(dst=path)}`)"
            )
        mods[key], frozen[key] = m, v
    return mods, frozen


class FixedLocate:
    """A stand-in for S3FD + FAN (tests and demos only): one confident face per frame whose 68 landmarks are a
    fixed point cloud in the middle of the frame. Frames whose call index is in `missing` have no face."""

    def __init__(self, missing=()):
        self.missing = set(missing)
        self.calls = 0

    def __call__(self, images):
        out = []
        for img in images:
            h, w = img.shape[:2]
            if self.calls in self.missing:
                out.append(Located(np.zeros((0, 5), np.float32), 0, None, None))
            else:
                u = np.random.default_rng(0).uniform(0, 1, (68, 2))
                pts = np.stack([w * (0.42 + 0.16 * u[:, 0]), h * (0.35 + 0.3 * u[:, 1])], 1).astype(np.float32)
                box = np.array([w * 0.4, h * 0.32, w * 0.6, h * 0.68, 0.999], np.float32)
                out.append(Located(box[None], 1, box, pts))
            self.calls += 1
        return out


def build_preprocessor(paths: dict[str, str], tiny: bool = False, locate=None):
    """The shared face preprocessor (S3FD + FAN + crop) on the converted checkpoints, or an injected `locate`
    (`FixedLocate` with --tiny)."""
    from jaxreenact.data import preprocessing

    if locate is None and tiny:
        locate = FixedLocate()
    return preprocessing.build_preprocessor(paths.get("sfd"), paths.get("fan"), on_missing="skip", locate=locate)


# ----------------------------------------------------------------------------------------------- jitted pieces
def crop_landmarks(result) -> np.ndarray:
    """A `FrameResult`'s landmarks (working-image pixels) mapped into its 256² crop (pixel centres kept)."""
    x1, y1, x2, y2 = result.crop_box
    s = SIZE / float(x2 - x1)
    return (np.asarray(result.landmarks, np.float64) - [x1, y1] + 0.5) * s - 0.5


def to_float(images_u8) -> jax.Array:
    return jnp.asarray(images_u8, jnp.float32) / 127.5 - 1.0


@functools.partial(jax.jit, static_argnames=("nets", "layout"))
def _p_of(nets, deca_vars, images, theta, layout):
    codes = method.deca_encode(nets, {"deca": deca_vars}, images, theta)
    return pose.params_to_p(codes, layout)


def p_of_crops(models: Models, crops_u8: np.ndarray, theta: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Raw p [N, D] of 256² crops (uint8 [N, 256, 256, 3]) with DECA crop matrices theta [N, 3, 3]; padded to
    `batch` rows so one compilation serves every batch."""
    n = len(crops_u8)
    b = batch or n
    out = []
    for lo in range(0, n, b):
        x, t = crops_u8[lo : lo + b], theta[lo : lo + b]
        k = len(x)
        if k < b:
            x = np.concatenate([x, np.repeat(x[-1:], b - k, 0)])
            t = np.concatenate([t, np.repeat(t[-1:], b - k, 0)])
        p = _p_of(models.nets, models.frozen["deca"], to_float(x), jnp.asarray(t), models.layout)
        out.append(np.asarray(p)[:k])
    return np.concatenate(out, 0).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("nets", "a"))
def _render_dp(nets, a, g_vars, a_params, w_src, dp):
    shift = a.apply(a_params, dp)
    w = directions.shift_wplus(jnp.broadcast_to(w_src, (dp.shape[0], *w_src.shape[1:])), shift)
    img = method.render(nets, {"g": g_vars}, w, TRUNCATION)
    return jnp.clip(jnp.rint((img + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def render_dp(models: Models, g_vars, w_src, dp: np.ndarray, batch: int) -> np.ndarray:
    """uint8 frames [N, 256, 256, 3] = G(trunc(w_src + A·Δp)) for Δp [N, D], in padded batches of `batch`."""
    out = []
    for lo in range(0, len(dp), batch):
        d = dp[lo : lo + batch]
        k = len(d)
        if k < batch:
            d = np.concatenate([d, np.zeros((batch - k, d.shape[1]), d.dtype)])
        out.append(np.asarray(_render_dp(models.nets, models.a, g_vars, models.a_params, w_src, jnp.asarray(d)))[:k])
    return np.concatenate(out, 0)


@functools.partial(jax.jit, static_argnames=("nets",))
def _render_w(nets, g_vars, w):
    img = method.render(nets, {"g": g_vars}, w, TRUNCATION)
    return jnp.clip(jnp.rint((img + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames=("e4e",))
def _e4e(e4e, e4e_vars, images):
    return e4e.apply(e4e_vars, images)


# ----------------------------------------------------------------------------------------------- source
@dataclasses.dataclass
class Source:
    path: str
    crop: np.ndarray  # uint8 [256, 256, 3]
    theta: np.ndarray  # [3, 3] DECA crop matrix in crop pixels
    p: np.ndarray  # raw p [D]
    w: np.ndarray  # e4e W+ [1, n_latent, 512]
    g_vars: dict  # the (tuned) generator's variables
    tune_losses: np.ndarray | None = None


def read_source_frame(path) -> np.ndarray:
    """The source image: a photo, or the first frame of a video (as the authors)."""
    from jaxreenact.data import images as images_lib
    from jaxreenact.data import preprocessing
    from jaxreenact.data import video as video_lib

    spec = preprocessing.inspect_input(path)
    if spec.kind == "image":
        return images_lib.read_image(spec.path)
    if spec.kind == "video":
        return next(iter(video_lib.iter_frames(spec.path, max_frames=1)))
    raise UserError(f"{path}: the source must be one image or a video (its first frame is used), not a folder")


def crop_source(path, preprocessor):
    """(crop uint8 [256,256,3], theta [3,3]) of the source's face; `UserError` when there is none."""
    frame = read_source_frame(path)
    preprocessor.reset()
    r = preprocessor([frame])[0]
    if r.crop is None:
        raise UserError(
            f"{path}: no face found in the source image (no detection with confidence > 0.99); "
            "use a photo with one clearly visible face"
        )
    return r.crop, deca_crop.crop_matrix(crop_landmarks(r))


def invert_source(
    models: Models, crop: np.ndarray, tune: bool = True, steps: int = 200, progress: bool = True
) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """e4e → W+ [1, n, 512], then (optionally) generator tuning. Returns (w, generator variables, tune losses)."""
    x = to_float(crop[None])
    w = _e4e(models.nets.e4e, models.frozen["e4e"], x)
    if not tune or steps == 0:
        return np.asarray(w), models.frozen["g"], None
    from jaxreenact import tuning

    r = tuning.tune_generator(
        models.nets.g, models.frozen["g"], models.nets.lpips, models.frozen["lpips"], w, x, steps=steps,
        progress=progress,
    )  # fmt: skip
    return np.asarray(w), r.variables[0], r.losses[0]


def prepare_source(models, preprocessor, path, tune=True, steps=200, progress=True) -> Source:
    crop, theta = crop_source(path, preprocessor)
    p = p_of_crops(models, crop[None], theta[None])[0]
    w, g_vars, losses = invert_source(models, crop, tune, steps, progress)
    return Source(str(path), crop, theta, p, w, g_vars, losses)


# ----------------------------------------------------------------------------------------------- motion
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
    u_drv = np.asarray(pose.to_units(jnp.asarray(p_drv), units, layout))
    if opts.mode == "absolute":
        ref = np.asarray(pose.to_units(jnp.asarray(np.asarray(p_src, np.float32)[None]), units, layout))
    else:
        ref = u_drv[:1]
    dp = u_drv - ref
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
    import io

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


# ----------------------------------------------------------------------------------------------- driving
def letterbox(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A whole frame fitted into size² (black bars): what the grid shows for a driving frame without a face."""
    from PIL import Image

    h, w = frame.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size, 3), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y : y + nh, x : x + nw] = img
    return out


def open_store(path: pathlib.Path, n: int):
    """A uint8 [n, 256, 256, 3] frame array on disk (videos longer than memory allows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(max(n, 1), SIZE, SIZE, 3))


def drive(models, preprocessor, spec, store, batch: int, max_frames=None, progress=True):
    """Preprocess every driving frame, run DECA on the crops. Returns (names, p [T, D] raw (NaN without a face),
    valid [T], statuses, multiple-face names); the displayed driving frames go to `store`."""
    from tqdm import tqdm

    from jaxreenact.data import preprocessing

    preprocessor.reset()
    names, ps, valid, multi = [], [], [], []
    bar = tqdm(total=spec.num_frames, unit="frame", desc="driving: faces + DECA", disable=not progress)
    try:
        for chunk in preprocessing.batches(preprocessing.iter_input(spec, max_frames), batch):
            results = preprocessor([f for _, f in chunk])
            ok = [k for k, r in enumerate(results) if r.crop is not None]
            p = np.full((len(chunk), models.layout.num_directions), np.nan, np.float32)
            if ok:
                crops = np.stack([results[k].crop for k in ok])
                theta = np.stack([deca_crop.crop_matrix(crop_landmarks(results[k])) for k in ok])
                p[ok] = p_of_crops(models, crops, theta, batch)
            for (name, frame), r in zip(chunk, results):
                i = len(names)
                if i < len(store):
                    store[i] = r.crop if r.crop is not None else letterbox(frame)
                names.append(name)
                valid.append(r.crop is not None)
                if r.n_faces > 1:
                    multi.append(name)
            ps.append(p)
            bar.update(len(chunk))
    finally:
        bar.close()
    return names, np.concatenate(ps, 0), np.asarray(valid, bool), multi


# ----------------------------------------------------------------------------------------------- program
@dataclasses.dataclass
class Options:
    source: str
    out: str
    driving: str | None = None
    motion_file: str | None = None
    export_motion: str | None = None
    motion: MotionOptions = dataclasses.field(default_factory=MotionOptions)
    tune: bool = True
    tune_steps: int = 200
    save_frames: bool = False
    batch_size: int = 32
    max_frames: int | None = None
    fps: float = 25.0  # for a folder of driving images
    weights: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    tiny: bool = False
    seed: int = 0
    progress: bool = True


def needed_weights(opts: Options, locate=None) -> dict[str, str]:
    names = ["generator", "e4e", "deca", "A"]
    if opts.tune and opts.tune_steps > 0:
        names.append("lpips")
    if locate is None:
        names += ["sfd", "fan"]
    return {n: opts.weights[n] for n in names}


def run(opts: Options, locate=None) -> dict:
    """The whole reenactment (see the module doc); returns the summary (also written to `out/summary.json`)."""
    from jaxreenact.data import preprocessing
    from jaxreenact.data import video as video_lib
    from jaxreenact.visualize import save_png

    t0 = time.perf_counter()
    if opts.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if (opts.driving is None) == (opts.motion_file is None):
        raise UserError("give either --driving VIDEO_OR_FOLDER or --motion FILE.npz (one of them)")
    paths = needed_weights(opts, locate)
    if not opts.tiny:
        check_weight_paths(paths)  # before any work
    preprocessing.inspect_input(opts.source)  # the source exists and is an image or a video
    spec = preprocessing.inspect_input(opts.driving, opts.max_frames) if opts.driving else None
    motion = load_motion(opts.motion_file) if opts.motion_file else None
    out = pathlib.Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    models = load_models(paths, tiny=opts.tiny, seed=opts.seed)
    pre = build_preprocessor(paths, tiny=opts.tiny, locate=locate)
    src = prepare_source(models, pre, opts.source, opts.tune, opts.tune_steps, opts.progress)
    save_png(out / "source.png", src.crop)
    save_png(out / "source_inverted.png", np.asarray(_render_w(models.nets, src.g_vars, jnp.asarray(src.w)))[0])
    zero = np.zeros((1, models.layout.num_directions), np.float32)
    save_png(out / "source_dp0.png", render_dp(models, src.g_vars, src.w, zero, opts.batch_size)[0])

    work = out / ".work"
    try:
        if spec is not None:
            n_max = spec.num_frames
            drv_store = open_store(work / "driving.npy", n_max)
            names, p_raw, valid, multi = drive(models, pre, spec, drv_store, opts.batch_size, opts.max_frames,
                                               opts.progress)  # fmt: skip
            fps = spec.fps if spec.kind == "video" and spec.fps else opts.fps
            p = hold_missing(p_raw, valid)
            audio = spec.path if spec.kind == "video" and spec.has_audio else None
        else:
            p, valid, fps = motion
            names, multi, drv_store, audio = [f"{i:06d}" for i in range(len(p))], [], None, None
            if opts.max_frames is not None:
                p, valid, names = p[: opts.max_frames], valid[: opts.max_frames], names[: opts.max_frames]
        n = len(names)
        if opts.export_motion:
            save_motion(opts.export_motion, p, valid, fps, "voxceleb")
        dp = motion_delta(src.p, p, models.units, models.layout, opts.motion)

        from tqdm import tqdm

        rec_store = open_store(work / "reenacted.npy", n)
        t_render = time.perf_counter()
        bar = tqdm(total=n, unit="frame", desc="reenact: A + G", disable=not opts.progress)
        try:
            for lo in range(0, n, opts.batch_size):
                rec_store[lo : lo + opts.batch_size] = render_dp(models, src.g_vars, src.w, dp[lo : lo + opts.batch_size],
                                                                 opts.batch_size)  # fmt: skip
                bar.update(min(opts.batch_size, n - lo))
        finally:
            bar.close()
        t_render = time.perf_counter() - t_render

        if opts.save_frames:
            for i in range(n):
                save_png(out / "frames" / f"{i:06d}.png", rec_store[i])
        video_lib.write_video(out / "reenacted.mp4", (rec_store[i] for i in range(n)), fps=fps, audio_from=audio)

        def grid(i):
            cols = [src.crop] + ([drv_store[i]] if drv_store is not None else []) + [rec_store[i]]
            return np.concatenate(cols, axis=1)

        video_lib.write_video(out / "grid.mp4", (grid(i) for i in range(n)), fps=fps, audio_from=audio)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    no_face = [nm for nm, v in zip(names, valid) if not v]
    summary = {
        "source": str(opts.source),
        "driving": str(opts.driving) if opts.driving else None,
        "motion_file": opts.motion_file,
        "frames": n,
        "fps": fps,
        "audio": bool(audio),
        "mode": opts.motion.mode,
        "component": opts.motion.component,
        "gains": list(opts.motion.gains) if opts.motion.gains else None,
        "smooth_sigma_frames": opts.motion.sigma,
        "tuned": bool(src.tune_losses is not None),
        "tune_loss_first_last": None
        if src.tune_losses is None
        else [float(src.tune_losses[0]), float(src.tune_losses[-1])],
        "no_face_frames_held": no_face,
        "multiple_faces": multi,
        "tiny_random_networks": opts.tiny,
        "seconds_total": round(time.perf_counter() - t0, 2),
        "seconds_render": round(t_render, 2),
        "outputs": ["reenacted.mp4", "grid.mp4", "source.png", "source_inverted.png", "source_dp0.png"]
        + (["frames/"] if opts.save_frames else [])
        + ([str(opts.export_motion)] if opts.export_motion else []),
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def format_summary(summary: dict, out: str | os.PathLike) -> str:
    lines = [f"{summary['frames']} frame(s) at {summary['fps']:g} fps, mode {summary['mode']}"
             f"{' (audio kept)' if summary['audio'] else ''}; {summary['seconds_total']} s"]  # fmt: skip
    held = summary["no_face_frames_held"]
    if held:
        shown = ", ".join(held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
        lines.append(f"  {len(held)} driving frame(s) without a face kept the previous frame's pose: {shown}")
    else:
        lines.append("  every driving frame had a face")
    if summary["multiple_faces"]:
        lines.append(
            f"  several faces (the preprocessor's choice was used): {', '.join(summary['multiple_faces'][:10])}"
        )
    if summary["tiny_random_networks"]:
        lines.append("  NOTE: --tiny random networks: the pictures mean nothing (tests and demos only)")
    lines.append(f"wrote {out}/reenacted.mp4, {out}/grid.mp4, {out}/summary.json")
    return "\n".join(lines)
