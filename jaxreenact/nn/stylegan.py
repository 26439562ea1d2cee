"""StyleGAN2 (rosinality layout) primitives in NHWC, mirroring `libs/gan/StyleGAN2/model.py` and its `op/`.

Equalized learning rate is applied at call time: the stored parameter is the raw PyTorch tensor
(transposed to [in, out] for dense layers), so converted weights need no rescaling.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SQRT2 = math.sqrt(2.0)


def fused_leaky_relu(x, bias, negative_slope: float = 0.2, scale: float = SQRT2):
    """`fused_leaky_relu(x, bias)`: leaky_relu(x + bias, 0.2) * sqrt(2); bias broadcasts over the last axis."""
    y = x + bias
    return jnp.where(y >= 0, y, y * negative_slope) * scale


class EqualLinear(nn.Module):
    """`EqualLinear(in, out, bias, bias_init, lr_mul, activation)`: y = x @ (W * lr_mul / sqrt(in)) + b * lr_mul.

    `weight` is stored [in, out] (the PyTorch [out, in] tensor transposed, unscaled); `activation='fused_lrelu'`
    applies `fused_leaky_relu` with the scaled bias. x: [..., in] -> [..., out].
    """

    out_features: int
    use_bias: bool = True
    bias_init: float = 0.0
    lr_mul: float = 1.0
    activation: str | None = None

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        w = self.param("weight", lambda k, s: jax.random.normal(k, s) / self.lr_mul, (fan_in, self.out_features))
        y = x @ (w * (self.lr_mul / math.sqrt(fan_in)))
        if not self.use_bias:
            return y
        b = self.param("bias", nn.initializers.constant(self.bias_init), (self.out_features,)) * self.lr_mul
        if self.activation == "fused_lrelu":
            return fused_leaky_relu(y, b)
        if self.activation is not None:
            raise ValueError(f"unknown activation {self.activation!r}")
        return y + b


# --------------------------------------------------------------------------------------------------------------
# FIR filtering (`op/upfirdn2d.py`), pixel norm, modulated convolution and the synthesis blocks (`model.py`).
# --------------------------------------------------------------------------------------------------------------

BLUR_KERNEL = (1, 3, 3, 1)
DEMOD_EPS = 1e-8
PIXEL_NORM_EPS = 1e-8


def pixel_norm(x, eps: float = PIXEL_NORM_EPS):
    """`PixelNorm`: x * rsqrt(mean(x**2, channels) + 1e-8); x: [..., C]."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def make_kernel(k) -> np.ndarray:
    """`make_kernel`: a 1-D FIR k becomes outer(k, k); normalized to sum 1. Returns a float32 numpy [kh, kw]."""
    k = np.asarray(k, np.float64)
    if k.ndim == 1:
        k = np.outer(k, k)
    return (k / k.sum()).astype(np.float32)


def _separable(kernel: np.ndarray):
    """(a, b) with outer(a, b) == kernel to float32 rounding, or None. [1,3,3,1]-type kernels factor exactly."""
    a, b, s = kernel.sum(1), kernel.sum(0), kernel.sum()
    if s == 0:
        return None
    a, b = a.astype(np.float32), (b / s).astype(np.float32)
    return (a, b) if np.allclose(np.outer(a, b), kernel, rtol=1e-6, atol=1e-9) else None


def _fir_taps(x, kernel: np.ndarray):
    """Valid 2-D true convolution of x [N,H,W,C] with a constant kernel as a sum of shifted slices.

    Same result as a depthwise `conv_general_dilated` with the flipped kernel, but XLA fuses the taps into one
    elementwise loop (XLA:CPU's grouped/depthwise convolution is slow). Separable kernels take two 1-D passes.
    """
    kflip = kernel[::-1, ::-1]
    kh, kw = kflip.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    sep = _separable(kflip)
    if sep is not None:
        a, b = sep
        y = sum(float(a[i]) * x[:, i : i + oh] for i in range(kh) if a[i] != 0)
        return sum(float(b[j]) * y[:, :, j : j + ow] for j in range(kw) if b[j] != 0)
    return sum(
        float(kflip[i, j]) * x[:, i : i + oh, j : j + ow] for i in range(kh) for j in range(kw) if kflip[i, j] != 0
    )


def _fir_conv(x, kernel: np.ndarray):
    """The same filter as `_fir_taps` as a depthwise convolution (feature_group_count = C)."""
    c = x.shape[-1]
    w = jnp.asarray(np.ascontiguousarray(kernel[::-1, ::-1]), x.dtype)[:, :, None, None]
    w = jnp.tile(w, (1, 1, 1, c))
    return lax.conv_general_dilated(
        x, w, (1, 1), ((0, 0), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c
    )


def upfirdn2d(x, kernel, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0), impl: str = "taps"):
    """`upfirdn2d(input, kernel, up, down, pad)` in NHWC: zero-insert upsample, pad, FIR (true convolution), downsample.

    x: [N, H, W, C]; kernel: a constant [kh, kw] (numpy); pad = (pad0, pad1) on both spatial axes (negative crops).
    Upsampling puts up-1 zeros after every sample, the last one included, as upstream's reshape does.
    Output: [N, (H*up + pad0 + pad1 - kh)//down + 1, ..., C]. `impl`: "taps" (default) or "conv" (depthwise).
    """
    kernel = np.asarray(kernel, np.float32)
    p0, p1 = pad
    zero = jnp.zeros((), x.dtype)
    cfg = ((0, 0, 0), (p0, p1 + up - 1, up - 1), (p0, p1 + up - 1, up - 1), (0, 0, 0))
    x = lax.pad(x, zero, cfg)
    y = _fir_taps(x, kernel) if impl == "taps" else _fir_conv(x, kernel)
    if down > 1:
        y = y[:, ::down, ::down]
    return y


def blur(x, blur_kernel=BLUR_KERNEL, pad: tuple[int, int] = (1, 1), upsample_factor: int = 1):
    """`Blur(kernel, pad, upsample_factor)`: upfirdn2d with make_kernel(k) * factor**2. x: [N,H,W,C]."""
    k = make_kernel(blur_kernel)
    if upsample_factor > 1:
        k = k * (upsample_factor**2)
    return upfirdn2d(x, k, pad=pad)


def upsample(x, blur_kernel=BLUR_KERNEL, factor: int = 2):
    """`Upsample(kernel, factor)` (ToRGB skip): up=factor, kernel * factor**2, pads ((p+1)//2+factor-1, p//2).

    x: [N, H, W, C] -> [N, factor*H, factor*W, C]; with [1,3,3,1] and factor 2 the pads are (2, 1).
    """
    k = make_kernel(blur_kernel) * (factor**2)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def _dtype(name):
    return jnp.dtype(name)


# How an upsampling modulated convolution computes its transposed convolution. Both are the same sums:
# "polyphase": `conv_transpose_2x`, four sub-pixel convolutions (XLA:CPU convolves a dilated input as it is, so
# this is ~4x fewer flops there); "dilated": one input-dilated convolution, which GPU and TPU compilers lower to
# their own transposed convolution. "auto" (the modules' default) picks by backend.
UPSAMPLE_IMPLS = ("polyphase", "dilated")


def default_upsample_impl(backend: str | None = None) -> str:
    """The upsampling implementation a backend runs by default: "polyphase" on a CPU, "dilated" elsewhere."""
    return "polyphase" if (backend or jax.default_backend()) == "cpu" else "dilated"


def resolve_upsample_impl(impl: str) -> str:
    if impl == "auto":
        return default_upsample_impl()
    if impl not in UPSAMPLE_IMPLS:
        raise ValueError(f"upsample_impl={impl!r}: use 'auto' or one of {', '.join(UPSAMPLE_IMPLS)}")
    return impl


def conv_transpose_dilated(x, w, preferred_element_type=None):
    """`F.conv_transpose2d(x, w, stride=2, padding=0)` as the input-dilated convolution of the flipped kernel
    (pads k-1). x [N,H,W,in], w [k,k,in,out] -> [N, 2H+k-2, 2W+k-2, out]."""
    k = w.shape[0]
    return lax.conv_general_dilated(
        x,
        w[::-1, ::-1],
        (1, 1),
        ((k - 1, k - 1), (k - 1, k - 1)),
        lhs_dilation=(2, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        preferred_element_type=preferred_element_type,
    )


def conv_transpose_2x(x, w, preferred_element_type=None):
    """`F.conv_transpose2d(x, w, stride=2, padding=0)` in NHWC/HWIO (w [k, k, in, out], k >= 2), as four
    sub-pixel ("polyphase") convolutions, one per output parity, interleaved.

    The same sums as the input-dilated convolution `lax.conv_general_dilated(x, w[::-1, ::-1], lhs_dilation=2,
    pads k-1)`, without multiplying the 3 zeros that dilation puts beside every input sample: a quarter of its
    flops (XLA:CPU convolves the dilated input as it is). Output [N, 2H+k-2, 2W+k-2, out].
    """
    k = w.shape[0]
    n, h, wd = x.shape[0], x.shape[1], x.shape[2]
    oh, ow = 2 * h + k - 2, 2 * wd + k - 2
    mh, mw = (oh + 1) // 2, (ow + 1) // 2  # rows/cols of the even phase (the odd one has oh // 2, ow // 2)
    dn = ("NHWC", "HWIO", "NHWC")
    phases = []
    for a in (0, 1):
        row = []
        taps_h = list(range(a, k, 2))[::-1]  # output 2m+a = sum over t ≡ a of x[m - (t - a) / 2] w[t]
        for b in (0, 1):
            taps_w = list(range(b, k, 2))[::-1]
            kern = w[np.asarray(taps_h)][:, np.asarray(taps_w)]
            ph, pw = len(taps_h) - 1, len(taps_w) - 1
            y = lax.conv_general_dilated(
                x,
                kern,
                (1, 1),
                ((ph, ph), (pw, pw)),
                dimension_numbers=dn,
                preferred_element_type=preferred_element_type,
            )
            # pad every phase to the even phase's size (the odd phases are one shorter when k is odd)
            row.append(jnp.pad(y, ((0, 0), (0, mh - y.shape[1]), (0, mw - y.shape[2]), (0, 0))))
        phases.append(jnp.stack(row, axis=3))  # [N, mh, mw, 2 (b), C]
    y = jnp.stack(phases, axis=2)  # [N, mh, 2 (a), mw, 2 (b), C]
    return y.reshape(n, 2 * mh, 2 * mw, -1)[:, :oh, :ow]


class ModulatedConv2d(nn.Module):
    """`ModulatedConv2d(in, out, k, style_dim, demodulate, upsample, blur_kernel)` in its non-fused form.

    Instead of one grouped convolution with per-sample weights, the input is scaled by the style, convolved with
    the shared weight, and the output multiplied by the demodulation coefficients: the same math, and it shards
    over the batch with no collectives. x: [N, H, W, in], style: [N, style_dim] -> [N, H', W', out]
    (H' = 2H when `upsample`). `weight` is stored HWIO [k, k, in, out] (upstream [1, out, in, k, k]), unscaled.
    Upsampling: transposed conv (stride 2, pad 0), then Blur(pad (1,1), kernel * 4); `upsample_impl` says how the
    transposed conv is computed (`UPSAMPLE_IMPLS`; "auto" = the backend's `default_upsample_impl`).
    `dtype` is the compute dtype of x and the weight; the convolution accumulates in float32 and rounds its
    result to `dtype` after the demodulation.
    """

    out_channels: int
    kernel_size: int = 3
    demodulate: bool = True
    upsample: bool = False
    blur_kernel: tuple = BLUR_KERNEL
    dtype: str = "float32"
    upsample_impl: str = "auto"

    @nn.compact
    def __call__(self, x, style):
        cin, k = x.shape[-1], self.kernel_size
        w = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.out_channels))
        s = EqualLinear(cin, bias_init=1.0, name="modulation")(style)  # [N, in], float32
        wk = w * (1.0 / math.sqrt(cin * k * k))
        cdt = _dtype(self.dtype)
        x = x.astype(cdt) * s[:, None, None, :].astype(cdt)
        acc = jnp.float32  # k*k*in products per output: accumulate in float32 whatever the compute dtype
        if self.upsample and resolve_upsample_impl(self.upsample_impl) == "polyphase":
            y = conv_transpose_2x(x, wk.astype(cdt), preferred_element_type=acc)
        elif self.upsample:
            y = conv_transpose_dilated(x, wk.astype(cdt), preferred_element_type=acc)
        else:
            y = lax.conv_general_dilated(
                x,
                wk.astype(cdt),
                (1, 1),
                ((k // 2, k // 2),) * 2,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=acc,
            )
        if self.demodulate:
            # sum_{kh,kw,in} (scale * W * s)^2 = s^2 @ sum_{kh,kw} (scale * W)^2, per sample and output channel.
            wsq = jnp.sum(jnp.square(wk), axis=(0, 1))  # [in, out]
            d = lax.rsqrt(jnp.matmul(jnp.square(s), wsq, precision=lax.Precision.HIGHEST) + DEMOD_EPS)
            y = y * d[:, None, None, :]
        y = y.astype(cdt)
        if self.upsample:
            p = (len(self.blur_kernel) - 2) - (k - 1)
            y = blur(y, self.blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        return y


class NoiseInjection(nn.Module):
    """`NoiseInjection`: x + weight * noise, `weight` a scalar parameter (shape [1], init 0); noise [1|N, H, W, 1]."""

    @nn.compact
    def __call__(self, x, noise):
        w = self.param("weight", nn.initializers.zeros, (1,))
        return x + (w * noise).astype(x.dtype)


class FusedLeakyReLU(nn.Module):
    """`FusedLeakyReLU(channels)`: fused_leaky_relu(x, bias) with its own per-channel `bias` (init 0)."""

    @nn.compact
    def __call__(self, x):
        b = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return fused_leaky_relu(x, b.astype(x.dtype))


class ConstantInput(nn.Module):
    """`ConstantInput(channels, size=4)`: the learned `input` [1, 4, 4, C] (upstream [1, C, 4, 4]) over the batch."""

    channels: int
    size: int = 4

    @nn.compact
    def __call__(self, batch: int):
        c = self.param("input", nn.initializers.normal(1.0), (1, self.size, self.size, self.channels))
        return jnp.broadcast_to(c, (batch, *c.shape[1:]))


class StyledConv(nn.Module):
    """`StyledConv`: modulated conv (`conv`) -> noise (`noise`) -> bias + leaky ReLU x sqrt(2) (`activate`).

    x: [N, H, W, in], style: [N, style_dim], noise: [1, H', W', 1] -> [N, H', W', out].
    """

    out_channels: int
    kernel_size: int = 3
    upsample: bool = False
    blur_kernel: tuple = BLUR_KERNEL
    demodulate: bool = True
    dtype: str = "float32"
    upsample_impl: str = "auto"

    @nn.compact
    def __call__(self, x, style, noise):
        y = ModulatedConv2d(
            self.out_channels,
            self.kernel_size,
            self.demodulate,
            self.upsample,
            self.blur_kernel,
            self.dtype,
            self.upsample_impl,
            name="conv",
        )(x, style)
        y = NoiseInjection(name="noise")(y, noise)
        return FusedLeakyReLU(name="activate")(y)


class ToRGB(nn.Module):
    """`ToRGB`: 1x1 modulated conv without demodulation (`conv`) + `bias` [3] (upstream [1,3,1,1]) + upsampled skip.

    x: [N, H, W, in], style: [N, style_dim], skip: [N, H/2, W/2, 3] or None -> [N, H, W, 3] float32. The image
    is a sum over every resolution, so it stays float32 whatever `dtype` the convolutions compute in.
    """

    upsample: bool = True
    blur_kernel: tuple = BLUR_KERNEL
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x, style, skip=None):
        y = ModulatedConv2d(3, 1, demodulate=False, dtype=self.dtype, name="conv")(x, style).astype(jnp.float32)
        y = y + self.param("bias", nn.initializers.zeros, (3,))
        if skip is not None:
            y = y + upsample(skip.astype(jnp.float32), self.blur_kernel)
        return y
