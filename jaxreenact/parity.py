"""Check the port against golden folders of upstream PyTorch outputs (`../shared/golden`, `tests/golden`).

    python -m jaxreenact.parity tests/golden/*           # every shipped folder (files such as README.md are skipped)
    python -m jaxreenact.parity FOLDER --weights DIR     # the upstream checkpoint files in DIR, by the spec's names
    python -m jaxreenact.parity record --authors-repo AUTHORS_REPO --source IMG --out OUT    # the authors' code
    python -m jaxreenact.parity OUT/* --weights AUTHORS_REPO    # the port on what they recorded, both times

Without --weights, each folder's random-weight checkpoints are rebuilt from its spec with the harness's
`regen.py` (beside the golden folders) in a temporary folder, then converted with `converters.<name>.load_torch`
(torch needed). Prints one row per expected array (name, measure, value, tolerance, PASS/FAIL) and a summary line;
exit status 1 when any array misses its tolerance (or a folder's kind cannot be checked yet), 2 for a folder that
cannot be read. While a folder runs, progress lines (each array, network conversion and training step, with the
seconds since the folder started) go to stderr; --no-progress silences them. A folder written by `parity record`
also prints the authors' recorded time and the port's on the same inputs and device. `record` runs the authors'
own code from a clone of their repository on your checkpoints and image (`converters.upstream_record`, which holds
the torch code: the project allows PyTorch only in converters/ and tests) and writes such folders
(docs/comparison.md).
"""

from __future__ import annotations

import argparse
import sys

from converters import upstream_record
from jaxreenact.common.errors import cli_main
from jaxreenact.data import video
from jaxreenact.evaluation import parity


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of a check, or of `record` (its own parser) when argv starts with it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["record"]:
        return record_args(argv[1:])
    p = argparse.ArgumentParser(prog="python -m jaxreenact.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="golden folder(s): spec.json, inputs.npz, expected.npz")
    p.add_argument("--weights", metavar="DIR", help="use the upstream checkpoint files in DIR instead of regenerating")
    p.add_argument("--tmp", metavar="DIR", help="where to regenerate checkpoints (default: the system temp folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr while a folder runs")
    return p.parse_args(argv)


def record_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m jaxreenact.parity record",
        description="Run the authors' own PyTorch code (imported from a clone of their repository, with their "
        "checkpoints in pretrained_models/) on your inputs and write golden folders OUT/<kind> that "
        "`python -m jaxreenact.parity OUT/* --weights AUTHORS_REPO` replays with the port, printing both "
        "frameworks' times. Needs torch (and a GPU for GPU timings). See docs/comparison.md.",
        epilog=f"Files read from AUTHORS_REPO (each kind reads its own): {', '.join(upstream_record.FILES.values())}.",
    )  # fmt: skip
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help=f"what to record (default: all): {', '.join(upstream_record.KINDS)}")  # fmt: skip
    p.add_argument("--authors-repo", required=True, metavar="DIR",
                   help="a clone of StelaBou/stylegan_directions_face_reenactment with its checkpoints")  # fmt: skip
    p.add_argument("--source", metavar="IMG", help="your source face crop (256x256; others are resized), for "
                   f"{', '.join(upstream_record.IMAGE_KINDS)}")  # fmt: skip
    p.add_argument("--driving", metavar="IMG|DIR|VIDEO", help="a driving face crop, a folder of them or a video: "
                   "the second image of the loss and DECA kinds (its first frame) and the driving frames of "
                   "reenact_frames (default: views of the source)")  # fmt: skip
    p.add_argument("--frames", type=int, default=3, help="driving frames reenact_frames runs (default 3)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the folders go (OUT/<kind>)")
    p.add_argument("--seed", type=int, default=0, help="seed of the recorded random inputs (default 0)")
    p.add_argument(
        "--batch", type=int, default=2, help="codes per generator call (stylegan2_vox256, direction_matrix; default 2)"
    )
    p.add_argument("--tune-steps", type=int, default=3, help="optimize_g steps (default 3; upstream runs 200)")
    return p.parse_args(argv)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@cli_main
def main(argv=None):
    a = parse_args(argv)
    if hasattr(a, "authors_repo"):
        r = a
        done = upstream_record.record(r.authors_repo, r.source, r.out, r.kinds, seed=r.seed, batch=r.batch,
                                      tune_steps=r.tune_steps, log=_stderr,
                                      driving=r.driving, frames=r.frames, read_video=video.read_video)  # fmt: skip
        print(f"record: wrote {', '.join(map(str, done))}; compare with: python -m jaxreenact.parity "
              f"{' '.join(map(str, done))} --weights {r.authors_repo}")  # fmt: skip
        return
    note = None if a.no_progress else _stderr
    folders = parity.golden_paths(a.folders, note=_stderr)  # the skipped files are said even with --no-progress
    results = parity.check_folders(folders, weights_dir=a.weights, tmp_root=a.tmp, echo=print, note=note)
    rows = [r for res in results for r in res.rows]
    bad = [f"{res.folder.name}/{r.name}" for res in results for r in res.rows if not r.ok]
    unchecked = [res.folder.name for res in results if res.not_checked]
    line = f"parity: {len(rows) - len(bad)}/{len(rows)} arrays pass in {len(results)} folder(s)"
    if bad:
        line += f"; FAIL: {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}"
    if unchecked:
        line += f"; not checked: {', '.join(unchecked)}"
    print(line)
    if bad or unchecked:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
