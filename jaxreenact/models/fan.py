"""2D-FAN landmark network (the `face-alignment` package's `FAN(num_modules=4)`, checkpoint
`2DFAN4-11f355bf06.pth.tar`) and the authors' crop / heatmap decoding around it (METHOD.md 7.1, their
`landmarks_estimation.py:get_landmarks` and local `get_preds_fromhm`).

Per face box (x1, y1, x2, y2):
* centre = box centre with y shifted up by 0.12·(y2 − y1); scale = (w + h) / 195 (SFD's reference scale);
* crop (`crop_torch`): with h = 200·scale, the integer corners ul = int(h/256 + c − h/2) (the inverse transform of
  pixel 1) and br = int(h + c − h/2) (pixel 256), `int` truncating toward zero; the crop [ul, br) is copied into a
  zero canvas (parts outside the image stay 0) and resized to 256×256 by bilinear interpolation without
  antialiasing (torchvision's tensor `Resize` of the authors' era = `F.interpolate(bilinear, align_corners=False)`);
  then / 255;
* FAN → the last stack's 68 heatmaps (64×64);
* decoding: argmax (first maximum), +1-based (x, y) with `floor`, a ±0.25 step toward the larger neighbour on each axis
  when the peak is strictly inside (1..62), −0.5;
* back-projection (`transform(..., invert=True)` on the 64 grid): x = p·h/64 + c − h/2, truncated to an integer
  toward zero (`.int()` upstream; `integer=False` keeps the sub-pixel value).

The crop and the decoding run batched under jit (`crop_for_fan`, `decode_heatmaps`); the integer crop corners are
computed on the host in float64 (`crop_corners`).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.nn.torch_layers import BatchNorm, Conv2d, avg_pool2d, interpolate_nearest

REFERENCE_SCALE = 195.0
INPUT_SIZE = 256
HEATMAP_SIZE = 64


class ConvBlock(nn.Module):
    """FAN's pre-activation residual block with three concatenated branches (out/2, out/4, out/4)."""

    out_planes: int

    @nn.compact
    def __call__(self, x):
        relu = jax.nn.relu
        half, quarter = self.out_planes // 2, self.out_planes // 4
        out1 = Conv2d(half, 3, 1, 1, use_bias=False, name="conv1")(relu(BatchNorm(name="bn1")(x)))
        out2 = Conv2d(quarter, 3, 1, 1, use_bias=False, name="conv2")(relu(BatchNorm(name="bn2")(out1)))
        out3 = Conv2d(quarter, 3, 1, 1, use_bias=False, name="conv3")(relu(BatchNorm(name="bn3")(out2)))
        out = jnp.concatenate([out1, out2, out3], axis=-1)
        residual = x
        if x.shape[-1] != self.out_planes:
            residual = relu(BatchNorm(name="downsample_0")(x))
            residual = Conv2d(self.out_planes, 1, 1, 0, use_bias=False, name="downsample_2")(residual)
        return out + residual


class HourGlass(nn.Module):
    depth: int = 4
    features: int = 256

    @nn.compact
    def __call__(self, x):
        def level(lv, inp):
            up1 = ConvBlock(self.features, name=f"b1_{lv}")(inp)
            low1 = ConvBlock(self.features, name=f"b2_{lv}")(avg_pool2d(inp, 2, 2))
            if lv > 1:
                low2 = level(lv - 1, low1)
            else:
                low2 = ConvBlock(self.features, name=f"b2_plus_{lv}")(low1)
            low3 = ConvBlock(self.features, name=f"b3_{lv}")(low2)
            return up1 + interpolate_nearest(low3, (low3.shape[1] * 2, low3.shape[2] * 2))

        return level(self.depth, x)


class FAN(nn.Module):
    """x: [N, 256, 256, 3] in [0, 1] -> list of `num_modules` heatmap tensors [N, 64, 64, 68] (use the last)."""

    num_modules: int = 4
    dtype: str = "float32"  # compute dtype (float32 | bfloat16); parameters and outputs stay float32

    @nn.compact
    def __call__(self, x):
        relu = jax.nn.relu
        x = x.astype(self.dtype)
        x = relu(BatchNorm(name="bn1")(Conv2d(64, 7, 2, 3, name="conv1")(x)))
        x = avg_pool2d(ConvBlock(128, name="conv2")(x), 2, 2)
        x = ConvBlock(128, name="conv3")(x)
        x = ConvBlock(256, name="conv4")(x)
        previous = x
        outputs = []
        for i in range(self.num_modules):
            hg = HourGlass(4, 256, name=f"m{i}")(previous)
            ll = ConvBlock(256, name=f"top_m_{i}")(hg)
            ll = relu(BatchNorm(name=f"bn_end{i}")(Conv2d(256, 1, 1, 0, name=f"conv_last{i}")(ll)))
            tmp_out = Conv2d(68, 1, 1, 0, name=f"l{i}")(ll)
            outputs.append(tmp_out.astype(jnp.float32))
            if i < self.num_modules - 1:
                ll = Conv2d(256, 1, 1, 0, name=f"bl{i}")(ll)
                previous = previous + ll + Conv2d(256, 1, 1, 0, name=f"al{i}")(tmp_out)
        return outputs


def _xp(a):
    return jnp if isinstance(a, jax.Array) else np


def center_scale(boxes):
    """Face boxes [K, >=4] (x1, y1, x2, y2, ...) -> FAN centres [K, 2] and scales [K] (float32, as upstream).
    NumPy for host arrays, jax.numpy (jit-able) for jax arrays."""
    xp = _xp(boxes)
    b = xp.asarray(boxes, np.float32)[:, :4]
    cy = (b[:, 3] + b[:, 1]) / 2.0 - (b[:, 3] - b[:, 1]) * np.float32(0.12)
    center = xp.stack([(b[:, 2] + b[:, 0]) / 2.0, cy], axis=1).astype(np.float32)
    scale = ((b[:, 2] - b[:, 0] + b[:, 3] - b[:, 1]) / np.float32(REFERENCE_SCALE)).astype(np.float32)
    return center, scale


def _inverse(points, center, scale, resolution):
    """`transform(point, center, scale, resolution, invert=True)` before the integer cast (float64 on the host;
    float32 under jit)."""
    xp = _xp(center)
    dt = np.float64 if xp is np else jnp.float32
    h = 200.0 * xp.asarray(scale, dt)[..., None]
    return xp.asarray(points, dt) * h / resolution + xp.asarray(center, dt) - h / 2.0


def crop_corners(center, scale, resolution: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Integer crop corners ul [K, 2], br [K, 2] (x, y) of `crop_torch` (0-based start = ul, exclusive end = br)."""
    ul = np.trunc(_inverse(np.ones(2), center, scale, resolution)).astype(np.int64)
    br = np.trunc(_inverse(np.full(2, float(resolution)), center, scale, resolution)).astype(np.int64)
    return ul, br


def _crop_one(image, ul, br, size):
    """Bilinear resize (align_corners=False, no antialias) of the zero-padded crop [ul, br) of `image` to size²."""
    hgt, wid = image.shape[0], image.shape[1]
    ch = (br[1] - ul[1]).astype(jnp.float32)
    cw = (br[0] - ul[0]).astype(jnp.float32)
    out_i = jnp.arange(size, dtype=jnp.float32)

    def taps(extent):
        ratio = extent / size
        src = jnp.maximum((out_i + 0.5) * ratio - 0.5, 0.0)
        i0 = jnp.floor(src).astype(jnp.int32)
        i1 = jnp.minimum(i0 + 1, extent.astype(jnp.int32) - 1)
        return i0, i1, src - i0

    y0, y1, ly = taps(ch)
    x0, x1, lx = taps(cw)

    def sample(yy, xx):  # crop-local indices -> image pixels, 0 outside the image
        gy, gx = yy + ul[1], xx + ul[0]
        valid = ((gy >= 0) & (gy < hgt))[:, None] & ((gx >= 0) & (gx < wid))[None, :]
        v = image[jnp.clip(gy, 0, hgt - 1)][:, jnp.clip(gx, 0, wid - 1)]
        return jnp.where(valid[..., None], v, 0.0)

    lx_, ly_ = lx[None, :, None], ly[:, None, None]
    top = (1.0 - lx_) * sample(y0, x0) + lx_ * sample(y0, x1)
    bot = (1.0 - lx_) * sample(y1, x0) + lx_ * sample(y1, x1)
    return (1.0 - ly_) * top + ly_ * bot


@functools.partial(jax.jit, static_argnames=("size",))
def crop_for_fan(images, image_index, ul, br, size: int = INPUT_SIZE):
    """Crops of faces for FAN: images [N, H, W, 3] in [0, 255]; for each of K faces the index of its image and its
    integer corners (from `crop_corners`) -> [K, size, size, 3] float32 in [0, 255]."""
    images = jnp.asarray(images).astype(jnp.float32)
    fn = lambda i, u, b: _crop_one(images[i], u, b, size)
    return jax.vmap(fn)(jnp.asarray(image_index), jnp.asarray(ul), jnp.asarray(br))


@jax.jit
def decode_heatmaps(hm):
    """The authors' `get_preds_fromhm` (with floor) on heatmaps [K, 64, 64, 68] -> [K, 68, 2] (x, y) on the 64 grid."""
    k, hh, ww, c = hm.shape
    flat = jnp.moveaxis(hm, -1, 1).reshape(k, c, hh * ww)
    idx = jnp.argmax(flat, axis=-1)  # first maximum, as torch.max on CPU
    px = idx % ww  # 0-based
    py = idx // ww
    maps = jnp.moveaxis(hm, -1, 1)  # [K, C, H, W]
    inside = (px > 0) & (px < ww - 1) & (py > 0) & (py < hh - 1)
    pxc, pyc = jnp.clip(px, 1, ww - 2), jnp.clip(py, 1, hh - 2)

    def at(yy, xx):
        return jnp.take_along_axis(maps.reshape(k, c, hh * ww), (yy * ww + xx)[..., None], axis=-1)[..., 0]

    dx = jnp.sign(at(pyc, pxc + 1) - at(pyc, pxc - 1))
    dy = jnp.sign(at(pyc + 1, pxc) - at(pyc - 1, pxc))
    x = (px + 1).astype(jnp.float32) + jnp.where(inside, dx * 0.25, 0.0)
    y = (py + 1).astype(jnp.float32) + jnp.where(inside, dy * 0.25, 0.0)
    return jnp.stack([x, y], axis=-1) - 0.5


def heatmap_to_image(preds, center, scale, integer: bool = True) -> np.ndarray:
    """Back-project decoded heatmap points [K, 68, 2] to image pixels (float64; `integer` truncates like `.int()`)."""
    pts = _inverse(
        np.asarray(preds, np.float64), np.asarray(center)[:, None, :], np.asarray(scale)[:, None], HEATMAP_SIZE
    )
    return np.trunc(pts) if integer else pts


@functools.partial(jax.jit, static_argnums=(0,))
def fan_forward(module: FAN, variables, x):
    """FAN under jit: x [K, 256, 256, 3] in [0, 1] -> every stack's heatmaps [K, 64, 64, 68]."""
    return module.apply(variables, x)


def fan_heatmaps(module: FAN, variables, crops):
    """crops [K, 256, 256, 3] in [0, 255] -> the last stack's heatmaps [K, 64, 64, 68]."""
    return fan_forward(module, variables, jnp.asarray(crops) / 255.0)[-1]


def landmarks(module: FAN, variables, images, boxes, image_index=None, integer: bool = True) -> np.ndarray:
    """68 landmarks [K, 68, 2] (x, y, image pixels) for K face boxes [K, >=4] in images [N, H, W, 3] ([0, 255]).
    `image_index[k]` names the image of face k (default: face k is in image k)."""
    boxes = np.asarray(boxes)
    if len(boxes) == 0:
        return np.zeros((0, 68, 2), np.float64)
    if image_index is None:
        image_index = np.arange(len(boxes))
    center, scale = center_scale(boxes)
    ul, br = crop_corners(center, scale)
    crops = crop_for_fan(images, np.asarray(image_index, np.int32), ul.astype(np.int32), br.astype(np.int32))
    preds = decode_heatmaps(fan_heatmaps(module, variables, crops))
    return heatmap_to_image(preds, center, scale, integer=integer)
