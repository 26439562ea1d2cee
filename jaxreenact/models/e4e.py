"""Encoder4Editing (`psp_encoders.Encoder4Editing(50, 'ir_se', 256)`): 256x256 NHWC images in [-1,1] -> W+.

`Encoder4Editing().apply(variables, images_256)` -> [B, 14, 512] (18 rows for a 1024 generator), **no latent_avg
added**, as the authors' inversion uses it. `add_latent_avg=True` adds the stored pSp `latent_avg` (only when the
converted file had one).

Forward: IR-SE50 body with FPN taps after units 6 (c1), 20 (c2), 23 (c3); w0 = styles[0](c3) repeated to every row;
row i += styles[i](features) for i >= 1 where features = c3, then from i = 3 p2 = up(c3) + latlayer1(c2), from
i = 7 p1 = up(p2) + latlayer2(c1); `up` is bilinear with align_corners=True. GradualStyleBlock = log2(spatial) x
[Conv3x3 stride 2 pad 1 (bias) + LeakyReLU(0.01)] then EqualLinear(512, 512, lr_mul=1).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.models.irse import ir_se_backbone, stage_ends
from jaxreenact.nn.stylegan import EqualLinear
from jaxreenact.nn.torch_layers import BUFFERS, Conv2d, interpolate_bilinear

COARSE_IND, MIDDLE_IND = 3, 7
TAPS = (6, 20, 23)  # = stage_ends(50)[1:]
TINY = {"num_layers": 4, "width": 16}  # a small e4e of the same kind (`jaxreenact.weights.tiny`)


def style_count(image_resolution: int) -> int:
    return 2 * int(math.log2(image_resolution)) - 2


class GradualStyleBlock(nn.Module):
    """[N, s, s, 512] -> [N, 512]: log2(spatial) stride-2 convs with LeakyReLU(0.01), then EqualLinear."""

    out_c: int
    spatial: int
    conv_c: int | None = None  # channels of the convs (= out_c upstream; smaller only in tiny encoders)

    @nn.compact
    def __call__(self, x):
        c = self.conv_c or self.out_c
        for k in range(int(math.log2(self.spatial))):
            x = Conv2d(c, 3, 2, 1, name=f"convs_{2 * k}")(x)
            x = jax.nn.leaky_relu(x, 0.01)
        x = x.reshape(-1, c)  # x.view(-1, out_c): spatial is 1x1 here
        return EqualLinear(self.out_c, lr_mul=1.0, name="linear")(x)


def _upsample_add(x, y):
    return (interpolate_bilinear(x, y.shape[1:3], align_corners=True) + y).astype(y.dtype)


class Encoder4Editing(nn.Module):
    """e4e encoder; x: [B, 256, 256, 3] in [-1, 1] -> W+ [B, style_count, 512]."""

    num_layers: int = 50
    image_resolution: int = 256  # the generator's resolution (sets the number of W+ rows), not the input size
    has_latent_avg: bool = False  # a pSp-layout file's latent_avg, kept in `buffers` as [style_count, 512]
    width: int = 64  # channels of the first IR-SE stage (64 upstream; smaller only for tests and `:tiny` configs)
    dtype: str = "float32"  # compute dtype (float32 | bfloat16); parameters and outputs stay float32

    @nn.compact
    def __call__(self, x, add_latent_avg: bool = False):
        n = style_count(self.image_resolution)
        avg = None
        if self.has_latent_avg:
            avg = self.variable(BUFFERS, "latent_avg", lambda: jnp.zeros((n, 512), jnp.float32)).value
        taps = stage_ends(self.num_layers)[1:]
        _, feats = ir_se_backbone(x.astype(self.dtype), self.num_layers, taps=taps, width=self.width)
        c1, c2, c3 = (feats[i] for i in taps)
        cc = 512 * self.width // 64

        def spatial(i):
            return 16 if i < COARSE_IND else 32 if i < MIDDLE_IND else 64

        w0 = GradualStyleBlock(512, spatial(0), cc, name="styles_0")(c3)
        rows = [w0]
        features = c3
        p2 = None
        for i in range(1, n):
            if i == COARSE_IND:
                p2 = _upsample_add(c3, Conv2d(cc, 1, name="latlayer1")(c2))
                features = p2
            elif i == MIDDLE_IND:
                features = _upsample_add(p2, Conv2d(cc, 1, name="latlayer2")(c1))
            rows.append(w0 + GradualStyleBlock(512, spatial(i), cc, name=f"styles_{i}")(features))
        w = jnp.stack(rows, axis=1).astype(jnp.float32)
        if add_latent_avg:
            if avg is None:
                raise ValueError("add_latent_avg=True, but this encoder was converted without a latent_avg")
            w = w + avg[None]
        return w
