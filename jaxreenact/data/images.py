"""Image files and folders: read as RGB uint8 [H, W, 3] (PIL, EXIF orientation applied as `cv2.imread` does),
write PNG atomically."""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _check_file(path: pathlib.Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such {what} file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected {'an' if what[:1] in 'aeiou' else 'a'} {what} file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: cannot read this {what} file (permission denied)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the {what} file is empty")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> RGB uint8 [H, W, 3] (grey, palette and alpha images are converted to RGB)."""
    path = pathlib.Path(path)
    _check_file(path, "image")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")).copy()
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file PIL can read (expected {', '.join(IMAGE_EXTS)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: corrupt or truncated image ({str(e).splitlines()[0][:120]})") from None


def list_images(folder: str | os.PathLike) -> list[pathlib.Path]:
    """The image files of a folder (not recursive), sorted by name."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    except PermissionError:
        raise UserError(f"{folder}: cannot list this folder (permission denied)") from None
    return files


def encode_png(image: np.ndarray) -> bytes:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 HW or HWC image, got {img.dtype} {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 image as PNG through a temporary file and an atomic rename (no half-written files)."""
    atomic_write_bytes(path, encode_png(image))
