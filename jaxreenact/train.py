"""Train the direction matrix A.

    python -m jaxreenact.train --config=configs/synthetic.py --workdir=runs/synthetic
    python -m jaxreenact.train --config=configs/synthetic.py:tiny --workdir=runs/tiny --config.train.steps=20

Re-running with the same --workdir resumes from its last checkpoint; a finished run says so (raise
`--config.train.steps` to continue); SIGTERM or Ctrl-C checkpoints the current step on every process and exits with
143 / 130. `--tiny` is the `:tiny` variant, `--seed` and `--batch-size` set `config.seed` and
`config.train.batch_size`. Multi-process runs call `jax.distributed.initialize()` (see
`jaxreenact.common.distributed`: launch/local_multiprocess.sh, Slurm, Cloud TPU pods); an error on one process
stops every process within seconds, each naming the process that failed.
"""

from __future__ import annotations

from jaxreenact.common import cli, distributed
from jaxreenact.training import loop, stages

USAGE = "python -m jaxreenact.train --config=configs/<stage>.py[:tiny] --workdir=DIR"
_CONFIG, _WORKDIR, _NO_PROGRESS, _VERBOSE = cli.define_config_flags(
    "Training config file, e.g. configs/synthetic.py or configs/synthetic.py:tiny (found from any folder).",
    "Folder for checkpoints, metrics and images (resumes if present).",
    batch_field="train.batch_size",
)


def main(argv):
    del argv
    config, workdir = cli.config_program_inputs(USAGE, _CONFIG, _WORKDIR, _VERBOSE)
    # First: one process of several when the environment says so; nothing may touch a device before this (reading
    # the checkpoints below does, through Orbax).
    distributed.initialize()
    with distributed.fail_together("jaxreenact.train"):  # an error on one process ends all of them at once
        done = loop.completed_step(workdir, config.train.steps)  # decided on process 0 for all
        if done is not None:
            print(f"{workdir}: already trained to step {done} (config.train.steps={config.train.steps}); nothing to "
                  f"do. To train further, rerun with a larger --config.train.steps=N (it resumes at step {done}).")  # fmt: skip
            return 0
        state = loop.train(config, workdir, build_stage=stages.build_stage, progress=not _NO_PROGRESS.value)
    print(f"trained to step {int(state.step)}; wrote {cli.folder_entries(workdir)} "
          f"(view with: tensorboard --logdir {workdir}/tb)")  # fmt: skip
    return 0


if __name__ == "__main__":
    cli.run_config_program(main, batch_field="train.batch_size")
