"""W+ → G → image: the generator as the method drives it (METHOD.md 1.4).

The authors' `generate_image` applies truncation ψ toward the mean latent to every latent it renders, W+ inputs
included, after the A-shift; anything larger than 256² is pooled down to 256² (tiny test generators are upsampled).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxreenact.common.constants import IMAGE_SIZE, TRUNCATION
from jaxreenact.latent import directions
from jaxreenact.nn.torch_layers import adaptive_avg_pool2d, interpolate_bilinear


def to_256(images):
    """[B, S, S, 3] → [B, 256, 256, 3]: adaptive average pooling above 256 (as upstream), bilinear below."""
    size = images.shape[1]
    if size > IMAGE_SIZE:
        return adaptive_avg_pool2d(images, IMAGE_SIZE)
    if size < IMAGE_SIZE:
        return interpolate_bilinear(images, (IMAGE_SIZE, IMAGE_SIZE), align_corners=False)
    return images


def mapping(g, g_vars, z):
    """z [B, 512] → untruncated W [B, 512] (`G.get_latent`)."""
    return g.apply(g_vars, z, method="mapping")


def render(g, g_vars, w_plus, truncation: float = TRUNCATION, truncation_latent=None):
    """G(W+ [B, n_latent, 512]) with truncation toward `truncation_latent` ([1, 512]; None: the generator's stored
    mean latent) → [B, 256, 256, 3] in about [-1, 1]."""
    return to_256(g.apply(g_vars, w_plus, truncation=truncation, truncation_latent=truncation_latent,
                          input_is_latent=True))  # fmt: skip


def upstream_size(images):
    """The size the authors' `generate_image` returns: pooled to 256² above it, the generator's own size otherwise
    (the parity programs compare at this size; the library's outputs are always 256², `to_256`)."""
    return to_256(images) if images.shape[1] > 256 else images


def shifted_image(g, g_vars, w_plus, shift, truncation: float = TRUNCATION, truncation_latent=None):
    """shift [B, L, 512] added to rows 0..L-1 of w_plus [B or 1, n_latent, 512], truncated by ψ toward
    `truncation_latent` after the shift, rendered at the generator's size: (images [B, S, S, 3], the truncated
    latents G synthesized [B, n_latent, 512])."""
    w = directions.shift_wplus(jnp.broadcast_to(w_plus, (shift.shape[0], *w_plus.shape[1:])), shift)
    return g.apply(g_vars, w, truncation=truncation, truncation_latent=truncation_latent, input_is_latent=True,
                   return_latents=True)  # fmt: skip


def render_shift(g, g_vars, w_plus, shift, truncation: float = TRUNCATION, truncation_latent=None):
    """The per-frame core given A's output (`generate_image` with `shift_code`): `shifted_image` at 256².
    Returns (images [B, 256, 256, 3], the truncated latents G synthesized [B, n_latent, 512])."""
    img, lat = shifted_image(g, g_vars, w_plus, shift, truncation, truncation_latent)
    return to_256(img), lat


def render_shifted(g, g_vars, a, a_vars, w_plus, dp, truncation: float = TRUNCATION, truncation_latent=None):
    """G(trunc(w + A·Δp)): Δp [B, D] in shift units, w_plus [B or 1, n_latent, 512] → images [B, 256, 256, 3]."""
    return render_shift(g, g_vars, w_plus, a.apply(a_vars, dp), truncation, truncation_latent)[0]


def sample_wplus(g, g_vars, z):
    """z [B, 512] → W+ [B, n_latent, 512] (W repeated, untruncated)."""
    return directions.repeat_w(mapping(g, g_vars, z), g.n_latent)
