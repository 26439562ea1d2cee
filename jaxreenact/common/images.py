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


# ------------------------------------------------------------------------------------------------- labels
def _font():
    """PIL's built-in bitmap font (latin-1, 6×11 px a character; shipped inside Pillow, nothing is downloaded)."""
    from PIL import ImageFont

    load = getattr(ImageFont, "load_default_imagefont", None)
    return load() if load is not None else ImageFont.load_default()


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The text drawn in the bitmap font as a uint8 mask [h, w] (255 = ink), enlarged `scale` times (nearest)."""
    from PIL import Image, ImageDraw

    text = str(text).encode("latin-1", "replace").decode("latin-1")
    font = _font()
    x0, y0, x1, y1 = font.getbbox(text) if text else (0, 0, 0, 11)
    im = Image.new("L", (max(1, x1 - x0), max(1, y1)), 0)
    ImageDraw.Draw(im).text((-x0, 0), text, fill=255, font=font)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return np.asarray(im)


def label_scale(tile_width: int) -> int:
    """Text size for tiles of this width: 1 under 192 px, 2 for the 256-px faces, more for larger ones."""
    return max(1, int(tile_width) // 128)


def band_height(scale: int) -> int:
    return 2 * ((11 * scale + 4 * scale) // 2)  # even, so video frames keep even sides


def _draw_centred(canvas: np.ndarray, text: str, cx: float, cy: float, scale: int, max_width: int) -> None:
    m = text_mask(text, scale)
    while m.shape[1] > max_width and len(text) > 1:  # too long for its tile: cut with an ellipsis
        text = text[: max(1, len(text) - 2)].rstrip() + "~"
        m = text_mask(text, scale)
    h, w = m.shape
    x, y = int(round(cx - w / 2)), int(round(cy - h / 2))
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(canvas.shape[1], x + w), min(canvas.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    ink = m[y0 - y : y1 - y, x0 - x : x1 - x, None].astype(np.float32) / 255.0
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.rint(region * (1 - ink) + 255.0 * ink).astype(np.uint8)


def header(image, labels, scale: int | None = None) -> np.ndarray:
    """A black band on top of a uint8 image [H, W, C] with `labels` centred over equal-width columns
    (e.g. source | driving | reenacted of a side-by-side frame). Returns [H + band, W, C] uint8."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = to_uint8(img)
    labels = list(labels)
    col = img.shape[1] / max(1, len(labels))
    scale = scale or label_scale(col)
    band = np.zeros((band_height(scale), img.shape[1], img.shape[2]), np.uint8)
    for k, text in enumerate(labels):
        _draw_centred(band, text, (k + 0.5) * col, band.shape[0] / 2, scale, int(col) - 2)
    return np.concatenate([band, img], axis=0)


def labelled_grid(images, nrow: int | None = None, col_labels=None, row_labels=None, tile_labels=None,
                  padding: int = 2, pad_value: int = 0) -> np.ndarray:  # fmt: skip
    """`make_grid` with labels: `tile_labels` (one per image, in a band above each tile), `col_labels` (one per
    column, in a band above the grid) and `row_labels` (one per row, in a column at the left). Labels use PIL's
    bitmap font, white on the grid's background. Returns uint8 [H', W', C]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    u8 = x if x.dtype == np.uint8 else to_uint8(x)
    n, h, w, c = u8.shape
    scale = label_scale(w)
    if tile_labels is not None:
        if len(tile_labels) != n:
            raise ValueError(f"{len(tile_labels)} tile labels for {n} images")
        u8 = np.stack([header(t, [lab], scale) for t, lab in zip(u8, tile_labels)])
    grid = make_grid(u8, nrow, padding, pad_value)
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    th, p = u8.shape[1], padding
    if col_labels is not None:
        band = np.full((band_height(scale), grid.shape[1], grid.shape[2]), pad_value, np.uint8)
        for q, text in enumerate(list(col_labels)[:nrow]):
            _draw_centred(band, text, p + q * (w + p) + w / 2, band.shape[0] / 2, scale, w)
        grid = np.concatenate([band, grid], axis=0)
    if row_labels is not None:
        rows = math.ceil(n / nrow)
        texts = list(row_labels)[:rows]
        width = max([text_mask(t, scale).shape[1] for t in texts] + [1]) + 4 * scale
        left = np.full((grid.shape[0], width, grid.shape[2]), pad_value, np.uint8)
        top = grid.shape[0] - (rows * (th + p) + p)
        for r, text in enumerate(texts):
            _draw_centred(left, text, width / 2, top + p + r * (th + p) + th / 2, scale, width)
        grid = np.concatenate([left, grid], axis=1)
    return grid
