"""`python -m jaxreenact.preprocess INPUT --out DIR [--sfd weights/sfd --fan weights/fan]`: the authors' face
preprocessing (S3FD → 2D-FAN → square crop → 256×256) on a photo, a video or a folder of images. See
`jaxreenact.data.preprocessing` for the outputs and `jaxreenact.face.pipeline` for the policies. INPUT `example` is
the shipped driving clip; `--tiny` uses a fake face locator (no weights; it finds a fixed "face" in the middle of
every frame that is not blank).
"""

from __future__ import annotations

import argparse

from jaxreenact.common import cli
from jaxreenact.common.errors import UserError, cli_main
from jaxreenact.data import preprocessing
from jaxreenact.face.pipeline import FixedLocate
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.preprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="a photo (.png/.jpg/...), a video (.mp4/.avi/.mov/...) or a folder of images; "
                   f"'example' = the shipped clip ({cli.EXAMPLE_DRIVING.name})")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder (crops/, faces.npz, summary.json)")
    add_weight_flags(p, ("sfd", "fan"))
    cli.add_batch_flag(p, 8, "frames per jit batch")
    p.add_argument(
        "--on-missing",
        choices=("skip", "hold"),
        default="skip",
        help="a frame without a face: skip it (default) or reuse the last good crop box",
    )
    p.add_argument(
        "--smooth-box",
        type=float,
        nargs="?",
        const=0.6,
        default=0.0,
        metavar="ALPHA",
        help="smooth the crop box over a video (EMA weight on the past; flag alone = 0.6; default off)",
    )
    p.add_argument(
        "--face",
        choices=("last", "best", "largest"),
        default="last",
        help="which of several faces with confidence > 0.99: 'last' (the authors': lowest-scored), 'best', 'largest'",
    )
    p.add_argument(
        "--sfd-input",
        choices=("authors", "face_alignment"),
        default="authors",
        help="S3FD input: the authors' RGB [0,255] (default) or face-alignment's BGR minus mean",
    )
    p.add_argument("--width", type=int, default=1000, help="working width the frame is resized to (default 1000)")
    p.add_argument("--max-frames", type=int, default=None, help="process only the first N frames")
    cli.add_run_flags(p, seed_help="unused (the pipeline is deterministic); accepted as every program does")
    return cli.parse(p, argv)


@cli_main
def main(argv=None, locate=None):
    a = parse_args(argv)
    if a.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {a.batch_size}")
    source = cli.input_path(a.input, cli.EXAMPLE_DRIVING)
    spec = preprocessing.inspect_input(source, a.max_frames)  # the input is checked before any network loads
    out = cli.check_out_dir(a.out)
    if a.tiny and locate is None:
        locate = FixedLocate()
    pre = preprocessing.build_preprocessor(
        a.sfd,
        a.fan,
        convention=a.sfd_input,
        choice=a.face,
        on_missing=a.on_missing,
        smooth_box=a.smooth_box,
        width=a.width,
        locate=locate,
    )
    summary = preprocessing.run(
        source,
        out,
        pre,
        batch_size=a.batch_size,
        max_frames=a.max_frames,
        progress=not a.no_progress,
        settings={"face": a.face, "sfd_input": a.sfd_input, "tiny_fake_locator": bool(a.tiny)},
        spec=spec,
    )
    print(preprocessing.format_summary(summary, a.out))
    return summary


if __name__ == "__main__":
    main()
