"""The Table 1 evaluation (METHOD.md 8; paper Sec. 4.1): self and cross reenactment on a test tree.

    python -m jaxreenact.evaluate --config=configs/eval.py --workdir=runs/eval \\
        --config.root=VOX1_TEST_ROOT --config.cross_pairs=cross_pairs.txt --config.weights.A=runs/paired
    python -m jaxreenact.evaluate --config=configs/eval.py:tiny --workdir=runs/eval-tiny   # CPU, made-up tree

The test tree is `ROOT/<id>/<video>/frames_cropped/*.png` (256² crops from `python -m jaxreenact.preprocess`).
Freeze the cross pairs once: `python -m jaxreenact.evaluation.pairs --root ROOT --n 200 --seed 0 --out FILE`
(`--self-out SELF_FILE` also freezes the self list for `--config.self_list`).
"""

import pathlib

import ml_collections

import jaxreenact
from jaxreenact.common.constants import TUNE_STEPS
from jaxreenact.weights.registry import DEFAULT_DIRS

TINY_PAIRS = pathlib.Path(jaxreenact.__file__).parent / "resources" / "eval" / "tiny_cross_pairs.txt"


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.tiny = False  # True: random tiny networks and a fake face locator (CI); the numbers mean nothing
    c.precision = "highest"  # matmul precision: metrics are derived here (jaxreenact.common.precision)
    c.root = ""  # the test tree; "" with tiny: a made-up tree is written into the workdir
    c.self_list = ""  # file of <id>/<video> lines; "" = every video of the root
    c.cross_pairs = ""  # file of "<id>/<video> <id>/<video>" lines (python -m jaxreenact.evaluation.pairs)

    c.weights = ml_collections.ConfigDict()
    # Converted checkpoints (jaxreenact.weights.registry lists each with its converter command); A may also be a
    # training workdir (its latest checkpoint).
    for name in ("generator", "e4e", "deca", "A", "lpips", "arcface", "inception", "sfd", "fan"):
        c.weights[name] = f"weights/{DEFAULT_DIRS[name]}"

    c.eval = ml_collections.ConfigDict()
    c.eval.self = True
    c.eval.cross = True
    c.eval.batch_size = 16
    c.eval.frame_stride = 1  # use every k-th frame of each video
    c.eval.max_frames = 0  # per video; 0 = all
    c.eval.tune_steps = TUNE_STEPS  # generator tuning of each source, as the authors' inference (0 = off)
    c.eval.grid_frames = 4  # frames shown per video in grids/

    c.tiny_tree = ml_collections.ConfigDict()  # the made-up tree of the tiny variant
    c.tiny_tree.n_ids = 2
    c.tiny_tree.n_videos = 1
    c.tiny_tree.n_frames = 3
    if arg == "tiny":
        c.tiny = True
        c.cross_pairs = str(TINY_PAIRS)
        c.eval.batch_size = 4
        c.eval.tune_steps = 2
        c.eval.grid_frames = 2
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use ':tiny' or nothing)")
    return c.lock()
