"""Pose/expression ranges of a generator's faces (the authors' `extract_statistics.py`, METHOD.md 2.5), in the
ranges-file layout: a float64 [54, 2] array whose rows are yaw, pitch, roll (degrees), jaw (pose[3], radians),
exp0..exp49, columns [min, max] over N faces G(z, ψ) with z ~ N(0, I).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxreenact.common.constants import DECA_BOX
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
) -> np.ndarray:
    """min/max [54, 2] (float64) of `ranges_rows` over `num` generated faces. DECA reads each face as training does
    (`setup.deca_codes_boxed` with training's default crop rule `deca_box`, as the authors' `extract_statistics.py`
    runs their DECA wrapper; "landmarks" needs `nets.sfd`/`nets.fan`)."""
    theta = jnp.asarray(fixed_deca_theta(1))
    z_dim = nets.g.style_dim

    @jax.jit
    def rows(key):
        z = jax.random.normal(key, (batch, z_dim), jnp.float32)
        img = render(nets.g, frozen["g"], sample_wplus(nets.g, frozen["g"], z), truncation)
        return ranges_rows(deca_codes_boxed(nets, frozen, img, deca_box, theta))

    lo = np.full(54, np.inf)
    hi = np.full(54, -np.inf)
    steps = -(-num // batch)
    it = range(steps)
    if progress:
        it = tqdm(it, desc="stats", unit="batch")
    root = jax.random.key(seed)
    for i in it:
        r = np.asarray(rows(jax.random.fold_in(root, i)), np.float64)[: num - i * batch]
        lo, hi = np.minimum(lo, r.min(0)), np.maximum(hi, r.max(0))
    return np.stack([lo, hi], axis=1)
