"""Sample a grid of images from a converted StyleGAN2 generator.

    python -m jaxreenact.generate --generator converted/stylegan2_vox256 --num 16 --seed 0 --truncation 0.7 \
        --out samples.png

z ~ N(0, 1) from `numpy.random.default_rng(seed)` (so a seed gives the same faces on any backend), truncation
toward the generator's stored mean latent (METHOD.md 1.2), stored noise, images tiled ceil(sqrt(num)) per row.
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import numpy as np

from jaxreenact import visualize, weights
from jaxreenact.errors import UserError, cli_main


def sample(module, variables, num: int, seed: int = 0, truncation: float = 0.7, batch: int = 8) -> np.ndarray:
    """`num` images [num, size, size, 3] (raw generator range) from z = default_rng(seed).standard_normal."""
    z = np.random.default_rng(seed).standard_normal((num, module.style_dim), dtype=np.float32)
    gen = jax.jit(lambda v, z: module.apply(v, z, truncation=truncation))
    out = []
    for i in range(0, num, batch):
        zb = z[i : i + batch]
        n = len(zb)
        if n < batch:  # pad the last batch so one compiled shape serves every call
            zb = np.concatenate([zb, np.zeros((batch - n, zb.shape[1]), np.float32)])
        out.append(np.asarray(gen(variables, zb))[:n])
    return np.concatenate(out)


def generate(generator: str, num: int, seed: int, truncation: float, out: str, nrow: int | None = None, batch=8):
    path = pathlib.Path(generator)
    if not path.exists():
        raise UserError(
            f"{path}: generator not found; convert the PyTorch checkpoint first: "
            "python -m converters.stylegan2 SRC.pt DST"
        )
    module, variables = weights.load(path)
    if not hasattr(module, "synthesis"):
        raise UserError(f"{path}: holds a {type(module).__name__}, not a StyleGAN2 generator")
    if num < 1:
        raise UserError(f"--num must be at least 1, got {num}")
    images = sample(module, variables, num, seed, truncation, batch=min(batch, num))
    visualize.save_png(out, visualize.make_grid(images, nrow))
    return images


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.generate", description=__doc__.split("\n")[0])
    p.add_argument("--generator", required=True, help="converted generator directory (python -m converters.stylegan2)")
    p.add_argument("--num", type=int, default=16, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the z draw")
    p.add_argument("--truncation", type=float, default=0.7, help="psi; 1 disables truncation")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default ceil(sqrt(num)))")
    p.add_argument("--batch", type=int, default=8, help="images per generator call")
    p.add_argument("--out", default="samples.png", help="output PNG")
    a = p.parse_args(argv)
    generate(a.generator, a.num, a.seed, a.truncation, a.out, a.nrow, a.batch)
    print(f"wrote {a.out} ({a.num} samples, truncation {a.truncation}, seed {a.seed})")


if __name__ == "__main__":
    main()
