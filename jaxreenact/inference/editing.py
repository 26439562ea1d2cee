"""Moving a face along one learned direction at a time: the library behind `python -m jaxreenact.edit`
(the authors' `run_facial_editing.py`, METHOD.md 7.3).

* Source: a photo (S3FD → FAN → the authors' crop → e4e, then generator tuning only with `tune=True`: `--tune`,
  off by default as in the authors' `run_facial_editing.py`), or a `.npy`
  latent, W [512] or W+ [14, 512] / [1, 14, 512], used as it is (no face needed).
* The source's own value of each direction (`start`, in shift units, as the authors' `get_direction_info`):
  DECA's p of the source crop through `pose.to_units`. For a latent source there is no photo, so DECA reads the
  rendered G(trunc(w)) with the fixed 68-landmark box of the authors' framing (`pose.deca.fixed_deca_theta`).
* Steps (`shift_sequence`, the authors' `interpolate`), in A's own units (`DirectionMatrix.shift_scale`, 6 for the
  authors' A): step = 6/10 = 0.6 shift units,
  ``concat(arange(-6 - start, start, 0.6), arange(start, 6 - start + 1e-5, 0.6))``. The authors split the sweep at
  `start`, not at 0, so the second half starts at Δ = start (and the first half stops one step short of it); we keep
  that quirk for parity: with start = 0 it is the plain sweep -6, -5.4, ..., 6 (21 frames). The frame at the step
  Δ = start is therefore not the source as inverted: it is the source moved by its own value once more (about
  2·start in absolute terms), and Δ = 0 is among the steps only when 6 + start is a multiple of 0.6. Each step renders
  G(trunc(w + A·(shift·e_d))) with ψ = 0.7, as the reenactment does; Δ = 0 is G(trunc(w + A(0))) (A's bias).
* Outputs per direction d: ``<d>_<name>.gif`` and ``.mp4`` of [source | edited] frames (256×512 under a label band:
  "source" and the direction's name with the step's shift) at 20 fps in both files (a GIF's frame delay is a whole
  number of hundredths of a second, so the authors' 15 fps cannot be exact in a GIF; 20 fps, 5/100 s, is), PNG
  frames under ``images/<d>_<name>/`` on request, and ``contact_sheet.png``: a row per direction (labelled with its
  index and name), 7 evenly spaced steps, each tile labelled with its shift.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib

import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm import tqdm

from jaxreenact.common.cli import check_out_dir
from jaxreenact.common.constants import SHIFT_SCALE
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes, read_npy
from jaxreenact.common.images import header, labelled_grid, save_png
from jaxreenact.data import video as video_lib
from jaxreenact.inference import frames as frames_lib
from jaxreenact.inference.source import build_preprocessor, prepare_source, read_source_frame
from jaxreenact.inference.writer import Writer, each
from jaxreenact.pose import params as pose
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.pose.motion import direction_names
from jaxreenact.weights import check_paths, default_paths, load_bundle

SHIFTS_COUNT = 10
FPS = 20  # exact in a GIF (5/100 s a frame) and in the MP4
SHEET_COLUMNS = 7
WEIGHT_NAMES = ("generator", "deca", "A", "e4e", "lpips", "sfd", "fan")


def shift_sequence(start: float, scale: float = SHIFT_SCALE, count: int = SHIFTS_COUNT) -> np.ndarray:
    """The authors' sweep of one direction (shift units) for a source at `start` (see the module doc)."""
    step = scale / count
    lo, hi = -scale - start, scale - start + 1e-5
    return np.concatenate([np.arange(lo, start, step), np.arange(start, hi, step)]).astype(np.float32)


def check_directions(dirs, layout: pose.PoseLayout = pose.VOXCELEB) -> list[int]:
    names = direction_names(layout)
    bad = [d for d in dirs if not 0 <= d < len(names)]
    if bad or not dirs:
        listing = ", ".join(f"{i} {n}" for i, n in enumerate(names))
        raise UserError(f"--directions {' '.join(map(str, dirs)) or '(none)'}: use indices 0..{len(names) - 1} "
                        f"({listing})")  # fmt: skip
    return list(dict.fromkeys(dirs))


def read_latent(path: pathlib.Path) -> np.ndarray:
    """A `.npy` latent read and checked without any network: a plain finite float array W [512] / [1, 512] or
    W+ [n, 512] / [1, n, 512] (never unpickled). Returns it as float32 [n or 1, 512]."""
    a = read_npy(path, "--source", "latent")
    shape = a.shape
    a = a.reshape(a.shape[1:]) if a.ndim == 3 and a.shape[0] == 1 else a
    a = a.reshape(1, 512) if a.shape == (512,) else a
    if a.ndim != 2 or a.shape[1] != 512:
        raise UserError(f"--source {path}: expected a W [512] or W+ [n, 512] latent, got shape {shape}")
    if not np.all(np.isfinite(a)):
        raise UserError(f"--source {path}: the latent has {int(np.sum(~np.isfinite(a)))} NaN/inf value(s)")
    return a.astype(np.float32)


def load_latent_source(path: pathlib.Path, n_latent: int, a: np.ndarray | None = None) -> np.ndarray:
    """A `.npy` W [512] or W+ [n, 512] ([1, n, 512]) as W+ [1, n, 512] float32; `UserError` when unusable."""
    a = read_latent(path) if a is None else a
    if a.shape[0] == 1:
        a = np.repeat(a, n_latent, 0)
    if a.shape != (n_latent, 512):
        raise UserError(f"--source {path}: a W+ latent of {a.shape[0]} rows; this generator needs W [512] or "
                        f"W+ [{n_latent}, 512]")  # fmt: skip
    return a[None]


def latent_source_parts(nets, variables, layout: pose.PoseLayout, path, latent: np.ndarray | None = None) -> tuple:
    """(w, generator variables, p, shown image) of a `.npy` latent source: W+ as given (`latent`: the file already
    read and checked), the loaded generator, and DECA's p of the rendered G(trunc(w)) read with the fixed
    68-landmark box (see the module doc)."""
    w = load_latent_source(pathlib.Path(path), nets.g.n_latent, latent)
    g_vars = variables["g"]
    shown = np.asarray(frames_lib.render_w(nets.g, g_vars, jnp.asarray(w)))[0]
    p = frames_lib.p_of_crops(nets, variables, layout, shown[None], fixed_deca_theta(1))[0]
    return w, g_vars, p, shown


def start_units(p: np.ndarray, space: pose.PoseSpace) -> np.ndarray:
    """The source's own value of each direction [D], in shift units (`start` of the sweep)."""
    return np.asarray(pose.to_units(jnp.asarray(np.asarray(p)[None]), space.units, space.layout))[0]


def sweep(nets, variables, g_vars, w, shown: np.ndarray, d: int, start: float, batch: int) -> tuple:
    """The sweep of direction `d` for a source at `start`: (shifts [N], edited uint8 [N, 256, 256, 3],
    [shown | edited] frames [N, 256, 512, 3])."""
    shifts = shift_sequence(start, nets.A.shift_scale)
    dp = np.zeros((len(shifts), nets.A.input_dim), np.float32)
    dp[:, d] = shifts
    edited = frames_lib.render_dp(nets, variables, g_vars, w, dp, batch)
    names = direction_names(pose.VOXCELEB) if nets.A.input_dim == 15 else [f"d{i}" for i in range(nets.A.input_dim)]
    frames = [header(np.concatenate([shown, e], axis=1), ["source", f"{names[d]} {s:+.2f}"])
              for e, s in zip(edited, shifts)]  # fmt: skip
    return shifts, edited, frames


@dataclasses.dataclass
class Options:
    source: str
    out: str
    directions: list[int]
    tune: bool = False  # the authors' run_facial_editing.py: --optimize_generator off by default
    tune_steps: int = 200
    save_images: bool = False
    batch_size: int = 16
    weights: dict = dataclasses.field(default_factory=lambda: default_paths(WEIGHT_NAMES))
    tiny: bool = False
    seed: int = 0
    progress: bool = True


def needed_weights(opts: Options, latent_source: bool, locate=None) -> dict[str, str]:
    names = ["generator", "deca", "A"]
    if not latent_source:
        names.append("e4e")
        if opts.tune and opts.tune_steps > 0:
            names.append("lpips")
        if locate is None:
            names += ["sfd", "fan"]
    return {n: opts.weights[n] for n in names}


def gif_bytes(frames: list[np.ndarray], fps: float = FPS) -> bytes:
    """An endlessly looping GIF of RGB uint8 frames."""
    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def run(opts: Options, locate=None) -> dict:
    """Edit the source along each requested direction (see the module doc); returns the summary."""
    src_path = pathlib.Path(opts.source)
    if not src_path.exists():
        raise UserError(f"--source {src_path}: no such file")
    latent_source = src_path.suffix.lower() == ".npy"
    dirs = check_directions(opts.directions)
    # every input read and checked before the networks load
    latent = read_latent(src_path) if latent_source else None
    frame = None if latent_source else read_source_frame(src_path)
    if opts.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {opts.batch_size}")
    out = check_out_dir(opts.out)
    paths = needed_weights(opts, latent_source, locate)
    if not opts.tiny:
        check_paths(paths)

    nets, variables = load_bundle(
        [n for n in paths if n not in ("sfd", "fan")], paths, tiny_seed=opts.seed if opts.tiny else None
    )
    space = pose.pose_space("voxceleb", shift_scale=nets.A.shift_scale)  # the units A was trained in
    if latent_source:
        w, g_vars, p, shown = latent_source_parts(nets, variables, space.layout, src_path, latent)
    else:
        pre = build_preprocessor(paths, opts.tiny, locate, batch=opts.batch_size)
        src = prepare_source(nets, variables, space.layout, pre, src_path, opts.tune, opts.tune_steps, opts.progress,
                             frame=frame)  # fmt: skip
        w, g_vars, p, shown = src.w, src.g_vars, src.p, src.crop
    start_all = start_units(p, space)
    names = direction_names(space.layout)

    out.mkdir(parents=True, exist_ok=True)
    save_png(out / "source.png", shown)
    rows, tile_labels, row_labels, per_dir = [], [], [], {}
    writer = Writer(each(lambda job: job()), depth=8, name="edit-writer")  # files written beside the next sweep
    try:
        for d in tqdm(dirs, desc="edit", unit="direction", disable=not opts.progress):
            tag = f"{d}_{names[d]}"
            shifts, edited, frames = sweep(nets, variables, g_vars, w, shown, d, float(start_all[d]),
                                           opts.batch_size)  # fmt: skip
            writer.put(lambda tag=tag, frames=frames: atomic_write_bytes(out / f"{tag}.gif", gif_bytes(frames, FPS)))
            writer.put(lambda tag=tag, frames=frames: video_lib.write_video(out / f"{tag}.mp4", frames, fps=FPS))
            if opts.save_images:
                for i, e in enumerate(edited):
                    writer.put(lambda p=out / "images" / tag / f"{i:03d}.png", e=e: save_png(p, e))
            cols = np.linspace(0, len(edited) - 1, SHEET_COLUMNS).round().astype(int)
            rows.extend(edited[cols])
            tile_labels += [f"{names[d]} {shifts[k]:+.2f}" for k in cols]
            row_labels.append(f"{d} {names[d]}")
            per_dir[tag] = {"start": round(float(start_all[d]), 4), "frames": len(shifts),
                            "shifts": [round(float(s), 4) for s in shifts]}  # fmt: skip
    except BaseException:
        writer.abort()
        raise
    writer.close()
    sheet = labelled_grid(np.stack(rows), nrow=SHEET_COLUMNS, row_labels=row_labels, tile_labels=tile_labels)
    save_png(out / "contact_sheet.png", sheet)
    summary = {
        "source": str(src_path),
        "latent_source": latent_source,
        "tuned": bool(not latent_source and opts.tune and opts.tune_steps > 0),
        "fps": FPS,
        "directions": per_dir,
        "tiny_random_networks": opts.tiny,
        "outputs": ["source.png"]
        + [f"{t}.{x}" for t in per_dir for x in ("gif", "mp4")]
        + ["contact_sheet.png", "summary.json"]
        + (["images/"] if opts.save_images else []),
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def format_summary(summary: dict, out) -> str:
    lines = [f"edited {summary['source']} along {len(summary['directions'])} direction(s):"]
    for tag, d in summary["directions"].items():
        lines.append(f"  {tag}: start {d['start']:+.2f} shift units, {d['frames']} frames -> {out}/{tag}.gif, .mp4")
    if summary["tiny_random_networks"]:
        lines.append("  NOTE: --tiny random networks: the pictures mean nothing (tests and demos only)")
    lines.append(f"wrote {out}/: {', '.join(summary['outputs'])}")
    return "\n".join(lines)
