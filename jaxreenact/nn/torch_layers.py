"""PyTorch-semantics layers and ops in NHWC, parameters named as in `torch.nn`.

Conv kernels are stored HWIO (PyTorch OIHW transposed by the converter), Linear weights [in, out].
Padding is always PyTorch's explicit symmetric padding, never Flax 'SAME' (which pads asymmetrically
for stride 2). BatchNorm is frozen (eval mode): running statistics live in the `buffers` collection.

Compute dtype: the layers compute in the dtype of their input (float32, or bfloat16 where a network's `dtype`
says so). Parameters stay float32 and are rounded to that dtype where used; convolutions and matmuls accumulate
in float32 (`preferred_element_type`) and round their result once. With float32 inputs nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

BUFFERS = "buffers"


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """`F.conv2d` in NHWC. x: [N, H, W, Cin]; w: [kh, kw, Cin/groups, Cout]; b: [Cout]."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    y = lax.conv_general_dilated(
        x,
        w.astype(x.dtype),
        window_strides=(sh, sw),
        padding=((ph, ph), (pw, pw)),
        rhs_dilation=_pair(dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        preferred_element_type=jnp.float32,
    )
    return (y if b is None else y + b).astype(x.dtype)


class Conv2d(nn.Module):
    """`nn.Conv2d(in, out, kernel_size, stride, padding, dilation, groups, bias)`; x: [N,H,W,Cin] -> [N,H',W',Cout]."""

    out_channels: int
    kernel_size: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    padding: int | Sequence[int] = 0
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        kh, kw = _pair(self.kernel_size)
        cin = x.shape[-1]
        fan_in = cin // self.groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        init = lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound)  # PyTorch's default
        w = self.param("weight", init, (kh, kw, cin // self.groups, self.out_channels))
        b = self.param("bias", init, (self.out_channels,)) if self.use_bias else None
        return conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


class Linear(nn.Module):
    """`nn.Linear(in, out, bias)`; weight stored [in, out]. x: [..., in] -> [..., out]."""

    out_features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        bound = 1.0 / math.sqrt(x.shape[-1])
        init = lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound)
        w = self.param("weight", init, (x.shape[-1], self.out_features))
        y = jnp.matmul(x, w.astype(x.dtype), preferred_element_type=jnp.float32)
        if self.use_bias:
            y = y + self.param("bias", init, (self.out_features,))
        return y.astype(x.dtype)


class BatchNorm(nn.Module):
    """Frozen `nn.BatchNorm{1,2}d` (eval mode) over the last axis: (x - mean) / sqrt(var + eps) * w + b."""

    eps: float = 1e-5
    affine: bool = True

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        mean = self.variable(BUFFERS, "running_mean", lambda: jnp.zeros((c,), jnp.float32)).value
        var = self.variable(BUFFERS, "running_var", lambda: jnp.ones((c,), jnp.float32)).value
        # Same association as PyTorch's CPU eval kernel: scale = w / sqrt(var + eps); y = (x - mean) * scale + b.
        inv = lax.rsqrt(var + self.eps)
        dt = x.dtype
        if self.affine:
            w = self.param("weight", nn.initializers.ones, (c,))
            b = self.param("bias", nn.initializers.zeros, (c,))
            return (x - mean.astype(dt)) * (inv * w).astype(dt) + b.astype(dt)
        return (x - mean.astype(dt)) * inv.astype(dt)


class PReLU(nn.Module):
    """`nn.PReLU(num_parameters=C)` with per-channel slopes (init 0.25) on the last axis."""

    @nn.compact
    def __call__(self, x):
        a = self.param("weight", nn.initializers.constant(0.25), (x.shape[-1],))
        return jnp.where(x >= 0, x, a.astype(x.dtype) * x)


def _pool_out(size: int, k: int, s: int, p: int, ceil_mode: bool, dilation: int = 1) -> int:
    eff = dilation * (k - 1) + 1
    num = size + 2 * p - eff
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # PyTorch: the last window must start inside the input
        out -= 1
    return out


def _pool_pads(x, kernel, stride, padding, ceil_mode):
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride if stride is not None else kernel)
    ph, pw = _pair(padding)
    oh = _pool_out(x.shape[1], kh, sh, ph, ceil_mode)
    ow = _pool_out(x.shape[2], kw, sw, pw, ceil_mode)
    # Extra right/bottom padding so the last (ceil-mode) window fits.
    eh = max(0, (oh - 1) * sh + kh - (x.shape[1] + 2 * ph))
    ew = max(0, (ow - 1) * sw + kw - (x.shape[2] + 2 * pw))
    pads = ((0, 0), (ph, ph + eh), (pw, pw + ew), (0, 0))
    return (kh, kw), (sh, sw), pads


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """`F.max_pool2d` (NHWC): -inf padding, PyTorch's ceil_mode rule."""
    k, s, pads = _pool_pads(x, kernel_size, stride, padding, ceil_mode)
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *k, 1), (1, *s, 1), pads)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """`F.avg_pool2d` (NHWC). Windows reaching into ceil-mode overhang never count it as padding."""
    k, s, pads = _pool_pads(x, kernel_size, stride, padding, ceil_mode)
    total = lax.reduce_window(x, 0.0, lax.add, (1, *k, 1), (1, *s, 1), pads)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    if count_include_pad:
        # PyTorch counts explicit padding but not the ceil-mode overhang beyond it.
        ph, pw = _pair(padding)
        ones = jnp.pad(ones, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=1.0)
        pads = tuple((0, hi - lo) if i in (1, 2) else (lo, hi) for i, (lo, hi) in enumerate(pads))
    count = lax.reduce_window(ones, 0.0, lax.add, (1, *k, 1), (1, *s, 1), pads)
    return total / count


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] averaging matrix of PyTorch's adaptive pooling bins [floor(i*in/out), ceil((i+1)*in/out))."""
    m = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        lo = (i * in_size) // out_size
        hi = -(-((i + 1) * in_size) // out_size)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m.astype(np.float32)


def adaptive_avg_pool2d(x, output_size: int | Sequence[int]):
    """`F.adaptive_avg_pool2d` (NHWC) with PyTorch's uneven bins, as two separable averaging matmuls."""
    oh, ow = _pair(output_size)
    mh = jnp.asarray(adaptive_pool_matrix(x.shape[1], oh))
    mw = jnp.asarray(adaptive_pool_matrix(x.shape[2], ow))
    y = jnp.einsum("oh,nhwc->nowc", mh, x, precision=lax.Precision.HIGHEST)
    return jnp.einsum("pw,nowc->nopc", mw, y, precision=lax.Precision.HIGHEST)


def _linear_taps(in_size: int, out_size: int, align_corners: bool, scale: float | None = None):
    """Source indices and weights of PyTorch's linear interpolation along one axis."""
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = i * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(i)
    else:
        ratio = (1.0 / scale) if scale is not None else in_size / out_size
        src = np.maximum((i + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    l1 = (src - i0).astype(np.float32)
    return i0, i1, l1


def interpolate_bilinear(x, size: Sequence[int], align_corners: bool = False):
    """`F.interpolate(mode='bilinear', align_corners=...)` to `size` = (H, W), NHWC, PyTorch's lerp order."""
    oh, ow = _pair(size)
    h0, h1, lh = _linear_taps(x.shape[1], oh, align_corners)
    w0, w1, lw = _linear_taps(x.shape[2], ow, align_corners)
    lw = jnp.asarray(lw)[None, None, :, None]
    lh = jnp.asarray(lh)[None, :, None, None]
    # Width first, then height, each as a + l * (b - a) is not PyTorch's form; it computes (1-l)*a + l*b.
    xw = (1.0 - lw) * x[:, :, w0] + lw * x[:, :, w1]
    return (1.0 - lh) * xw[:, h0] + lh * xw[:, h1]


def interpolate_nearest(x, size: Sequence[int]):
    """`F.interpolate(mode='nearest')` to `size` = (H, W): src = floor(dst * in / out)."""
    oh, ow = _pair(size)
    hi = np.minimum((np.arange(oh) * (x.shape[1] / oh)).astype(np.int64), x.shape[1] - 1)
    wi = np.minimum((np.arange(ow) * (x.shape[2] / ow)).astype(np.int64), x.shape[2] - 1)
    return x[:, hi][:, :, wi]


def l2_normalize(x, axis: int = -1, eps: float = 0.0):
    """x / ||x||, with `eps` added to the norm (0 gives the upstream `l2_norm`, which has none)."""
    return x / (jnp.linalg.norm(x, axis=axis, keepdims=True) + eps)


def cosine_similarity(a, b, eps: float = 1e-8):
    """`F.cosine_similarity` along the last axis, as PyTorch 2.x computes it: each side divided by
    max(||.||, eps), then the dot product."""
    na = jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), eps)
    nb = jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), eps)
    return jnp.sum((a / na) * (b / nb), axis=-1)
