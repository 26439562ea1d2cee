"""StyleGAN2 generator (rosinality layout, as in the authors' `libs/gan/StyleGAN2/model.py`), NHWC Linen module.

METHOD.md sections 1 and 9.1. Submodules carry the PyTorch names (`style_1`..`style_8` for `style.{i}`, `input`,
`conv1`, `to_rgb1`, `convs_{i}`, `to_rgbs_{i}`); the stored noise maps are `buffers/noise_{i}` [1, r, r, 1] and
are always used (the authors' `randomize_noise=False`). `buffers/mean_latent` [1, style_dim] is the truncation
centre used when none is passed: the converter computes it once as the mean of `mapping(z)` over 4096
`z = numpy.random.default_rng(0).standard_normal((4096, style_dim), float32)` (the authors draw the same count
unseeded with `G.mean_latent(4096)`). A checkpoint's own `latent_avg` is kept as `buffers/latent_avg` [style_dim]
when the file has one (`has_latent_avg`); it is used only when passed explicitly as `truncation_latent`.

Usage (all through `module.apply(variables, ..., method=...)`):
    w = G.apply(v, z, method=G.mapping)                     # [B, 512]
    img = G.apply(v, wplus, method=G.synthesis)            # [B, size, size, 3], raw toRGB range
    img = G.apply(v, z, truncation=0.7)                    # mapping + truncation toward mean_latent + synthesis
    img, lat = G.apply(v, wplus, input_is_latent=True, return_latents=True)
Intermediates (`conv1_out`, `to_rgb1_out`, `to_rgbs_{k}_out`) are sown into the `intermediates` collection:
    img, state = G.apply(v, wplus, method=G.synthesis, mutable=["intermediates"])
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.nn.stylegan import BLUR_KERNEL, ConstantInput, EqualLinear, StyledConv, ToRGB, pixel_norm
from jaxreenact.nn.torch_layers import BUFFERS

MEAN_LATENT_SAMPLES = 4096
MEAN_LATENT_SEED = 0


def channels(size: int, channel_multiplier: int) -> dict[int, int]:
    """Channels per resolution: 512 up to 32 px, then 256*cm at 64, 128*cm at 128, ... 16*cm at 1024."""
    return {r: 512 if r <= 32 else 16384 * channel_multiplier // r for r in (2**i for i in range(2, size.bit_length()))}


def mean_latent_z(style_dim: int = 512, n: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED) -> np.ndarray:
    """The fixed z sample whose mapped mean is `buffers/mean_latent`: default_rng(seed).standard_normal, float32."""
    return np.random.default_rng(seed).standard_normal((n, style_dim), dtype=np.float32)


class Generator(nn.Module):
    """`Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp)`, NHWC.

    `dtype` is the synthesis compute dtype ("float32", or "bfloat16" for speed); parameters, the mapping network,
    the modulation and the demodulation stay float32, convolutions accumulate in float32, the ToRGB skip (the image,
    a sum over resolutions) is float32, and images are returned as float32. `upsample_impl`: how the upsampling
    convolutions run ("auto": the backend's; see `jaxreenact.nn.stylegan.UPSAMPLE_IMPLS`).
    """

    size: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    blur_kernel: tuple = BLUR_KERNEL
    lr_mlp: float = 0.01
    has_latent_avg: bool = False
    dtype: str = "float32"
    upsample_impl: str = "auto"
    channel_divisor: int = (
        1  # > 1 only for small test generators (`jaxreenact.weights.tiny`): channels // divisor, >= 8
    )

    @classmethod
    def from_config(cls, config: dict) -> Generator:
        config = dict(config)
        if "blur_kernel" in config:
            config["blur_kernel"] = tuple(config["blur_kernel"])
        return cls(**config)

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def num_layers(self) -> int:
        """Number of noise inputs (13 at 256)."""
        return (self.log_size - 2) * 2 + 1

    @property
    def n_latent(self) -> int:
        """Number of W+ rows (14 at 256, 18 at 1024)."""
        return self.log_size * 2 - 2

    @property
    def resolution(self) -> int:
        return self.size

    def setup(self):
        if self.size < 8 or self.size > 1024 or self.size & (self.size - 1):
            raise ValueError(f"StyleGAN2 size must be a power of two in [8, 1024], got {self.size}")
        ch = {r: max(c // self.channel_divisor, 8) for r, c in channels(self.size, self.channel_multiplier).items()}
        self.style = {
            str(i): EqualLinear(self.style_dim, lr_mul=self.lr_mlp, activation="fused_lrelu")
            for i in range(1, self.n_mlp + 1)
        }
        self.input = ConstantInput(ch[4])
        bk, dt = tuple(self.blur_kernel), self.dtype
        self.conv1 = StyledConv(ch[4], 3, blur_kernel=bk, dtype=dt)
        self.to_rgb1 = ToRGB(upsample=False, blur_kernel=bk, dtype=dt)
        convs, to_rgbs = [], []
        for i in range(3, self.log_size + 1):
            c = ch[2**i]
            convs.append(StyledConv(c, 3, upsample=True, blur_kernel=bk, dtype=dt, upsample_impl=self.upsample_impl))
            convs.append(StyledConv(c, 3, blur_kernel=bk, dtype=dt))
            to_rgbs.append(ToRGB(blur_kernel=bk, dtype=dt))
        self.convs, self.to_rgbs = convs, to_rgbs

        def noise_init(r):
            return lambda: jnp.zeros((1, r, r, 1), jnp.float32)

        self.noises = [
            self.variable(BUFFERS, f"noise_{i}", noise_init(2 ** ((i + 5) // 2))) for i in range(self.num_layers)
        ]
        self.mean_latent = self.variable(BUFFERS, "mean_latent", lambda: jnp.zeros((1, self.style_dim), jnp.float32))
        if self.has_latent_avg:
            self.latent_avg = self.variable(BUFFERS, "latent_avg", lambda: jnp.zeros((self.style_dim,), jnp.float32))

    def mapping(self, z: jax.Array) -> jax.Array:
        """`G.get_latent(z)` = `G.style(z)`: PixelNorm + n_mlp EqualLinear(lr_mul 0.01, fused lrelu). [B, 512] -> W."""
        x = pixel_norm(jnp.asarray(z, jnp.float32))
        for i in range(1, self.n_mlp + 1):
            x = self.style[str(i)](x)
        return x

    def synthesis(self, latent: jax.Array) -> jax.Array:
        """W+ [B, n_latent, 512] (or W [B, 512], repeated) -> images [B, size, size, 3], raw toRGB range (float32).

        Row use as upstream: conv1 w[0], to_rgb1 w[1], then per resolution k: upsampling conv w[2k+1],
        conv w[2k+2], toRGB w[2k+3]. Noise: the stored buffers.
        """
        latent = self._as_wplus(latent)
        noise = [v.value for v in self.noises]
        out = self.conv1(self.input(latent.shape[0]), latent[:, 0], noise[0])
        self.sow("intermediates", "conv1_out", out)
        skip = self.to_rgb1(out, latent[:, 1])
        self.sow("intermediates", "to_rgb1_out", skip)
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, latent[:, i], noise[2 * k + 1])
            out = self.convs[2 * k + 1](out, latent[:, i + 1], noise[2 * k + 2])
            skip = to_rgb(out, latent[:, i + 2], skip)
            self.sow("intermediates", f"to_rgbs_{k}_out", skip)
            i += 2
        return skip.astype(jnp.float32)

    def _as_wplus(self, w):
        w = jnp.asarray(w, jnp.float32)
        if w.ndim == 2:
            return jnp.broadcast_to(w[:, None], (w.shape[0], self.n_latent, w.shape[-1]))
        if w.ndim != 3 or w.shape[1] != self.n_latent:
            raise ValueError(
                f"expected W [B, {self.style_dim}] or W+ [B, {self.n_latent}, {self.style_dim}]: {w.shape}"
            )
        return w

    def truncate(self, w, truncation=1.0, truncation_latent=None):
        """`trunc + psi * (w - trunc)` for W or W+ alike when psi < 1 (else w unchanged, bit for bit).

        `truncation_latent` defaults to `buffers/mean_latent`; it broadcasts against w ([1, 512] or [512]).
        """
        if isinstance(truncation, int | float) and truncation >= 1:
            return w
        t = self.mean_latent.value if truncation_latent is None else jnp.asarray(truncation_latent, jnp.float32)
        if w.ndim == 3 and t.ndim == 2:
            t = t[:, None, :] if t.shape[0] == w.shape[0] or t.shape[0] == 1 else t
        psi = jnp.asarray(truncation, jnp.float32)
        return jnp.where(psi < 1, t + psi * (w - t), w)

    def __call__(
        self,
        z_or_w: jax.Array,
        truncation=1.0,
        truncation_latent=None,
        input_is_latent: bool = False,
        return_latents: bool = False,
    ):
        """`G([z_or_w], truncation, truncation_latent, input_is_latent, return_latents)` with the stored noise.

        z [B, 512] is mapped first (unless `input_is_latent`; a z [B, n_latent, 512] is mapped row by row); W [B, 512] or W+ [B, n_latent, 512] is truncated
        (also W+, as upstream) and a single W is repeated to n_latent rows. Returns images [B, size, size, 3], or
        (images, the truncated W+ actually synthesized) with `return_latents`.
        """
        w = jnp.asarray(z_or_w, jnp.float32)
        if not input_is_latent:
            w = self.mapping(w)
        w = self._as_wplus(self.truncate(w, truncation, truncation_latent))
        img = self.synthesis(w)
        return (img, w) if return_latents else img

    def compute_mean_latent(self, z: jax.Array) -> jax.Array:
        """mean(mapping(z), batch) as [1, style_dim] (`G.mean_latent(n)` on a given z sample)."""
        return jnp.mean(self.mapping(z), axis=0, keepdims=True)

    def init_inputs(self, batch: int = 1) -> jax.Array:
        """A dummy z for `module.init(key, z)` / `jax.eval_shape(module.init, ...)` (creates every variable)."""
        return jnp.zeros((batch, self.style_dim), jnp.float32)
