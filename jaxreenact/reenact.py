"""`python -m jaxreenact.reenact --source IMG_OR_VIDEO --driving VIDEO_OR_FOLDER --out DIR`: reenact a real face with a
driving video (the authors' `run_inference.py`, METHOD.md 7.2). See `jaxreenact.reenact_core` for the pipeline,
the motion modes and the outputs (reenacted.mp4, grid.mp4, summary.json, optional frames/).
"""

from __future__ import annotations

import argparse

from jaxreenact.errors import cli_main
from jaxreenact.reenact_core import DEFAULT_WEIGHTS


def add_weight_args(p: argparse.ArgumentParser, names) -> None:
    helps = {
        "generator": "converted StyleGAN2 generator (python -m converters.stylegan2)",
        "e4e": "converted e4e encoder (python -m converters.e4e)",
        "deca": "converted DECA (python -m converters.deca)",
        "A": "converted direction matrix A (python -m converters.direction_matrix A_matrix.pt DST)",
        "lpips": "converted LPIPS-alex, for generator tuning (python -m converters.lpips)",
        "sfd": "converted S3FD face detector (python -m converters.sfd)",
        "fan": "converted 2D-FAN landmarks (python -m converters.fan)",
    }
    for n in names:
        p.add_argument(f"--{n}", default=DEFAULT_WEIGHTS[n], help=f"{helps[n]}; default {DEFAULT_WEIGHTS[n]}")


def add_tiny_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tiny",
        action="store_true",
        help="TESTS AND DEMOS ONLY: small random-weight networks and a fake face locator instead of the converted "
        "weights (needs no files; the pictures mean nothing)",
    )


def add_tune_args(p: argparse.ArgumentParser, what: str = "the source") -> None:
    p.add_argument("--no-tune", action="store_true", help=f"skip generator tuning of {what} (on by default)")
    p.add_argument("--tune-steps", type=int, default=200, help="generator tuning steps (default 200, the authors')")


def add_run_args(p: argparse.ArgumentParser, weight_names) -> None:
    """Weight paths, --seed, --no-progress and --tiny: what every program on the networks takes."""
    add_weight_args(p, weight_names)
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny networks")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_tiny_arg(p)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.reenact", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="source face: a photo, or a video (its first frame is used)")
    p.add_argument("--driving", help="driving video (.mp4/.avi/...) or a folder of frames")
    p.add_argument("--out", required=True, help="output folder")
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
    add_tune_args(p)
    p.add_argument("--save-frames", action="store_true", help="also write every reenacted frame as frames/NNNNNN.png")
    p.add_argument("--batch-size", type=int, default=32, help="frames per jitted batch (default 32)")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N driving frames")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate for a folder of driving frames (default 25)")
    add_run_args(p, ("generator", "e4e", "deca", "A", "lpips", "sfd", "fan"))
    return p.parse_args(argv)


@cli_main
def main(argv=None, locate=None):
    from jaxreenact import reenact_core as core

    a = parse_args(argv)
    component = "pose" if a.pose_only else "expression" if a.expression_only else "all"
    opts = core.Options(
        source=a.source,
        out=a.out,
        driving=a.driving,
        motion_file=a.motion_file,
        export_motion=a.export_motion,
        motion=core.MotionOptions(a.mode, core.parse_gains(a.gains), component, a.smooth),
        tune=not a.no_tune,
        tune_steps=a.tune_steps,
        save_frames=a.save_frames,
        batch_size=a.batch_size,
        max_frames=a.max_frames,
        fps=a.fps,
        weights={n: getattr(a, n) for n in core.DEFAULT_WEIGHTS},
        tiny=a.tiny,
        seed=a.seed,
        progress=not a.no_progress,
    )
    summary = core.run(opts, locate=locate)
    print(core.format_summary(summary, a.out))
    return summary


if __name__ == "__main__":
    main()
