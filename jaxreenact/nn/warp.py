"""Differentiable image warps with PyTorch/kornia sampling semantics, NHWC.

* `grid_sample_bilinear`: `F.grid_sample(mode='bilinear', padding_mode='zeros', align_corners=...)`.
* `warp_affine_kornia`: kornia 0.4.1 `warp_affine(src, M, dsize)` (defaults bilinear / zeros / align_corners=False).
  Kornia normalises pixel coordinates with 2/(W−1) (corner convention) but then samples with
  `affine_grid`/`grid_sample(align_corners=False)`, so for output pixel j (METHOD.md 3.3):
  x_n = (2j+1)/W_out − 1; x_dst = (x_n+1)(W_out−1)/2; x_src = M⁻¹ x_dst; x_src_n = 2 x_src/(W_in−1) − 1;
  sampled at ((x_src_n+1) W_in − 1)/2 (the same for y).
Gradients flow to the image (not to M, which the callers compute on the host).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp


def _unnormalize(coord, size: int, align_corners: bool):
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def grid_sample_bilinear(img, grid, align_corners: bool = False):
    """img [B,H,W,C], grid [B,Ho,Wo,2] (x, y in [-1, 1]) → [B,Ho,Wo,C]; zeros outside, PyTorch's corner weights."""
    b, h, w, c = img.shape
    ix = _unnormalize(grid[..., 0], w, align_corners)
    iy = _unnormalize(grid[..., 1], h, align_corners)
    return sample_bilinear(img, ix, iy)


def sample_bilinear(img, ix, iy):
    """Bilinear sampling at pixel positions ix, iy [B,Ho,Wo] (pixel centres at integers), zero padding."""
    b, h, w, c = img.shape
    x0, y0 = jnp.floor(ix), jnp.floor(iy)
    x1, y1 = x0 + 1, y0 + 1
    # PyTorch: nw = (x1-ix)(y1-iy), ne = (ix-x0)(y1-iy), sw = (x1-ix)(iy-y0), se = (ix-x0)(iy-y0)
    corners = (
        (x0, y0, (x1 - ix) * (y1 - iy)),
        (x1, y0, (ix - x0) * (y1 - iy)),
        (x0, y1, (x1 - ix) * (iy - y0)),
        (x1, y1, (ix - x0) * (iy - y0)),
    )
    flat = img.reshape(b, h * w, c)
    out = 0.0
    for cx, cy, wt in corners:
        valid = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
        xi = jnp.clip(cx, 0, w - 1).astype(jnp.int32)
        yi = jnp.clip(cy, 0, h - 1).astype(jnp.int32)
        idx = (yi * w + xi).reshape(b, -1, 1)
        val = jnp.take_along_axis(flat, idx, axis=1).reshape(*ix.shape, c)
        out = out + val * jnp.where(valid, wt, 0.0)[..., None]
    return out


def _normal_transform_pixel(h: int, w: int, dtype):
    """kornia `normal_transform_pixel`: pixel → [-1, 1] with 2/(W−1) (corner convention)."""
    return jnp.array([[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0.0, 0.0, 1.0]], dtype)


def kornia_src_norm_from_dst_norm(m, src_hw: Sequence[int], dsize: Sequence[int]):
    """[B,2,3] pixel affine M → [B,3,3] `src_norm_trans_dst_norm` as kornia 0.4.1 builds it."""
    m = jnp.asarray(m)
    dt = m.dtype if jnp.issubdtype(m.dtype, jnp.floating) else jnp.float32
    m = m.astype(dt)
    b = m.shape[0]
    m3 = jnp.concatenate([m[:, :2, :], jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0], dt), (b, 1, 3))], axis=1)
    n_src = _normal_transform_pixel(src_hw[0], src_hw[1], dt)
    n_dst = _normal_transform_pixel(dsize[0], dsize[1], dt)
    dst_norm_src_norm = n_dst @ m3 @ jnp.linalg.inv(n_src)
    return jnp.linalg.inv(dst_norm_src_norm)


def kornia_sample_positions(m, src_hw: Sequence[int], dsize: Sequence[int]):
    """Pixel positions (ix, iy) [B,Ho,Wo] in the source that `warp_affine_kornia` samples."""
    theta = kornia_src_norm_from_dst_norm(m, src_hw, dsize)[:, :2, :]
    ho, wo = dsize
    xs = (2 * jnp.arange(wo, dtype=theta.dtype) + 1) / wo - 1  # affine_grid, align_corners=False
    ys = (2 * jnp.arange(ho, dtype=theta.dtype) + 1) / ho - 1
    gx, gy = jnp.meshgrid(xs, ys)  # [Ho, Wo]
    base = jnp.stack([gx, gy, jnp.ones_like(gx)], axis=-1)  # [Ho,Wo,3]
    grid = jnp.einsum("hwk,bjk->bhwj", base, theta, precision="highest")
    h, w = src_hw
    return _unnormalize(grid[..., 0], w, False), _unnormalize(grid[..., 1], h, False)


def warp_affine_kornia(img, m, dsize: Sequence[int]):
    """kornia 0.4.1 `warp_affine(img, M, dsize)` (bilinear, zeros, align_corners=False); img [B,H,W,C], M [B,2|3,3],
    dsize (h, w) → [B,h,w,C]."""
    ix, iy = kornia_sample_positions(m, img.shape[1:3], dsize)
    return sample_bilinear(img, ix.astype(img.dtype), iy.astype(img.dtype))
