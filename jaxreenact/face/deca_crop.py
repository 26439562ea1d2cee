"""DECA's crop of a face before the encoder (the authors' tensor version of `TestData`, METHOD.md 3.3).

Box = min/max of the 68 landmarks ('kpt68'); `bbox2point`: old_size = (w + h)/2·1.1, centre = box centre;
size = int(old_size·1.25); the similarity maps (c−s/2, c−s/2), (c−s/2, c+s/2), (c+s/2, c−s/2) to (0,0), (0,223),
(223,0) (for this square, skimage's estimate is exactly scale 223/size and a translation); then kornia 0.4.1
`warp_affine(image, theta[:2], (224, 224))` and /255. The box is non-differentiable (host numpy), the warp is
differentiable in the image.

The box is a square with the image's axes, so the warp is separable: output pixel (i, j) reads source rows only
through i and columns only through j. `deca_crop` therefore builds, per image, a [224, H] row matrix and a
[224, W] column matrix of bilinear weights (two non-zeros per row; zero rows outside the image, kornia's zero
padding) and applies them as two matmuls, instead of gathering four corners per pixel: a gather's gradient is a
scatter-add (slow on a TPU, not deterministic on a GPU), a matmul's is a matmul. The matmuls move pixels, so they
run at highest precision whatever the program's policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common import precision
from jaxreenact.nn.warp import kornia_sample_positions, warp_affine_kornia

CROP_SIZE = 224
SCALE = 1.25


def _xp(a):
    """NumPy for host arrays (float64, the authors' numerics), jax.numpy for traced/device arrays (under jit)."""
    return jnp if isinstance(a, jax.Array) else np


def bbox_from_landmarks(lmk68):
    """[..., 68, 2] (x, y) → [..., 4] = (left, top, right, bottom), FAN's `kpt68` box."""
    xp = _xp(lmk68)
    lmk = xp.asarray(lmk68, np.float64 if xp is np else jnp.float32)
    return xp.concatenate([lmk.min(axis=-2), lmk.max(axis=-2)], axis=-1)


def bbox2point(left, right, top, bottom, kind: str = "kpt68"):
    """DECA `bbox2point`: (old_size, centre [.., 2])."""
    xp = _xp(left)
    if kind == "kpt68":
        old = (right - left + bottom - top) / 2 * 1.1
        centre = xp.stack([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0], axis=-1)
    elif kind == "bbox":
        old = (right - left + bottom - top) / 2
        centre = xp.stack([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0 + old * 0.12], axis=-1)
    else:
        raise ValueError(f"unknown box type {kind!r}")
    return old, centre


def crop_matrix_from_box(box, kind: str = "kpt68", scale: float = SCALE, crop_size: int = CROP_SIZE):
    """Boxes [..., 4] = (left, top, right, bottom) → float32 [..., 3, 3] pixel similarity `theta` (source → crop):
    `bbox2point(kind)`, size = int(old_size·scale), the square's corners to (0,0), (0,223), (223,0). NumPy (float64,
    the authors' numerics: their detector hands DECA Python floats) for host arrays; jax.numpy under jit."""
    xp = _xp(box)
    box = xp.asarray(box, np.float64 if xp is np else jnp.float32)
    old, c = bbox2point(box[..., 0], box[..., 2], box[..., 1], box[..., 3], kind)
    size = xp.floor(xp.asarray(old) * scale)  # int(): old_size is positive
    s = (crop_size - 1) / size
    zero, one = xp.zeros_like(s), xp.ones_like(s)
    rows = [
        xp.stack([s, zero, -s * (c[..., 0] - size / 2)], axis=-1),
        xp.stack([zero, s, -s * (c[..., 1] - size / 2)], axis=-1),
        xp.stack([zero, zero, one], axis=-1),
    ]
    return xp.stack(rows, axis=-2).astype(np.float32)


def crop_matrix(lmk68, scale: float = SCALE, crop_size: int = CROP_SIZE):
    """Landmarks [B, 68, 2] (or [68, 2]) → float32 [B, 3, 3] (or [3, 3]) pixel similarity `theta` (source → crop)
    of their `kpt68` box (`crop_matrix_from_box`). NumPy for host arrays; jax.numpy for jax arrays (under jit)."""
    return crop_matrix_from_box(bbox_from_landmarks(lmk68), "kpt68", scale, crop_size)


def _bilinear_matrix(pos, size: int):
    """Sample positions [B, n_out] along one axis (pixel centres at integers) → [B, n_out, size] bilinear weights:
    (1 - f) at floor(pos), f at floor(pos) + 1, nothing for a neighbour outside [0, size - 1] (zero padding)."""
    p0 = jnp.floor(pos)
    f = pos - p0
    idx = jnp.arange(size, dtype=pos.dtype)
    return jnp.where(idx == p0[..., None], (1.0 - f)[..., None], 0.0) + jnp.where(
        idx == (p0 + 1.0)[..., None], f[..., None], 0.0
    )


def interp_matrices(theta, in_hw, out_hw):
    """Per-image separable bilinear matrices of kornia 0.4.1's `warp_affine(·, theta[:2], out_hw)` for an
    axis-aligned `theta` [B, 3, 3] or [B, 2, 3] (scale and translation, as every DECA box):
    (rows [B, out_h, in_h], cols [B, out_w, in_w]) with out[b,i,j] = Σ_y Σ_x rows[b,i,y] cols[b,j,x] img[b,y,x]."""
    theta = jnp.asarray(theta, jnp.float32)[:, :2, :]
    with precision.scope(precision.HIGHEST):  # its 3x3 products place the samples: no bfloat16 pass
        ix, iy = kornia_sample_positions(theta, in_hw, out_hw)  # [B, Ho, Wo] each; x varies along Wo only
    return _bilinear_matrix(iy[:, :, 0], in_hw[0]), _bilinear_matrix(ix[:, 0, :], in_hw[1])


def deca_crop(images, theta, crop_size: int = CROP_SIZE):
    """Warp images [B,H,W,C] with an axis-aligned `theta` [B,3,3] (or [B,2,3]) to float32 [B,crop,crop,C] as
    kornia 0.4.1 does (bilinear, zero padding, no scaling), as two matmuls per image (see the module doc)."""
    rows, cols = interp_matrices(theta, images.shape[1:3], (crop_size, crop_size))
    x = images.astype(jnp.float32)
    hi = jax.lax.Precision.HIGHEST  # pixels, not features: no bfloat16 pass may round them
    y = jnp.einsum("biy,byxc->bixc", rows, x, precision=hi)
    return jnp.einsum("bjx,bixc->bijc", cols, y, precision=hi)


def deca_crop_gather(images, theta, crop_size: int = CROP_SIZE):
    """The same warp as a gather of four corners per pixel (`nn.warp.warp_affine_kornia`); any affine `theta`."""
    with precision.scope(precision.HIGHEST):
        return warp_affine_kornia(images, jnp.asarray(theta)[:, :2, :], (crop_size, crop_size))


def deca_input(images, theta, crop_size: int = CROP_SIZE):
    """Generator images in [-1, 1] → DECA's input in [0, 1]: `torch_range_1_to_255` (clamp, (x+1)/(2+1e-5)·255),
    the kornia warp, then /255, as the authors feed DECA during training."""
    x = (jnp.clip(images, -1.0, 1.0) + 1.0) / (2.0 + 1e-5) * 255.0
    return deca_crop(x, theta, crop_size) / 255.0
