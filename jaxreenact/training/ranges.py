"""Pose/expression ranges of a generator's faces (the authors' `extract_statistics.py`, METHOD.md 2.5), in the
ranges-file layout: a float64 [54, 2] array whose rows are yaw, pitch, roll (degrees), jaw (pose[3], radians),
exp0..exp49, columns [min, max] over N faces G(z, ψ) with z ~ N(0, I).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxreenact.common.constants import DECA_BOX
from jaxreenact.common.mesh import batch_sharded, local_mesh, put_replicated, replicated, round_up
from jaxreenact.latent.render import render, sample_wplus
from jaxreenact.pose.deca import angles_of, fixed_deca_theta
from jaxreenact.training.setup import deca_codes_boxed


def ranges_rows(codes) -> jax.Array:
    """[B, 54]: yaw, pitch, roll (degrees), jaw, exp0..49 of DECA codes."""
    return jnp.concatenate([angles_of(codes), codes["pose"][:, 3:4], codes["exp"]], axis=1)


def compute_ranges(
    nets,
    frozen,
    num: int,
    seed: int = 0,
    batch: int = 16,
    truncation: float = 0.7,
    progress: bool = True,
    deca_box: str = DECA_BOX,
    mesh=None,
) -> np.ndarray:
    """min/max [54, 2] (float64) of `ranges_rows` over `num` generated faces. DECA reads each face as training does
    (`setup.deca_codes_boxed` with training's default crop rule `deca_box`, as the authors' `extract_statistics.py`
    runs their DECA wrapper; "landmarks" needs `nets.sfd`/`nets.fan`). Each batch is split over `mesh` (default:
    every local device) and the running min/max stay on the devices until the end. The draws are those of `batch`
    rows whatever the device count: padding rows (a multiple of the devices) repeat a drawn row and count for nothing."""
    mesh = local_mesh() if mesh is None else mesh
    padded = round_up(batch, mesh.size)
    rows_sharding = batch_sharded(mesh)
    frozen = put_replicated(frozen, mesh)  # an argument, not a closure: no weights folded into the program
    theta = jnp.asarray(fixed_deca_theta(1))
    z_dim = nets.g.style_dim

    @functools.partial(jax.jit, out_shardings=replicated(mesh))
    def step(frozen, key, n_valid, lohi):
        z = jax.random.normal(key, (batch, z_dim), jnp.float32)
        z = jax.lax.with_sharding_constraint(jnp.concatenate([z, jnp.repeat(z[-1:], padded - batch, 0)]), rows_sharding)
        img = render(nets.g, frozen["g"], sample_wplus(nets.g, frozen["g"], z), truncation)
        r = ranges_rows(deca_codes_boxed(nets, frozen, img, deca_box, theta))
        valid = (jnp.arange(padded) < jnp.minimum(n_valid, batch))[:, None]  # padding and the last batch's extras
        lo = jnp.minimum(lohi[0], jnp.where(valid, r, jnp.inf).min(0))
        hi = jnp.maximum(lohi[1], jnp.where(valid, r, -jnp.inf).max(0))
        return jnp.stack([lo, hi])

    lohi = put_replicated(np.stack([np.full(54, np.inf), np.full(54, -np.inf)]).astype(np.float32), mesh)
    steps = -(-num // batch)
    it = range(steps)
    if progress:
        it = tqdm(it, desc="stats", unit="batch")
    root = jax.random.key(seed)
    for i in it:  # no host read until the end: min and max of float32 values are exact in float32
        lohi = step(frozen, jax.random.fold_in(root, i), jnp.int32(num - i * batch), lohi)
    return np.asarray(lohi, np.float64).T
