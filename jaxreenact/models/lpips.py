"""LPIPS v0.1 with AlexNet, as the authors' perceptual loss computes it (the pixel2style2pixel port, NHWC).

`LPIPS().apply(variables, x, y)` -> [B] per-pair distances of NHWC images (nominally [-1, 1]).
Per image: z-score (x - shift) / scale; torchvision AlexNet `features` (conv 11/4 pad 2 -> ReLU -> maxpool 3/2 ->
conv 5 pad 2 -> ReLU -> maxpool 3/2 -> conv 3 -> ReLU -> conv 3 -> ReLU -> conv 3 -> ReLU), tapped after the five
ReLUs; each tap normalised over channels as f / (sqrt(sum_c f^2 + 1e-9) + 1e-10); (fx - fy)^2; 1x1 conv without
bias (`lin{i}`, the v0.1 heads, used as stored); spatial mean; sum over layers.
`lpips_loss` is the loss' batch reduction (sum over layers and batch / B, i.e. the batch mean).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common.mesh import masked_mean
from jaxreenact.nn.torch_layers import Conv2d, max_pool2d

SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
CHANNELS = (64, 192, 384, 256, 256)
# torchvision alexnet().features indices of the convolutions: (index, out channels, kernel, stride, padding)
ALEX_CONVS = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))


def normalize_activation(f):
    """`f / (sqrt(sum_c f^2 + 1e-9) + 1e-10)` over the channel (last) axis."""
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True) + 1e-9) + 1e-10)


class LPIPS(nn.Module):
    """LPIPS-alex v0.1 (pSp port): (x, y) [B, H, W, 3] each -> [B] distances.

    `return_maps=True` returns the 5 heads' outputs `lin{i}((fx - fy)^2)`, each [B, h_i, w_i], instead.
    """

    width_div: int = 1  # > 1 only for small test networks (`jaxreenact.weights.tiny`): AlexNet channels // width_div
    # compute dtype of AlexNet (float32 | bfloat16); the channel norms, the heads and the means stay float32
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x, y, return_maps: bool = False):
        b = x.shape[0]
        f = jnp.concatenate([x, y], axis=0)  # both images through AlexNet in one batch (it is frozen)
        f = ((f - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)).astype(self.dtype)
        maps = []
        for j, (idx, c, k, s, p) in enumerate(ALEX_CONVS):
            if j in (1, 2):  # MaxPool2d(3, 2) after the first two ReLUs
                f = max_pool2d(f, 3, 2)
            f = jax.nn.relu(Conv2d(c // self.width_div, k, s, p, name=f"features_{idx}")(f))
            n = normalize_activation(f.astype(jnp.float32))  # a sum over channels: float32
            d = (n[:b] - n[b:]) ** 2
            maps.append(Conv2d(1, 1, use_bias=False, name=f"lin{j}")(d)[..., 0])
        if return_maps:
            return maps
        return per_layer(maps).sum(axis=0)


def per_layer(maps):
    """[5, B]: spatial means of the heads' maps (`LPIPS.apply(..., return_maps=True)`)."""
    return jnp.stack([m.mean(axis=(1, 2)) for m in maps])


def range_1_to_255(x):
    """`torch_range_1_to_255`: clamp to [-1, 1], +1, / (2 + 1e-5), * 255 (gradient 1 on the closed interval)."""
    x = jnp.where(x < -1.0, -1.0, jnp.where(x > 1.0, 1.0, x))
    return (x + 1.0) / (2.0 + 1e-5) * 255.0


def lpips_loss(variables, x, y, *, range_255: bool = False, module: LPIPS | None = None, weight=None):
    """The perceptual loss: sum over layers and batch / B (a scalar). `range_255=True` is the paired-mode call,
    which feeds the [-1,1] images converted to [0, 255] by `range_1_to_255` (an upstream quirk, kept).
    `weight` [B]: the masked batch mean of `common.mesh.masked_mean` (0 for padded rows)."""
    if range_255:
        x, y = range_1_to_255(x), range_1_to_255(y)
    d = (module or LPIPS()).apply(variables, x, y)
    if weight is not None:
        return masked_mean(d, weight)
    return jnp.sum(d) / x.shape[0]
