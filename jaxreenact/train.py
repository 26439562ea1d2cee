"""Train the direction matrix A.

    python -m jaxreenact.train --config=configs/synthetic.py --workdir=runs/synthetic
    python -m jaxreenact.train --config=configs/synthetic.py:tiny --workdir=runs/tiny --config.train.steps=20

Re-running with the same --workdir resumes from its last checkpoint; SIGTERM or Ctrl-C checkpoints the current step
on every process and exits with 143 / 130. Multi-process runs call `jax.distributed.initialize()` (see
`jaxreenact.common.distributed`: launch/local_multiprocess.sh, Slurm, Cloud TPU pods).
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from jaxreenact.common import distributed
from jaxreenact.common.errors import report_user_errors
from jaxreenact.training import loop, stages

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file, e.g. configs/synthetic.py:tiny.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and images (resumes if present).")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Disable the progress bar.")


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if _CONFIG.value is None or _WORKDIR.value is None:
        print("usage: python -m jaxreenact.train --config=configs/<stage>.py[:tiny] --workdir=DIR", file=sys.stderr)
        return 2
    distributed.initialize()  # one process of several when the environment says so
    return report_user_errors("jaxreenact.train", loop.train, _CONFIG.value, _WORKDIR.value,
                              build_stage=stages.build_stage, progress=not _NO_PROGRESS.value)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
