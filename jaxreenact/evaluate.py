"""Evaluate reenactment as the paper's Table 1: self and cross reenactment over a test tree.

    python -m jaxreenact.evaluate --config=configs/eval.py --workdir=runs/eval --config.root=TEST_ROOT \\
        --config.cross_pairs=cross_pairs.txt
    python -m jaxreenact.evaluate --config=configs/eval.py:tiny --workdir=runs/eval-tiny

Writes results.json, table1.md, per-video CSVs (self/, cross/), plots/ and grids/ into the workdir; re-running
with the same workdir continues from the videos already done (cache/). See `jaxreenact.evaluation.protocol`.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from jaxreenact.common.errors import report_user_errors
from jaxreenact.evaluation import protocol, report

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Evaluation config, e.g. configs/eval.py or configs/eval.py:tiny."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the reports (resumes if present).")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Disable the progress bar.")


def run(config, workdir, progress: bool = True, locate=None) -> dict:
    """Evaluate, print the table and the outputs."""
    results = protocol.evaluate(config, workdir, progress=progress, locate=locate)
    print(report.table1(results))
    print(f"wrote {workdir}/results.json, table1.md, self/ cross/ plots/ grids/")
    return results


def main(argv):
    del argv
    if _CONFIG.value is None or _WORKDIR.value is None:
        print("usage: python -m jaxreenact.evaluate --config=configs/eval.py[:tiny] --workdir=DIR", file=sys.stderr)
        return 2
    return report_user_errors("jaxreenact.evaluate", run, _CONFIG.value, _WORKDIR.value,
                              progress=not _NO_PROGRESS.value)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
