"""Sample a grid of images from a converted StyleGAN2 generator.

    python -m jaxreenact.generate --generator converted/stylegan2_vox256 --num 16 --seed 0 --truncation 0.7 \
        --out samples.png

z ~ N(0, 1) from `numpy.random.default_rng(seed)` (so a seed gives the same faces on any backend), truncation
toward the generator's stored mean latent (METHOD.md 1.2), stored noise, images tiled ceil(sqrt(num)) per row.
"""

from __future__ import annotations

import argparse

from jaxreenact.common.errors import cli_main
from jaxreenact.inference.sampling import generate


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
