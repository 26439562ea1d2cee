"""A pure-PyTorch StyleGAN2 generator with the rosinality / authors' state-dict layout, written for parity tests.

Written from the method description (METHOD.md 1 and 9.1), not copied: the ops run the way upstream's CPU path
runs them (upfirdn2d by zero insertion + pad + flipped-kernel conv2d; grouped modulated convolution;
conv_transpose2d + blur for upsampling; leaky_relu(x + b) * sqrt(2)), so a module built here with random weights
yields a state dict in exactly the `g_ema` layout and outputs that the JAX port must reproduce.
Tensors are NCHW, as upstream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def fir_kernel(k, gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def upfirdn2d_ref(x, kernel, up=1, down=1, pad=(0, 0)):
    """Native upfirdn2d: zero insertion (up-1 zeros after each sample), pad / crop, conv2d with the flipped kernel."""
    n, c, h, w = x.shape
    p0, p1 = pad
    y = x.reshape(n * c, 1, h, 1, w, 1)
    y = F.pad(y, [0, up - 1, 0, 0, 0, up - 1])
    y = y.reshape(n * c, 1, h * up, w * up)
    y = F.pad(y, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    y = y[:, :, max(-p0, 0) : y.shape[2] - max(-p1, 0), max(-p0, 0) : y.shape[3] - max(-p1, 0)]
    y = F.conv2d(y, torch.flip(kernel, [0, 1])[None, None])
    y = y[:, :, ::down, ::down]
    return y.reshape(n, c, y.shape[2], y.shape[3])


def fused_lrelu_ref(x, bias, slope=0.2, scale=SQRT2):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), slope) * scale


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, fin, fout, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin) / lr_mul)
        self.bias = nn.Parameter(torch.full((fout,), float(bias_init)))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(fin), lr_mul, activation

    def forward(self, x):
        y = F.linear(x, self.weight * self.scale)
        if self.activation:
            return fused_lrelu_ref(y, self.bias * self.lr_mul)
        return y + self.bias * self.lr_mul


class Blur(nn.Module):
    def __init__(self, k, pad, gain=1.0):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(k, gain))
        self.pad = pad

    def forward(self, x):
        return upfirdn2d_ref(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, k, factor=2):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(k, factor**2))
        p = self.kernel.shape[0] - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d_ref(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Grouped form: per-sample weights scale * W * s, demodulated, one conv with groups = batch (upstream).

    `fused = False` (class-wide switch, benchmarks only) runs the equivalent non-fused form instead: scale the
    input by s, convolve with the shared weight, multiply the output by the demodulation coefficients.
    """

    fused = True

    def __init__(self, cin, cout, k, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        self.cin, self.cout, self.k = cin, cout, k
        self.scale = 1 / math.sqrt(cin * k * k)
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (k - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x, style):
        if not self.fused:
            return self._forward_unfused(x, style)
        n, _, h, w = x.shape
        s = self.modulation(style).view(n, 1, self.cin, 1, 1)
        wt = self.scale * self.weight * s
        if self.demodulate:
            wt = wt * torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + 1e-8).view(n, self.cout, 1, 1, 1)
        x = x.reshape(1, n * self.cin, h, w)
        if self.upsample:
            wt = wt.transpose(1, 2).reshape(n * self.cin, self.cout, self.k, self.k)
            y = F.conv_transpose2d(x, wt, stride=2, padding=0, groups=n)
            return self.blur(y.view(n, self.cout, y.shape[2], y.shape[3]))
        y = F.conv2d(x, wt.reshape(n * self.cout, self.cin, self.k, self.k), padding=self.k // 2, groups=n)
        return y.view(n, self.cout, h, w)

    def _forward_unfused(self, x, style):
        s = self.modulation(style)  # [n, in]
        w = self.scale * self.weight[0]  # [out, in, k, k]
        x = x * s[:, :, None, None]
        if self.upsample:
            y = F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0)
        else:
            y = F.conv2d(x, w, padding=self.k // 2)
        if self.demodulate:
            d = torch.rsqrt(s.pow(2) @ w.pow(2).sum([2, 3]).t() + 1e-8)  # [n, out]
            y = y * d[:, :, None, None]
        return self.blur(y) if self.upsample else y


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return fused_lrelu_ref(x, self.bias)


class ConstantInput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, c, 4, 4))

    def forward(self, n):
        return self.input.repeat(n, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, cin, cout, k, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, k, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, cin, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        y = self.conv(x, style) + self.bias
        return y if skip is None else y + self.upsample(skip)


def channels(size: int, cm: int) -> dict[int, int]:
    return {r: 512 if r <= 32 else 16384 * cm // r for r in (2**i for i in range(2, int(math.log2(size)) + 1))}


class Generator(nn.Module):
    def __init__(self, size, style_dim=512, n_mlp=8, channel_multiplier=2, blur_kernel=(1, 3, 3, 1), lr_mlp=0.01):
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        ch = channels(size, channel_multiplier)
        layers = [PixelNorm()] + [
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)
        ]
        self.style = nn.Sequential(*layers)
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2**i]
            self.convs.append(StyledConv(cin, cout, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(cout, cout, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout

    def get_latent(self, z):
        return self.style(z)

    def forward(self, z, truncation=1.0, truncation_latent=None, input_is_latent=False, return_latents=False):
        feats = {}
        w = z if input_is_latent else self.style(z)
        if truncation < 1:
            w = truncation_latent + truncation * (w - truncation_latent)
        latent = w if w.ndim == 3 else w[:, None].repeat(1, self.n_latent, 1)
        noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        out = self.conv1(self.input(latent.shape[0]), latent[:, 0], noise[0])
        feats["conv1"] = out
        skip = self.to_rgb1(out, latent[:, 1])
        feats["to_rgb1"] = skip
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, latent[:, i], noise[2 * k + 1])
            out = self.convs[2 * k + 1](out, latent[:, i + 1], noise[2 * k + 2])
            skip = to_rgb(out, latent[:, i + 2], skip)
            feats[f"to_rgbs_{k}"] = skip
            i += 2
        self.features = feats
        return (skip, latent) if return_latents else skip


def random_generator(size, channel_multiplier, seed=0, style_dim=512, n_mlp=8) -> Generator:
    """A reference generator with random weights of golden-like magnitudes (non-zero noise weights and biases)."""
    torch.manual_seed(seed)
    g = Generator(size, style_dim, n_mlp, channel_multiplier).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("modulation.bias"):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias") and "style" not in name:
                p.normal_(0, 0.05)
            elif name.startswith("style") and name.endswith("bias"):
                p.normal_(0, 10.0)
    return g
