"""`python -m jaxreenact.reenact --source IMG_OR_VIDEO --driving VIDEO_FOLDER_OR_IMAGE --out DIR`: reenact a real face
with a driving video (the authors' `run_inference.py`, METHOD.md 7.2). See `jaxreenact.inference.reenactment` for the
pipeline, the motion modes and the outputs (reenacted.mp4, grid.mp4, pasted.mp4, summary.json, optional frames/).
`--source example --driving example` use the authors' two inference examples shipped with the package.
"""

from __future__ import annotations

import argparse

from jaxreenact.common import cli
from jaxreenact.common.errors import cli_main
from jaxreenact.inference import reenactment
from jaxreenact.pose import motion
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.reenact", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True,
                   help="source face: a photo, or a video (its first frame is used); 'example' = the shipped "
                        f"photo ({cli.EXAMPLE_SOURCE.name})")  # fmt: skip
    p.add_argument("--driving",
                   help="driving video (.mp4/.avi/...), a folder of frames, or one image (one frame); 'example' = "
                        f"the shipped clip ({cli.EXAMPLE_DRIVING.name})")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--paste-back", action=argparse.BooleanOptionalAction, default=None,
                   help="also write pasted.mp4: the reenacted face composited into the source's full frame at its "
                        "resolution (default: on for a photo source, off for a video source)")  # fmt: skip
    p.add_argument("--motion", dest="motion_file", metavar="M.npz",
                   help="replay a motion file written by --export-motion instead of a driving video")  # fmt: skip
    p.add_argument("--export-motion", metavar="M.npz", help="write the driving p(t), validity and fps to this file")
    p.add_argument("--mode", choices=("absolute", "relative"), default="absolute",
                   help="absolute (the authors': driving minus source) or relative (driving minus its first frame, "
                        "added to the source's own pose and expression); default absolute")  # fmt: skip
    p.add_argument("--gains", nargs="+", metavar="G",
                   help="multiply Δp: 15 numbers, or NAME=VALUE with NAME in yaw pitch roll jaw exp0..exp10 pose exp "
                        "all (e.g. --gains jaw=1.5 exp=0.8)")  # fmt: skip
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pose-only", action="store_true", help="transfer the head pose (yaw, pitch, roll) only")
    g.add_argument("--expression-only", action="store_true", help="transfer the jaw and expressions only")
    p.add_argument("--smooth", type=float, default=None, metavar="SIGMA",
                   help="Gaussian smoothing of p(t) over time, σ in frames; 0 = off; default off in absolute mode, "
                        "1 in relative mode")  # fmt: skip
    cli.add_tune_flags(p)
    p.add_argument("--save-frames", action="store_true", help="also write every reenacted frame as frames/NNNNNN.png")
    cli.add_batch_flag(p, 32, "frames per jitted batch")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N driving frames")
    p.add_argument(
        "--fps", type=float, default=25.0, help="frame rate for a folder of driving frames or one image (default 25)"
    )
    add_weight_flags(p, reenactment.WEIGHT_NAMES)
    cli.add_run_flags(p)
    return cli.parse(p, argv)


@cli_main
def main(argv=None, locate=None):
    a = parse_args(argv)
    tune, tune_steps = cli.tuning(a)
    component = "pose" if a.pose_only else "expression" if a.expression_only else "all"
    opts = reenactment.Options(
        source=cli.input_path(a.source, cli.EXAMPLE_SOURCE),
        out=a.out,
        driving=cli.input_path(a.driving, cli.EXAMPLE_DRIVING),
        motion_file=a.motion_file,
        export_motion=a.export_motion,
        motion=motion.MotionOptions(a.mode, motion.parse_gains(a.gains), component, a.smooth),
        tune=tune,
        tune_steps=tune_steps,
        save_frames=a.save_frames,
        batch_size=a.batch_size,
        max_frames=a.max_frames,
        fps=a.fps,
        weights={n: getattr(a, n) for n in reenactment.WEIGHT_NAMES},
        tiny=a.tiny,
        seed=a.seed,
        progress=not a.no_progress,
        paste_back=a.paste_back,
    )
    summary = reenactment.run(opts, locate=locate)
    print(reenactment.format_summary(summary, a.out))
    return summary


if __name__ == "__main__":
    main()
