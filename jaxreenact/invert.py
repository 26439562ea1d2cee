"""`python -m jaxreenact.invert DATASET_ROOT`: e4e W+ latents for every frame of a VoxCeleb-style tree
(`<id>/<video>/frames_cropped/*.png` → `<id>/<video>/inversion/latent_codes/*.npy`), resumable (interrupted by
SIGTERM or Ctrl-C it keeps every finished frame, exits 143 / 130, and the rerun continues), and split over the
processes of a multi-process run; see
`jaxreenact.inference.inversion`. The next step is `python -m jaxreenact.data.build`, then the mixed and paired stages.
"""

from __future__ import annotations

import argparse

from jaxreenact.common import cli, distributed
from jaxreenact.common.constants import TRUNCATION
from jaxreenact.common.errors import cli_main
from jaxreenact.inference import inversion
from jaxreenact.weights import load_bundle
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.invert", description=__doc__.split("\n\n")[0])
    p.add_argument("root", metavar="DATASET_ROOT", help="folder holding <id>/<video>/frames_cropped/*.png")
    cli.add_batch_flag(p, 32, "frames per jitted batch, rounded up to a multiple of the device count")
    p.add_argument("--save-images", action="store_true",
                   help="also write G(w) of every latent to <id>/<video>/inversion/frames/<name>.png")  # fmt: skip
    p.add_argument("--truncation", type=float, default=TRUNCATION, metavar="PSI",
                   help="ψ of the --save-images renders (default 0.7, as the authors' invert_images.py; 1 = the "
                        "latent as it is); the latents are never truncated")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="invert every frame again (default: skip frames done)")
    add_weight_flags(p, ("e4e", "generator"))
    cli.add_run_flags(p)
    return cli.parse(p, argv)


@cli_main
def main(argv=None):
    a = parse_args(argv)
    distributed.initialize()  # several processes split the frames (launch/local_multiprocess.sh, Slurm)
    with distributed.fail_together("jaxreenact.invert"):  # an error on one process ends all of them at once
        inversion.plan(a.root)  # a wrong root or ψ fails here, before any network is loaded
        inversion.check_truncation(a.truncation)
        names = ("e4e", "generator") if a.save_images or a.tiny else ("e4e",)
        nets, variables = load_bundle(names, {n: getattr(a, n) for n in names}, tiny_seed=a.seed if a.tiny else None)
        report = inversion.invert_tree(
            a.root,
            nets,
            variables,
            a.batch_size,
            a.save_images,
            a.overwrite,
            progress=not a.no_progress,
            truncation=a.truncation,
        )
    print(report.format(a.root))
    print(f"wrote {a.root}/<id>/<video>/inversion/latent_codes/*.npy"
          + (" and inversion/frames/*.png" if a.save_images else ""))  # fmt: skip
    return report


if __name__ == "__main__":
    main()
