"""VoxCeleb-style trees of frames and e4e latents: the layout, scanning, and reading one frame or latent.

Tree layout (METHOD.md 5, as written by the VoxCeleb preprocessing and `python -m jaxreenact.invert`)::

    ROOT/<id>/<video>/frames_cropped/<name>.png                 256x256 RGB crops
    ROOT/<id>/<video>/inversion/latent_codes/<name>.npy         e4e W+ latent, float32 (14, 512) or (1, 14, 512)

A frame and a latent belong together when their file names without extension (stems) are equal. The authors sort
the two lists and pair them by index, which silently mispairs a whole video after one missing file; here every
mismatch is reported (`Skip`) and left out. A frame without latent, a latent without frame, an unreadable image, a
latent of the wrong shape or with non-finite values: each becomes one `Skip(path, kind, reason)` in the build
report, and the build goes on. A root that does not exist or holds no `<id>/<video>/frames_cropped` folder is a
`UserError`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from jaxreenact.common.errors import UserError

LATENT_SHAPE = (14, 512)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
FRAMES_DIR = "frames_cropped"
LATENTS_DIR = os.path.join("inversion", "latent_codes")
DATASET_NAME = "jaxreenact_voxceleb"
VERSION = "1.0.0"
INDEX_FILE = "video_index.npz"
REPORT_FILE = "build_report.json"
BUILD_COMMAND = "python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR --split SPLIT"


# ----------------------------------------------------------------------------------------------------------------
# Scanning the tree


@dataclasses.dataclass(frozen=True)
class Skip:
    """A file (or folder) left out of the dataset: `kind` is a short tag, `reason` a sentence for the user."""

    path: str
    kind: str
    reason: str


@dataclasses.dataclass(frozen=True)
class FrameRecord:
    name: str  # the common stem of the frame and its latent
    image_path: pathlib.Path
    latent_path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    id: str
    video: str
    path: pathlib.Path
    frames: tuple[FrameRecord, ...]

    @property
    def key(self) -> str:
        return f"{self.id}/{self.video}"


@dataclasses.dataclass
class TreeScan:
    root: pathlib.Path
    videos: list[VideoRecord]
    skipped: list[Skip]

    @property
    def num_frames(self) -> int:
        return sum(len(v.frames) for v in self.videos)


def _visible_dirs(path: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def files_by_stem(folder: pathlib.Path, extensions: Sequence[str], skipped: list[Skip]) -> dict[str, pathlib.Path]:
    """{stem: path} of the files in `folder` with one of `extensions`; a stem seen twice is reported and dropped."""
    found: dict[str, list[pathlib.Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions:
            found.setdefault(p.stem, []).append(p)
    out = {}
    for stem, paths in found.items():
        if len(paths) == 1:
            out[stem] = paths[0]
        else:
            for p in paths:
                skipped.append(Skip(str(p), "duplicate_name", f"{len(paths)} files named {stem!r} in {folder}"))
    return out


def find_video_dirs(root: str | os.PathLike) -> list[tuple[str, str, pathlib.Path]]:
    """[(id, video, video_dir)] of every ``root/<id>/<video>/frames_cropped`` folder, sorted; `UserError` if none."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise UserError(
            f"dataset root {root} does not exist or is not a folder: pass the folder that holds "
            f"<id>/<video>/{FRAMES_DIR}/*.png"
        )
    videos = []
    for id_dir in _visible_dirs(root):
        for video_dir in _visible_dirs(id_dir):
            if (video_dir / FRAMES_DIR).is_dir():
                videos.append((id_dir.name, video_dir.name, video_dir))
    if not videos:
        hint = ""
        if (root / FRAMES_DIR).is_dir() or any((d / FRAMES_DIR).is_dir() for d in _visible_dirs(root)):
            hint = " (it looks like a single video or identity folder: pass the folder two levels above frames_cropped)"
        raise UserError(f"dataset root {root} holds no videos: expected {root}/<id>/<video>/{FRAMES_DIR}/*.png{hint}")
    return videos


def scan_tree(root: str | os.PathLike) -> TreeScan:
    """Match frames and latents of a VoxCeleb-style tree by name. Cheap: lists files, reads none.

    Returns the videos (each with its frames that have a latent of the same stem, sorted by name) and the skips
    found so far (frames without latent, latents without frame, duplicate names, videos without any frame or
    without a latent folder). Contents are checked later, by `load_frame`, while building.
    """
    root = pathlib.Path(root)
    skipped: list[Skip] = []
    videos = []
    for id_name, video_name, video_dir in find_video_dirs(root):
        frames = files_by_stem(video_dir / FRAMES_DIR, IMAGE_EXTENSIONS, skipped)
        latent_dir = video_dir / LATENTS_DIR
        if not frames:
            skipped.append(Skip(str(video_dir / FRAMES_DIR), "no_frames", "no .png frames in this folder"))
            continue
        if not latent_dir.is_dir():
            skipped.append(
                Skip(
                    str(latent_dir),
                    "no_latent_folder",
                    f"missing: its {len(frames)} frames have no latents (run `python -m jaxreenact.invert {root}`)",
                )
            )
            continue
        latents = files_by_stem(latent_dir, (".npy",), skipped)
        records = []
        for stem in sorted(frames):
            if stem in latents:
                records.append(FrameRecord(stem, frames[stem], latents[stem]))
            else:
                skipped.append(Skip(str(frames[stem]), "missing_latent", f"no latent {stem}.npy in {latent_dir}"))
        for stem in sorted(set(latents) - set(frames)):
            skipped.append(
                Skip(str(latents[stem]), "missing_frame", f"no frame {stem}.png in {video_dir / FRAMES_DIR}")
            )
        if records:
            videos.append(VideoRecord(id_name, video_name, video_dir, tuple(records)))
    return TreeScan(root, videos, skipped)


def load_latent(path: str | os.PathLike) -> np.ndarray:
    """An e4e latent file as float32 [14, 512] (a leading axis of 1 is squeezed); `UserError` when unusable."""
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # any unreadable file is a user-data problem
        raise UserError(f"unreadable latent: {type(e).__name__}: {e}") from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"latent is not a float array (dtype {getattr(a, 'dtype', type(a))})")
    if a.ndim == len(LATENT_SHAPE) + 1 and a.shape[0] == 1:
        a = a[0]
    if a.shape != LATENT_SHAPE:
        raise UserError(f"latent has shape {tuple(a.shape)}, expected {LATENT_SHAPE} (or (1, 14, 512))")
    if not np.all(np.isfinite(a)):
        raise UserError("latent has NaN or infinite values")
    return np.asarray(a, np.float32)


def load_image(path: str | os.PathLike, image_size: int):
    """A frame for the dataset: PNG bytes as they are when the file already is an RGB PNG of `image_size`²,
    else an RGB PIL image (resized with PIL bilinear, as the authors' Resize). The file is fully decoded either
    way, so a truncated or corrupt file raises `UserError` here."""
    import PIL.Image

    try:
        data = pathlib.Path(path).read_bytes()
        with PIL.Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.format == "PNG" and im.mode == "RGB" and im.size == (image_size, image_size):
                return data
            im = im.convert("RGB")
    except Exception as e:  # truncated/corrupt files raise OSError, SyntaxError, ValueError...
        raise UserError(f"unreadable image: {type(e).__name__}: {e}") from None
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), PIL.Image.BILINEAR)
    return im


def load_frame(record: FrameRecord, image_size: int):
    """(image: PNG bytes or PIL image, latent) of one frame, or a `Skip` saying why it cannot be used."""
    try:
        image = load_image(record.image_path, image_size)
    except UserError as e:
        return Skip(str(record.image_path), "unreadable_frame", str(e))
    try:
        latent = load_latent(record.latent_path)
    except UserError as e:
        return Skip(str(record.latent_path), "bad_latent", str(e))
    return image, latent
