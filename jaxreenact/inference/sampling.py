"""Samples of a generator: z from `numpy.random.default_rng(seed)` (the same faces on any backend), truncation
toward the stored mean latent, stored noise, a grid PNG (`python -m jaxreenact.generate`)."""

from __future__ import annotations

import logging

import jax
import numpy as np
from tqdm import tqdm

from jaxreenact.common.errors import UserError
from jaxreenact.common.images import make_grid, save_png
from jaxreenact.common.mesh import pad_rows
from jaxreenact.weights import load_bundle

log = logging.getLogger(__name__)


def sample(module, variables, num: int, seed: int = 0, truncation: float = 0.7, batch: int = 8,
           progress: bool = False) -> np.ndarray:  # fmt: skip
    """`num` images [num, size, size, 3] (raw generator range) from z = default_rng(seed).standard_normal."""
    z = np.random.default_rng(seed).standard_normal((num, module.style_dim), dtype=np.float32)
    gen = jax.jit(lambda v, z: module.apply(v, z, truncation=truncation))
    if progress:
        log.info("sampling %d image(s) in batches of %d; the first batch compiles the generator (tens of seconds on "
                 "a CPU)", num, batch)  # fmt: skip
    out = []
    with tqdm(total=num, desc="generate", unit="image", disable=not progress) as bar:
        for i in range(0, num, batch):
            zb = z[i : i + batch]
            out.append(np.asarray(gen(variables, pad_rows(zb, batch, fill="zeros")))[: len(zb)])
            bar.update(len(zb))
    return np.concatenate(out)


def generate(generator: str, num: int, seed: int, truncation: float, out: str, nrow: int | None = None, batch=8,
             tiny: bool = False, progress: bool = False):  # fmt: skip
    """Write a grid of `num` samples of the converted generator at `generator` (or a random tiny one)."""
    if num < 1:
        raise UserError(f"--num must be at least 1, got {num}")
    if batch < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch}")
    nets, variables = load_bundle(("generator",), {"generator": generator}, tiny_seed=seed if tiny else None)
    module, variables = nets.g, variables["g"]
    images = sample(module, variables, num, seed, truncation, batch=min(batch, num), progress=progress)
    save_png(out, make_grid(images, nrow))
    return images
