"""Evaluate reenactment as the paper's Table 1: self and cross reenactment over a test tree.

    python -m jaxreenact.evaluate --config=configs/eval.py --workdir=runs/eval --config.root=TEST_ROOT \\
        --config.cross_pairs=cross_pairs.txt
    python -m jaxreenact.evaluate --config=configs/eval.py:tiny --workdir=runs/eval-tiny

Writes results.json, table1.md, per-video CSVs (self/, cross/), plots/ and grids/ into the workdir; re-running
with the same workdir continues from the videos already done (cache/), also after SIGTERM or Ctrl-C (exit status
143 / 130). `--tiny` is the `:tiny` variant, `--seed` and `--batch-size` set `config.seed` and
`config.eval.batch_size`. One process, on this host's devices (a multi-process start is refused in one line). See
`jaxreenact.evaluation.protocol`.
"""

from __future__ import annotations

from jaxreenact.common import cli, distributed
from jaxreenact.evaluation import protocol, report

USAGE = "python -m jaxreenact.evaluate --config=configs/eval.py[:tiny] --workdir=DIR"
_CONFIG, _WORKDIR, _NO_PROGRESS, _VERBOSE = cli.define_config_flags(
    "Evaluation config, e.g. configs/eval.py or configs/eval.py:tiny (found from any folder).",
    "Folder for the reports (resumes if present).",
    batch_field="eval.batch_size",
)


def run(config, workdir, progress: bool = True, locate=None) -> dict:
    """Evaluate, print the table and the outputs."""
    distributed.refuse("python -m jaxreenact.evaluate")
    workdir = cli.check_out_dir(workdir, "--workdir")
    results = protocol.evaluate(config, workdir, progress=progress, locate=locate)
    print(report.table1(results))
    print(f"wrote {cli.folder_entries(workdir)}")
    return results


def main(argv):
    del argv
    config, workdir = cli.config_program_inputs(USAGE, _CONFIG, _WORKDIR, _VERBOSE)
    run(config, workdir, progress=not _NO_PROGRESS.value)
    return 0


if __name__ == "__main__":
    cli.run_config_program(main, batch_field="eval.batch_size")
