"""The preprocess program's library side: a photo, a video or a folder of images in; 256×256 face crops (PNG),
landmarks and boxes (`faces.npz`) and a summary (`summary.json`) out.

Outputs under `out/`:
* `crops/<name>.png`: one per frame with a crop (`<name>` = the 6-digit frame index for a video, the file stem for
  images);
* `faces.npz`: `names` [N] (str), `status` [N] (`ok` / `held` / `no_face`), `n_faces` [N], `scale` [N] (working
  width / original width), `boxes` [N, 5] (detection box + score, working pixels), `landmarks` [N, 68, 2] (working
  pixels), `landmarks_original` [N, 68, 2] (original pixels), `crop_boxes` [N, 4] (x1, y1, x2, y2; working pixels);
  NaN (or −1 for `crop_boxes`) where a frame has none;
* `summary.json`: counts, the frames without a face, the frames with several confident faces, the settings.
Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import pathlib
from collections.abc import Iterator

import numpy as np

from jaxreenact import weights
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib
from jaxreenact.face.pipeline import FaceLocator, FacePreprocessor, FrameResult, Locate
from jaxreenact.models.fan import FAN
from jaxreenact.models.sfd import S3FD

log = logging.getLogger("jaxreenact.data")


@dataclasses.dataclass
class InputSpec:
    kind: str  # "image" | "video" | "folder"
    path: pathlib.Path
    num_frames: int | None
    fps: float | None = None
    has_audio: bool | None = None
    note: str | None = None  # a video that breaks mid-stream: how many of its frames decode


def inspect_input(path: str | os.PathLike, max_frames: int | None = None) -> InputSpec:
    """What `path` is (photo, video or folder of images) and how many frames it will give."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir():
        files = images_lib.list_images(path)
        if not files:
            raise UserError(f"{path}: the folder holds no image files ({', '.join(images_lib.IMAGE_EXTS)})")
        n = len(files) if max_frames is None else min(len(files), max_frames)
        return InputSpec("folder", path, n)
    ext = path.suffix.lower()
    if ext in images_lib.IMAGE_EXTS:
        return InputSpec("image", path, 1)
    if ext in video_lib.VIDEO_EXTS:
        info = video_lib.probe_video(path)
        n = info.num_frames if max_frames is None else min(info.num_frames, max_frames)
        note = info.broken_note()
        if note:
            log.warning("%s", note)
        return InputSpec("video", path, n, info.fps, info.has_audio, note)
    raise UserError(
        f"{path}: unknown input type {ext or '(no extension)'}; give an image "
        f"({', '.join(images_lib.IMAGE_EXTS)}), a video ({', '.join(video_lib.VIDEO_EXTS)}) or a folder of images"
    )


def iter_input(spec: InputSpec, max_frames: int | None = None, skipped: list | None = None
               ) -> Iterator[tuple[str, np.ndarray]]:  # fmt: skip
    """(name, RGB uint8 frame) pairs of an input. In a folder an unreadable image (empty, truncated, not an image)
    is skipped with a warning and its message appended to `skipped`; a folder with none readable is an error."""
    if spec.kind == "image":
        yield spec.path.stem, images_lib.read_image(spec.path)
    elif spec.kind == "folder":
        n = 0
        files = images_lib.list_images(spec.path)[:max_frames]
        for f in files:
            try:
                frame = images_lib.read_image(f)
            except UserError as e:
                log.warning("skipped %s", e)
                if skipped is not None:
                    skipped.append(str(e))
                continue
            n += 1
            yield f.stem, frame
        if n == 0:
            raise UserError(f"{spec.path}: none of its {len(files)} image file(s) is readable")
    else:
        for i, frame in enumerate(video_lib.iter_frames(spec.path, max_frames=max_frames)):
            yield f"{i:06d}", frame


def batches(it, size: int):
    """Lists of up to `size` consecutive items of `it`."""
    batch = []
    for item in it:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _nan(shape):
    return np.full(shape, np.nan, np.float32)


def save_results(out: pathlib.Path, names: list[str], results: list[FrameResult]) -> None:
    n = len(results)
    boxes, lms, lms_orig = _nan((n, 5)), _nan((n, 68, 2)), _nan((n, 68, 2))
    crop_boxes = np.full((n, 4), -1, np.int64)
    for i, r in enumerate(results):
        if r.box is not None:
            boxes[i] = r.box[:5]
        if r.landmarks is not None:
            lms[i] = r.landmarks
            lms_orig[i] = np.asarray(r.landmarks) / r.scale
        if r.crop_box is not None:
            crop_boxes[i] = r.crop_box
    buf = io.BytesIO()
    np.savez(
        buf,
        names=np.asarray(names, dtype=str),
        status=np.asarray([r.status for r in results], dtype=str),
        n_faces=np.asarray([r.n_faces for r in results], np.int64),
        scale=np.asarray([r.scale for r in results], np.float64),
        boxes=boxes,
        landmarks=lms,
        landmarks_original=lms_orig,
        crop_boxes=crop_boxes,
    )
    atomic_write_bytes(out / "faces.npz", buf.getvalue())


def run(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    preprocessor: FacePreprocessor,
    batch_size: int = 8,
    max_frames: int | None = None,
    progress: bool = True,
    settings: dict | None = None,
    spec: InputSpec | None = None,
) -> dict:
    """Preprocess `input_path` into `out` (see the module doc); returns the summary dict (also in summary.json).
    `spec`: `inspect_input(input_path, max_frames)` when the caller has already checked the input."""
    from tqdm import tqdm

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    spec = spec or inspect_input(input_path, max_frames)
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    try:
        (out / "crops").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot create the output folder ({e.strerror})") from None
    preprocessor.reset()
    names: list[str] = []
    results: list[FrameResult] = []
    unreadable: list[str] = []
    bar = tqdm(total=spec.num_frames, unit="frame", desc=f"preprocess {spec.path.name}", disable=not progress)
    try:
        for batch in batches(iter_input(spec, max_frames, unreadable), batch_size):
            frames = [f for _, f in batch]
            for (name, _), r in zip(batch, preprocessor(frames)):
                if r.crop is not None:
                    images_lib.write_png(out / "crops" / f"{name}.png", r.crop)
                names.append(name)
                results.append(r)
            bar.update(len(batch))
    finally:
        bar.close()
    save_results(out, names, results)
    status = [r.status for r in results]
    summary = {
        "input": str(spec.path),
        "kind": spec.kind,
        "frames": len(results),
        "fps": spec.fps,
        "has_audio": spec.has_audio,
        "ok": status.count("ok"),
        "held": status.count("held"),
        "skipped": status.count("no_face"),
        "no_face": [n for n, s in zip(names, status) if s == "no_face"],
        "held_frames": [n for n, s in zip(names, status) if s == "held"],
        "multiple_faces": [n for n, r in zip(names, results) if r.n_faces > 1],
        "input_note": spec.note,
        "unreadable": unreadable,
        "settings": {
            "on_missing": preprocessor.on_missing,
            "smooth_box": preprocessor.smooth_box,
            "width": preprocessor.width,
            "crop_size": preprocessor.crop_size,
            "batch_size": batch_size,
            **(settings or {}),
        },
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def format_summary(summary: dict, out: str | os.PathLike) -> str:
    """A few human lines for the end of the program."""
    lines = [
        f"{summary['frames']} frame(s): {summary['ok']} cropped, {summary['held']} held (last good box), "
        f"{summary['skipped']} without a face (skipped)"
    ]
    for key, label in (("no_face", "no face"), ("multiple_faces", "several faces (chosen as documented)")):
        items = summary[key]
        if items:
            shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
            lines.append(f"  {label}: {shown}")
    if summary.get("input_note"):
        lines.append(f"  {summary['input_note']}")
    if summary.get("unreadable"):
        lines.append(f"  {len(summary['unreadable'])} unreadable image(s) skipped: {summary['unreadable'][0]}"
                     + (" ..." if len(summary["unreadable"]) > 1 else ""))  # fmt: skip
    lines.append(f"wrote {out}/crops/, {out}/faces.npz, {out}/summary.json")
    return "\n".join(lines)


def build_preprocessor(
    sfd_path,
    fan_path,
    convention: str = "authors",
    choice: str = "last",
    on_missing: str = "skip",
    smooth_box: float = 0.0,
    width: int = 1000,
    locate: Locate | None = None,
) -> FacePreprocessor:
    """A `FacePreprocessor` on converted S3FD / FAN checkpoints (or an injected `locate`)."""
    if locate is None:
        weights.check_paths({"sfd": sfd_path, "fan": fan_path})  # every missing one listed, with its command
        log.info("loading networks: sfd (%s), fan (%s) ...", sfd_path, fan_path)
        sfd = weights.load(sfd_path)
        fan = weights.load(fan_path)
        if not isinstance(sfd[0], S3FD):
            raise UserError(f"{sfd_path}: is a converted {type(sfd[0]).__name__}, not S3FD (python -m converters.sfd)")
        if not isinstance(fan[0], FAN):
            raise UserError(f"{fan_path}: is a converted {type(fan[0]).__name__}, not FAN (python -m converters.fan)")
        locate = FaceLocator(sfd, fan, convention=convention, choice=choice)
    return FacePreprocessor(locate, width=width, on_missing=on_missing, smooth_box=smooth_box)
