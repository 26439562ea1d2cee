"""Pose/expression ranges of a generator's faces (the authors' `extract_statistics.py`), in the ranges-file layout.

    python -m jaxreenact.stats --generator weights/stylegan2-voxceleb --deca weights/deca --num 2000 \\
        --out ranges_mine.npy

N faces G(z, ψ=0.7) with z ~ N(0, I) from `--seed`, DECA on each (batched under jit), and per parameter the min and
max over the N faces: a float64 [54, 2] array whose rows are yaw, pitch, roll (degrees), jaw (pose[3], radians),
exp0..exp49, as `jaxreenact/resources/ranges_voxceleb.npy`. DECA's crop box is found as training finds it
(`--deca-box`, default training's `config.model.deca_box`; "landmarks" also needs `--sfd` and `--fan`), since the
authors' script reads DECA through the same wrapper as their trainer. `--tiny` uses small random networks.
"""

from __future__ import annotations

import argparse
import pathlib

from jaxreenact.common import cli
from jaxreenact.common.constants import DECA_BOX
from jaxreenact.common.errors import UserError, cli_main
from jaxreenact.common.files import atomic_save_npy
from jaxreenact.training.ranges import compute_ranges
from jaxreenact.training.setup import DECA_BOXES
from jaxreenact.weights import load_bundle
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.stats", description=__doc__.split("\n\n")[0])
    add_weight_flags(p, ("generator", "deca", "sfd", "fan"))
    p.add_argument("--deca-box", choices=DECA_BOXES, default=DECA_BOX,
                   help=f"how DECA's crop box is found, as training's config.model.deca_box (default {DECA_BOX})")  # fmt: skip
    p.add_argument("--num", type=int, default=2000, help="number of generated faces (the authors use 2000)")
    cli.add_batch_flag(p, 16, "faces per jitted batch")
    p.add_argument("--truncation", type=float, default=0.7)
    p.add_argument("--out", required=True, help="output .npy (float64 [54, 2], rows [min, max])")
    cli.add_run_flags(p)
    return cli.parse(p, argv)


@cli_main
def main(argv=None):
    a = parse_args(argv)
    if a.num < 1 or a.batch_size < 1:
        raise UserError(f"--num ({a.num}) and --batch-size ({a.batch_size}) must be positive")
    cli.check_out_file(a.out)
    names = ("generator", "deca") + (("sfd", "fan") if a.deca_box == "landmarks" else ())
    nets, variables = load_bundle(names, {n: getattr(a, n) for n in names}, tiny_seed=0 if a.tiny else None)
    r = compute_ranges(nets, variables, a.num, a.seed, a.batch_size, a.truncation, progress=not a.no_progress,
                       deca_box=a.deca_box)  # fmt: skip
    out = pathlib.Path(a.out)
    atomic_save_npy(out, r)
    print(f"ranges of {a.num} faces: yaw [{r[0, 0]:.1f}, {r[0, 1]:.1f}] deg, jaw [{r[3, 0]:.3f}, {r[3, 1]:.3f}]")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
