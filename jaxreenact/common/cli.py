"""The one flag convention of the programs: `--out` or `--workdir`, `--batch-size`, `--seed`, `--no-progress`,
`--tiny`, `--verbose`; errors are one line and exit 2 (`jaxreenact.common.errors.cli_main`)."""

from __future__ import annotations

import argparse

TINY_HELP = (
    "TESTS AND DEMOS ONLY: small random-weight networks (and a fake face locator) instead of the converted weights; "
    "needs no files, the pictures mean nothing"
)


def add_run_flags(p: argparse.ArgumentParser, tiny: bool = True) -> None:
    """--seed, --no-progress, --verbose (and --tiny): what every program on the networks takes."""
    p.add_argument("--seed", type=int, default=0, help="random seed (of the --tiny networks, of sampling)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show the JAX/absl/Orbax INFO logging")
    if tiny:
        p.add_argument("--tiny", action="store_true", help=TINY_HELP)


def add_tune_flags(p: argparse.ArgumentParser, what: str = "the source", default_on: bool = True) -> None:
    if default_on:
        p.add_argument("--no-tune", action="store_true", help=f"skip generator tuning of {what} (on by default)")
    else:
        p.add_argument("--tune", action="store_true", help=f"tune the generator on {what} first (off by default)")
    p.add_argument("--tune-steps", type=int, default=200, help="generator tuning steps (default 200, the authors')")
