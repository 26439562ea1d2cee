"""What an upload is, read from its header before anything decodes it: an image's size (PIL reads only the
header), a video's size, frame rate and duration (the library's probe, without counting frames by decoding), a
`.npy` latent's shape and dtype (NumPy's header parser, and the file's length checked against it). A file over a
cap is refused here, so a 20000×20000 PNG of a few KB or a `.npy` header that asks for terabytes never reaches a
decoder."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxreenact.common.errors import UserError
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib

MAX_LATENT_ROWS = 32  # W+ of a 1024 generator has 18 rows


@dataclasses.dataclass(frozen=True)
class Limits:
    max_pixels: int = 4096 * 4096  # of an image or a video frame
    max_frames: int = 500  # frames a job reads from a driving video (20 s at 25 fps)


@dataclasses.dataclass(frozen=True)
class Header:
    kind: str  # image | video | latent
    size: tuple[int, int] | None = None  # (width, height)
    frames: int | None = None  # estimated from the header: round(duration · fps)
    fps: float | None = None


def _pixels(name: str, w: int, h: int, limits: Limits) -> None:
    if w * h > limits.max_pixels:
        _too_many(name, f"{w}×{h}", limits)


def _too_many(name: str, size: str, limits: Limits):
    side = math.isqrt(limits.max_pixels)
    raise UserError(f"{name}: {size} pixels is more than the app's limit of {limits.max_pixels / 1e6:.1f} megapixels "
                    f"(about {side}×{side}, --max-pixels); scale it down first")  # fmt: skip


def image_header(path: pathlib.Path, name: str, limits: Limits) -> Header:
    try:
        with Image.open(path) as im:  # lazy: reads the header only
            w, h = im.size
    except Image.DecompressionBombError as e:  # PIL's own cap (far above ours) refuses to open it
        n = re.search(r"\((\d+) pixels\)", str(e))
        _too_many(name, n[1] if n else "more than 178 million", limits)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(
            f"{name}: not an image file PIL can read (expected {', '.join(images_lib.IMAGE_EXTS)})"
        ) from None
    _pixels(name, w, h, limits)
    return Header("image", (w, h))


def video_header(path: pathlib.Path, name: str, limits: Limits) -> Header:
    info = video_lib.probe_video(path, count_frames=False)
    _pixels(name, info.width, info.height, limits)
    return Header("video", (info.width, info.height), max(1, info.expected_frames), info.fps)


def latent_header(path: pathlib.Path, name: str) -> Header:
    """A `.npy` W [512] / W+ [n, 512] (optionally with a leading 1), checked from its header: shape, numeric dtype,
    and a file exactly as long as the header says (so nothing is allocated for a forged shape)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=10_000)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as e:
        raise UserError(
            f"{name}: not a .npy array file ({str(e).splitlines()[0][:80]}); save it with np.save"
        ) from None
    dims = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape
    ok = dims == (512,) or (len(dims) == 2 and dims[1] == 512 and 1 <= dims[0] <= MAX_LATENT_ROWS)
    if not ok or dtype.kind not in "fiu" or dtype.hasobject:
        raise UserError(f"{name}: expected a W [512] or W+ [n, 512] float latent (n <= {MAX_LATENT_ROWS}), "
                        f"got shape {shape} of {dtype}")  # fmt: skip
    need = offset + math.prod(shape) * dtype.itemsize
    if path.stat().st_size != need:
        raise UserError(f"{name}: the file is {path.stat().st_size} bytes, its header says {need}: damaged .npy")
    return Header("latent")


def inspect(path: pathlib.Path, name: str, limits: Limits) -> Header:
    """The header of an upload (by its extension), or a `UserError` naming `name` when it is over a cap."""
    ext = path.suffix.lower()
    if ext == ".npy":
        return latent_header(path, name)
    if ext in images_lib.IMAGE_EXTS:
        return image_header(path, name, limits)
    return video_header(path, name, limits)
