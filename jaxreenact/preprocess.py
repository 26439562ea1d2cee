"""`python -m jaxreenact.preprocess INPUT --out DIR --sfd SFD_DST --fan FAN_DST`: the authors' face preprocessing
(S3FD → 2D-FAN → square crop → 256×256) on a photo, a video or a folder of images. See
`jaxreenact.data.preprocessing` for the outputs and `jaxreenact.face.pipeline` for the policies.
"""

from __future__ import annotations

import argparse

from jaxreenact.common.errors import cli_main
from jaxreenact.data import preprocessing


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.preprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="a photo (.png/.jpg/...), a video (.mp4/.avi/.mov/...) or a folder of images")
    p.add_argument("--out", required=True, help="output folder (crops/, faces.npz, summary.json)")
    p.add_argument("--sfd", required=True, help="converted S3FD checkpoint (python -m converters.sfd SRC DST)")
    p.add_argument("--fan", required=True, help="converted 2D-FAN checkpoint (python -m converters.fan SRC DST)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per jit batch (default 8)")
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


@cli_main
def main(argv=None, locate=None):

    a = parse_args(argv)
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
        a.input,
        a.out,
        pre,
        batch_size=a.batch_size,
        max_frames=a.max_frames,
        progress=not a.no_progress,
        settings={"face": a.face, "sfd_input": a.sfd_input},
    )
    print(preprocessing.format_summary(summary, a.out))
    return summary


if __name__ == "__main__":
    main()
