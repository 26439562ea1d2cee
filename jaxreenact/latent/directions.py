"""The learned direction matrix A (paper Sec. 3.1; upstream `libs/models/direction_matrix.py`) and the W+ shift.

Δw = A·Δp: a Linear 15 → 8·512 (with bias) whose output row index is layer·512 + channel, added to W+ rows 0-7
(`get_shifted_latent_code`). The shifted code is then rendered by the generator with truncation ψ toward the mean
latent, applied *after* the shift (`generate_image`), so the effective shift is ψ·Δw (METHOD.md 1.4).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


class _Linear(nn.Module):
    """`nn.Linear(in, out)` with the authors' init: weight N(0, 0.03²), bias PyTorch's default U(±1/√in)."""

    out_features: int
    weight_std: float = 0.03

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        bound = 1.0 / math.sqrt(fan_in)
        w = self.param("weight", nn.initializers.normal(self.weight_std), (fan_in, self.out_features))
        b = self.param("bias", lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound), (self.out_features,))
        return jnp.matmul(x, w) + b


class DirectionMatrix(nn.Module):
    """A: Δp [B, input_dim] (shift units, ±shift_scale) → Δw [B, num_layers, shift_dim].

    Parameters `linear/weight` [input_dim, num_layers·shift_dim] (the PyTorch `linear.weight` transposed) and
    `linear/bias` [num_layers·shift_dim]. `shift_scale` is not used in the forward pass: it records the units A was
    trained in (Δp spans ±shift_scale; the authors' checkpoints store it), so inference builds Δp in the same units.
    """

    input_dim: int = 15
    num_layers: int = 8
    shift_dim: int = 512
    shift_scale: float = 6.0

    @nn.compact
    def __call__(self, dp: jax.Array) -> jax.Array:
        dp = dp.reshape(-1, self.input_dim)
        out = _Linear(self.num_layers * self.shift_dim, name="linear")(dp)
        return out.reshape(dp.shape[0], self.num_layers, self.shift_dim)


def shift_wplus(w_plus: jax.Array, shift: jax.Array) -> jax.Array:
    """Add shift [B, L, 512] to rows 0..L-1 of W+ [B, n_latent, 512] (no truncation yet)."""
    n = shift.shape[1]
    return jnp.asarray(w_plus).at[:, :n, :].add(shift)


def truncate(w: jax.Array, mean_latent: jax.Array, psi: float) -> jax.Array:
    """mean + ψ·(w − mean), for W [B, 512] or W+ [B, n, 512]; mean is [512] or [1, 512]."""
    mean = jnp.reshape(mean_latent, (-1,))
    return mean + psi * (w - mean)


def repeat_w(w: jax.Array, n_latent: int) -> jax.Array:
    """W [B, 512] → W+ [B, n_latent, 512]."""
    return jnp.repeat(w[:, None, :], n_latent, axis=1)
