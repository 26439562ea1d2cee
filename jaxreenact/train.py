"""Train the direction matrix A.

    python -m jaxreenact.train --config=configs/synthetic.py --workdir=runs/synthetic
    python -m jaxreenact.train --config=configs/synthetic.py:tiny --workdir=runs/tiny --config.train.steps=20

Re-running with the same --workdir resumes from its last checkpoint; a finished run says so (raise
`--config.train.steps` to continue). `--tiny` is the `:tiny` variant, `--seed` and `--batch-size` set
`config.seed` and `config.train.batch_size`. Multi-host runs call `jax.distributed.initialize()` (set
JAXREENACT_DISTRIBUTED=1, or it is detected on Cloud TPU pods / Slurm).
"""

from __future__ import annotations

import os

from jaxreenact.common import cli
from jaxreenact.common.errors import UserError
from jaxreenact.training import loop, stages

USAGE = "python -m jaxreenact.train --config=configs/<stage>.py[:tiny] --workdir=DIR"
_CONFIG, _WORKDIR, _NO_PROGRESS, _VERBOSE = cli.define_config_flags(
    "Training config file, e.g. configs/synthetic.py or configs/synthetic.py:tiny (found from any folder).",
    "Folder for checkpoints, metrics and images (resumes if present).",
    batch_field="train.batch_size",
)


def _maybe_distributed():
    import jax

    wanted = os.environ.get("JAXREENACT_DISTRIBUTED") == "1"
    auto = "SLURM_NTASKS" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    tpu_pod = "TPU_WORKER_HOSTNAMES" in os.environ and "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if wanted or auto or tpu_pod:
        jax.distributed.initialize()


def main(argv):
    del argv
    cli.setup_logging(_VERBOSE.value)
    if _CONFIG.value is None:
        raise UserError(f"--config is missing; usage: {USAGE}")
    workdir = cli.workdir_path(_WORKDIR.value, USAGE)
    config = _CONFIG.value
    done = loop.completed_step(workdir, config.train.steps)
    if done is not None:
        print(f"{workdir}: already trained to step {done} (config.train.steps={config.train.steps}); nothing to do. "
              f"To train further, rerun with a larger --config.train.steps=N (it resumes at step {done}).")  # fmt: skip
        return 0
    _maybe_distributed()
    state = loop.train(config, workdir, build_stage=stages.build_stage, progress=not _NO_PROGRESS.value)
    print(f"trained to step {int(state.step)}; wrote {workdir}/checkpoints/, metrics.jsonl, images/ and tb/ "
          f"(view with: tensorboard --logdir {workdir}/tb)")  # fmt: skip
    return 0


if __name__ == "__main__":
    cli.run_config_program(main, batch_field="train.batch_size")
