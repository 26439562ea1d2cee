"""StyleGAN2 (rosinality layout) primitives in NHWC, mirroring `libs/gan/StyleGAN2/model.py` and its `op/`.

Equalized learning rate is applied at call time: the stored parameter is the raw PyTorch tensor
(transposed to [in, out] for dense layers), so converted weights need no rescaling.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

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
