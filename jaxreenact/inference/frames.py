"""The per-frame core of inference, batched under jit: DECA p of crops, G(trunc(w + A·Δp)), e4e, G(w).

Each function takes the bundle's modules (`nets`, static) and variables explicitly and fixed-size batches (the last
batch padded, `common.mesh.map_batches`), so one compilation serves a whole video.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common.images import from_uint8, to_uint8_jax
from jaxreenact.common.mesh import cpu_chunks, map_batches
from jaxreenact.latent import render as render_lib
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.weights import Networks


@functools.partial(jax.jit, static_argnames=("deca", "layout"))
def _p_of(deca, deca_vars, images_u8, theta, layout):
    codes = deca_lib.encode(deca, deca_vars, from_uint8(images_u8), theta)
    return pose.params_to_p(codes, layout)


def p_of_crops(nets: Networks, variables, layout, crops_u8: np.ndarray, theta: np.ndarray, batch: int | None = None):
    """Raw p [N, D] of 256² crops (uint8 [N, 256, 256, 3]) with DECA crop matrices theta [N, 3, 3]."""
    fn = lambda x, t: _p_of(nets.deca, variables["deca"], x, jnp.asarray(t), layout)
    return map_batches(fn, [crops_u8, theta], batch or len(crops_u8)).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("g", "a", "truncation"))
def _render_dp(g, a, g_vars, a_vars, w_src, dp, truncation):
    return to_uint8_jax(render_lib.render_shifted(g, g_vars, a, a_vars, w_src, dp, truncation))


def render_dp(nets: Networks, variables, g_vars, w_src, dp: np.ndarray, batch: int,
              truncation: float = render_lib.TRUNCATION) -> np.ndarray:  # fmt: skip
    """uint8 frames [N, 256, 256, 3] = G(trunc(w_src + A·Δp)) for Δp [N, D]; `g_vars` may be a tuned generator."""
    fn = lambda d: _render_dp(nets.g, nets.A, g_vars, variables["A"], w_src, jnp.asarray(d), truncation)
    return map_batches(fn, [np.asarray(dp, np.float32)], batch, fill="zeros")


@functools.partial(jax.jit, static_argnames=("g", "truncation"))
def render_w(g, g_vars, w, truncation: float = render_lib.TRUNCATION):
    """uint8 G(trunc(w)) of W+ [B, n, 512]."""
    return to_uint8_jax(render_lib.render(g, g_vars, w, truncation))


@functools.partial(jax.jit, static_argnames=("e4e",))
def e4e_codes(e4e, e4e_vars, images_u8):
    """e4e W+ [B, n_latent, 512] of uint8 crops [B, 256, 256, 3] (no latent_avg added, as the authors); a few
    images at a time on a CPU (`common.mesh.cpu_chunks`)."""
    return cpu_chunks(lambda x: e4e.apply(e4e_vars, from_uint8(x)), images_u8)
