"""Build the frames+latents dataset of a VoxCeleb-style tree (TFDS, array_record; no TensorFlow needed).

    python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR [--split train|test] [--overwrite]

Writes ``TFDS_DIR/jaxreenact_voxceleb/<split>/1.0.0/`` and, beside the data, ``build_report.json`` (every skipped
file with its reason) and ``video_index.npz``. Interrupted (SIGTERM, Ctrl-C: exit status 143 / 130), it keeps the
splits already built and the rerun builds the interrupted split again. See `jaxreenact.data.voxceleb`.
"""

from __future__ import annotations

import argparse

from jaxreenact.common import distributed
from jaxreenact.common.errors import cli_main
from jaxreenact.data.voxceleb import build_frames_dataset


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.data.build", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--root",
        required=True,
        help="tree root: <root>/<id>/<video>/frames_cropped/*.png and <root>/<id>/<video>/inversion/latent_codes/*.npy",
    )
    p.add_argument("--out", required=True, help="output folder (TFDS data dir); nothing is written elsewhere")
    p.add_argument("--split", default="train", help="split name to build from this root (default: train)")
    p.add_argument("--image-size", type=int, default=256, help="frames of another size are resized (default 256)")
    p.add_argument("--overwrite", action="store_true", help="rebuild this split if it already exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    distributed.refuse("python -m jaxreenact.data.build")  # one writer per split

    report = build_frames_dataset(
        args.root,
        args.out,
        split=args.split,
        image_size=args.image_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(report.summary())
    return report


if __name__ == "__main__":
    main()
