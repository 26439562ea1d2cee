"""Image range conversions (the one place for them), labelled grids and PNG files.

Inside the library images are float NHWC RGB in [-1, 1]; uint8 [0, 255] exists only at file I/O and for display.
"""

from __future__ import annotations

import io
import math
import os

import jax.numpy as jnp
import numpy as np

from jaxreenact.common.files import atomic_write_bytes


def from_uint8(images_u8):
    """uint8 [0, 255] -> float32 [-1, 1] (jax array; `u8 / 127.5 - 1`, bit-identical to the authors' three paths)."""
    return jnp.asarray(images_u8, jnp.float32) / 127.5 - 1.0


def to_uint8_jax(images):
    """float [-1, 1] -> uint8, clipped and rounded, inside jit."""
    return jnp.clip(jnp.rint((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] (any float dtype) -> uint8 in [0, 255], clipped and rounded."""
    x = np.asarray(images, np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile images [N, H, W, C] in [-1, 1] (or uint8) into one uint8 image, `nrow` images per row.

    nrow defaults to ceil(sqrt(N)); `padding` pixels of `pad_value` separate and surround the tiles.
    Returns [rows*(H+p)+p, nrow*(W+p)+p, C] uint8 (C = 1 or 3; a missing channel axis is added).
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"make_grid expects images [N, H, W, C], got shape {x.shape}")
    u8 = x if x.dtype == np.uint8 else to_uint8(x)
    n, h, w, c = u8.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    p = padding
    grid = np.full((rows * (h + p) + p, nrow * (w + p) + p, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[p + r * (h + p) : p + r * (h + p) + h, p + q * (w + p) : p + q * (w + p) + w] = u8[i]
    return grid


def save_png(path: str | os.PathLike, image_u8) -> None:
    """Write a uint8 image [H, W], [H, W, 1] or [H, W, 3] as PNG, atomically (temporary file + rename)."""
    from PIL import Image

    a = np.asarray(image_u8)
    if a.dtype != np.uint8:
        raise ValueError(f"save_png expects uint8, got {a.dtype}; use make_grid/to_uint8 first")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
