"""`python -m jaxreenact.edit --source IMG_OR_NPY --directions 0 1 3 --out DIR`: move a face along one learned
direction at a time across its range (the authors' editing script, METHOD.md 7.3); a GIF and an MP4 per direction
and a contact sheet. See `jaxreenact.inference.editing`.
"""

from __future__ import annotations

import argparse

from jaxreenact.common import cli
from jaxreenact.common.errors import cli_main
from jaxreenact.inference import editing
from jaxreenact.pose.motion import direction_names
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    names = ", ".join(f"{i} {n}" for i, n in enumerate(direction_names()))
    p = argparse.ArgumentParser(prog="python -m jaxreenact.edit", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True,
                   help="a face photo, or a .npy W [512] / W+ [14, 512] latent; 'example' = the shipped photo "
                        f"({cli.EXAMPLE_SOURCE.name})")  # fmt: skip
    p.add_argument("--directions", type=int, nargs="+", required=True, metavar="D", help=f"direction indices: {names}")
    p.add_argument("--out", required=True, help="output folder")
    cli.add_tune_flags(p, "a photo source", default_on=False)  # off by default, as the authors' editing script
    p.add_argument("--save-images", action="store_true", help="also write every edited frame as PNG under images/")
    cli.add_batch_flag(p, 16, "frames per jitted batch")
    add_weight_flags(p, editing.WEIGHT_NAMES)
    cli.add_run_flags(p)
    return cli.parse(p, argv)


@cli_main
def main(argv=None, locate=None):
    a = parse_args(argv)
    tune, tune_steps = cli.tuning(a)
    opts = editing.Options(
        source=cli.input_path(a.source, cli.EXAMPLE_SOURCE),
        out=a.out,
        directions=a.directions,
        tune=tune,
        tune_steps=tune_steps,
        save_images=a.save_images,
        batch_size=a.batch_size,
        weights={n: getattr(a, n) for n in editing.WEIGHT_NAMES},
        tiny=a.tiny,
        seed=a.seed,
        progress=not a.no_progress,
    )
    summary = editing.run(opts, locate=locate)
    print(editing.format_summary(summary, a.out))
    return summary


if __name__ == "__main__":
    main()
