"""Reenactment of a real face by a driving video: the library behind `python -m jaxreenact.reenact` (METHOD.md 7.2).

Pipeline (`run`):
1. Every converted checkpoint the run needs is checked first; one message lists every missing path and the
   converter command that makes it.
2. Source (`inference.source`): S3FD → FAN → the authors' square crop to 256², e4e → W+, generator tuning (on by
   default as in the authors' `run_inference.py`; `--no-tune` skips it). No face in the source is a clear error.
3. Driving (`inference.driving`): p of every driving frame, DECA on the 256² crops, batched under jit.
4. Motion (`pose.motion`): Δp per driving frame (absolute or relative, gains, masks, smoothing, held frames).
5. `inference.frames`: A, W+ rows 0-7 shifted, the (tuned) generator with ψ = 0.7 after the shift, batched.
6. `reenacted.mp4` at the driving frame rate with the driving audio, `grid.mp4` (source | driving | reenacted,
   labelled), optional PNG frames, `summary.json`. Each file is written in its own thread (`inference.writer`) as
   the batches of step 5 arrive, so encoding runs beside the device work; the driving frames are decoded in a
   thread ahead of the face networks (`inference.driving`).
7. Paste-back (on by default for a photo source, `paste_back=False` skips it): every reenacted face composited
   into the source's full frame at its own resolution (`face.crop.paste_face`: the inverse of the crop transform,
   a soft face mask, the photo's colour kept by `face.crop.colour_transfer` from the generator's picture of the
   source to its crop) as `pasted.mp4`, with the same frame rate and audio.

A single image as the driving input reenacts one frame. Every input is read and checked before any network loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxreenact.common.cli import check_out_dir
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.common.images import header, save_png
from jaxreenact.data import preprocessing
from jaxreenact.data import video as video_lib
from jaxreenact.face import crop as crop_lib
from jaxreenact.inference import frames
from jaxreenact.inference.driving import drive, open_store
from jaxreenact.inference.source import Source, build_preprocessor, prepare_source, read_source_frame
from jaxreenact.inference.writer import Writer, each
from jaxreenact.pose import motion as motion_lib
from jaxreenact.pose import params as pose
from jaxreenact.weights import check_paths, default_paths, load_bundle

WEIGHT_NAMES = ("generator", "e4e", "deca", "A", "lpips", "sfd", "fan")


@dataclasses.dataclass
class Options:
    source: str
    out: str
    driving: str | None = None
    motion_file: str | None = None
    export_motion: str | None = None
    motion: motion_lib.MotionOptions = dataclasses.field(default_factory=motion_lib.MotionOptions)
    tune: bool = True
    tune_steps: int = 200
    save_frames: bool = False
    batch_size: int = 32
    max_frames: int | None = None
    fps: float = 25.0  # for a folder of driving images
    weights: dict = dataclasses.field(default_factory=lambda: default_paths(WEIGHT_NAMES))
    tiny: bool = False
    seed: int = 0
    progress: bool = True
    paste_back: bool | None = None  # None: on for a photo source, off for a video source


def needed_weights(opts: Options, locate=None) -> dict[str, str]:
    names = ["generator", "e4e", "deca", "A"]
    if opts.tune and opts.tune_steps > 0:
        names.append("lpips")
    if locate is None:
        names += ["sfd", "fan"]
    return {n: opts.weights[n] for n in names}


def run(opts: Options, locate=None, bundle=None, preprocessor=None, source: Source | None = None) -> dict:
    """The whole reenactment (see the module doc); returns the summary (also written to `out/summary.json`).
    A long-lived caller (the web app) passes the networks it loaded once (`bundle` = (Networks, variables)), its
    face `preprocessor` and an already prepared `source` of `opts.source` (with `opts.tune`, `opts.tune_steps`)."""
    t0 = time.perf_counter()
    if opts.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if (opts.driving is None) == (opts.motion_file is None):
        raise UserError("give either --driving VIDEO_OR_FOLDER or --motion FILE.npz (one of them)")
    if opts.max_frames is not None and opts.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {opts.max_frames}")
    # every input read and checked before any network loads
    src_frame = read_source_frame(opts.source)  # a photo, or a video's first frame: decoded here
    spec = preprocessing.inspect_input(opts.driving, opts.max_frames) if opts.driving else None
    motion = motion_lib.load_motion(opts.motion_file) if opts.motion_file else None
    out = check_out_dir(opts.out)
    paths = needed_weights(opts, locate)
    if not opts.tiny:
        check_paths(paths)
    out.mkdir(parents=True, exist_ok=True)

    if bundle is None:
        bundle = load_bundle(
            [n for n in paths if n not in ("sfd", "fan")], paths, tiny_seed=opts.seed if opts.tiny else None
        )
    nets, variables = bundle
    space = pose.pose_space("voxceleb", shift_scale=nets.A.shift_scale)  # the units A was trained in
    if nets.A.input_dim != space.layout.num_directions:
        raise UserError(f"--A {paths['A']}: A has {nets.A.input_dim} directions, the voxceleb layout needs "
                        f"{space.layout.num_directions}")  # fmt: skip
    pre = (
        preprocessor
        if preprocessor is not None
        else build_preprocessor(paths, tiny=opts.tiny, locate=locate, batch=opts.batch_size)
    )
    src = source or prepare_source(nets, variables, space.layout, pre, opts.source, opts.tune, opts.tune_steps,
                                   opts.progress, frame=src_frame)  # fmt: skip
    paste = src.kind == "image" if opts.paste_back is None else bool(opts.paste_back)
    save_png(out / "source.png", src.crop)
    save_png(out / "source_inverted.png", np.asarray(frames.render_w(nets.g, src.g_vars, jnp.asarray(src.w)))[0])
    zero = np.zeros((1, space.layout.num_directions), np.float32)
    dp0 = frames.render_dp(nets, variables, src.g_vars, src.w, zero, opts.batch_size)[0]
    save_png(out / "source_dp0.png", dp0)

    work = out / ".work"
    try:
        if spec is not None:
            n_max = spec.num_frames
            drv_store = open_store(work / "driving.npy", n_max)
            names, p_raw, valid, multi = drive(nets, variables, space.layout, pre, spec, drv_store, opts.batch_size,
                                               opts.max_frames, opts.progress)  # fmt: skip
            fps = spec.fps if spec.kind == "video" and spec.fps else opts.fps
            p = motion_lib.hold_missing(p_raw, valid)
            audio = spec.path if spec.kind == "video" and spec.has_audio else None
        else:
            p, valid, fps = motion
            names, multi, drv_store, audio = [f"{i:06d}" for i in range(len(p))], [], None, None
            if opts.max_frames is not None:
                p, valid, names = p[: opts.max_frames], valid[: opts.max_frames], names[: opts.max_frames]
        n = len(names)
        if opts.export_motion:
            motion_lib.save_motion(opts.export_motion, p, valid, fps, "voxceleb")
        dp = motion_lib.motion_delta(src.p, p, space.units, space.layout, opts.motion)

        rec_store = open_store(work / "reenacted.npy", n)
        labels = ["source"] + (["driving"] if drv_store is not None else []) + ["reenacted"]

        def grid(i):
            cols = [src.crop] + ([drv_store[i]] if drv_store is not None else []) + [rec_store[i]]
            return header(np.concatenate(cols, axis=1), labels)

        # every output is written in its own thread as the frames arrive (host work beside the device work)
        video = lambda name, fr: video_lib.write_video(out / name, fr, fps=fps, audio_from=audio)  # noqa: E731
        writers = [Writer(lambda idx: video("reenacted.mp4", (rec_store[i] for i in idx)), name="reenacted.mp4"),
                   Writer(lambda idx: video("grid.mp4", (grid(i) for i in idx)), name="grid.mp4")]  # fmt: skip
        if opts.save_frames:
            writers.append(Writer(each(lambda i: save_png(out / "frames" / f"{i:06d}.png", rec_store[i]))))
        if paste:
            mask = crop_lib.face_mask(src.crop.shape[0])
            colour = crop_lib.colour_transfer(src.crop, dp0, mask)
            pasted = lambda idx: video("pasted.mp4", (even_sides(crop_lib.paste_face(  # noqa: E731
                src.frame, rec_store[i], src.box, src.work_width, mask, colour)) for i in idx))  # fmt: skip
            writers.append(Writer(pasted, name="pasted.mp4"))
        t_render = time.perf_counter()
        bar = tqdm(total=n, unit="frame", desc="reenact: A + G", disable=not opts.progress)
        try:
            for lo in range(0, n, opts.batch_size):
                rec_store[lo : lo + opts.batch_size] = frames.render_dp(
                    nets, variables, src.g_vars, src.w, dp[lo : lo + opts.batch_size], opts.batch_size
                )
                for i in range(lo, min(n, lo + opts.batch_size)):
                    for w in writers:
                        w.put(i)
                bar.update(min(opts.batch_size, n - lo))
            t_render = time.perf_counter() - t_render
            for w in writers:
                w.close()
            writers = []
        finally:
            bar.close()
            for w in writers:  # after an error: stop the threads before the frame stores go
                w.abort()
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
        "driving_note": spec.note if spec is not None else None,
        "pasted": bool(paste),
        "pasted_size": list(even_sides(src.frame).shape[1::-1]) if paste else None,
        "no_face_frames_held": no_face,
        "multiple_faces": multi,
        "tiny_random_networks": opts.tiny,
        "seconds_total": round(time.perf_counter() - t0, 2),
        "seconds_render": round(t_render, 2),
        "outputs": ["reenacted.mp4", "grid.mp4"]
        + (["pasted.mp4"] if paste else [])
        + ["source.png", "source_inverted.png", "source_dp0.png", "summary.json"]
        + (["frames/"] if opts.save_frames else [])
        + ([str(opts.export_motion)] if opts.export_motion else []),
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def even_sides(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: an odd side gets one edge-replicated row or column."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# What `run` writes into its --out folder (summary["outputs"] lists those of a run, then --export-motion's file).
IN_FOLDER = ("reenacted.mp4", "grid.mp4", "pasted.mp4", "source.png", "source_inverted.png", "source_dp0.png",
             "summary.json", "frames/")  # fmt: skip


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
    if summary.get("driving_note"):
        lines.append(f"  {summary['driving_note']}")
    if summary["tiny_random_networks"]:
        lines.append("  NOTE: --tiny random networks: the pictures mean nothing (tests and demos only)")
    size = "x".join(map(str, summary.get("pasted_size") or ()))
    named = [f"{o} (pasted into the source frame, {size})" if o == "pasted.mp4" else o for o in summary["outputs"]]
    inside = [o for o, raw in zip(named, summary["outputs"]) if raw in IN_FOLDER]
    outside = [o for o in summary["outputs"] if o not in IN_FOLDER]  # --export-motion's file, wherever it is
    lines.append(f"wrote {out}/: {', '.join(inside)}" + (f"; and {', '.join(outside)}" if outside else ""))
    return "\n".join(lines)
