"""`python -m jaxreenact.invert DATASET_ROOT`: e4e W+ latents for every frame of a VoxCeleb-style tree
(`<id>/<video>/frames_cropped/*.png` → `<id>/<video>/inversion/latent_codes/*.npy`), resumable; see
`jaxreenact.inversion`. The next step is `python -m jaxreenact.data.build`, then the mixed and paired stages.
"""

from __future__ import annotations

import argparse

from jaxreenact.errors import cli_main
from jaxreenact.reenact import add_run_args


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.invert", description=__doc__.split("\n\n")[0])
    p.add_argument("root", metavar="DATASET_ROOT", help="folder holding <id>/<video>/frames_cropped/*.png")
    p.add_argument("--batch-size", type=int, default=32,
                   help="frames per jitted batch, rounded up to a multiple of the device count (default 32)")  # fmt: skip
    p.add_argument("--save-images", action="store_true",
                   help="also write G(w) of every latent to <id>/<video>/inversion/frames/<name>.png")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="invert every frame again (default: skip frames done)")
    add_run_args(p, ("e4e", "generator"))
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    from jaxreenact import inversion
    from jaxreenact import reenact_core as core

    a = parse_args(argv)
    inversion.plan(a.root)  # a wrong root fails here, before any network is loaded
    if a.tiny:
        models = core.load_models({}, tiny=True, seed=a.seed)
        nets, frozen = models.nets, models.frozen
    else:
        names = ("e4e", "generator") if a.save_images else ("e4e",)
        paths = {n: getattr(a, n) for n in names}
        core.check_weight_paths(paths)
        nets, frozen = load_encoder(paths)
    report = inversion.invert_tree(
        a.root, nets, frozen, a.batch_size, a.save_images, a.overwrite, progress=not a.no_progress
    )
    print(report.format(a.root))
    return report


def load_encoder(paths: dict[str, str]):
    """(Networks with e4e (and g), frozen variables) from converted checkpoints."""
    from jaxreenact import method
    from jaxreenact.reenact_core import load_converted

    mods, frozen = load_converted(paths)
    return method.Networks(g=mods.get("g"), deca=None, arcface=None, lpips=None, e4e=mods["e4e"]), frozen


if __name__ == "__main__":
    main()
