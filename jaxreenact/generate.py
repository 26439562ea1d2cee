"""Sample a grid of images from a converted StyleGAN2 generator.

    python -m jaxreenact.generate --generator weights/stylegan2-voxceleb --num 16 --seed 0 --truncation 0.7 \\
        --out samples.png
    python -m jaxreenact.generate --tiny --num 4 --out runs/samples-tiny.png       # random tiny generator

z ~ N(0, 1) from `numpy.random.default_rng(seed)` (so a seed gives the same faces on any backend), truncation
toward the generator's stored mean latent (METHOD.md 1.2), stored noise, images tiled ceil(sqrt(num)) per row.
"""

from __future__ import annotations

import argparse

from jaxreenact.common import cli
from jaxreenact.common.errors import cli_main
from jaxreenact.inference.sampling import generate
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.generate", description=__doc__.split("\n")[0])
    add_weight_flags(p, ("generator",))
    p.add_argument("--num", type=int, default=16, help="number of samples")
    p.add_argument("--truncation", type=float, default=0.7, help="psi; 1 disables truncation")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default ceil(sqrt(num)))")
    cli.add_batch_flag(p, 8, "images per generator call")
    p.add_argument("--out", default="samples.png", help="output PNG (default samples.png)")
    cli.add_run_flags(p, seed_help="seed of the z draw (and of the --tiny generator)")
    return cli.parse(p, argv)


@cli_main
def main(argv=None):
    a = parse_args(argv)
    out = cli.check_out_file(a.out)
    generate(
        a.generator, a.num, a.seed, a.truncation, out, a.nrow, a.batch_size, tiny=a.tiny, progress=not a.no_progress
    )
    print(f"wrote {out} ({a.num} samples, truncation {a.truncation}, seed {a.seed}"
          f"{'; --tiny random generator: the faces mean nothing' if a.tiny else ''})")  # fmt: skip


if __name__ == "__main__":
    main()
