"""Write a training-step golden at twice its batch (`goldens.doubled_batch`: each sample twice, the 50 % scheme's
halves kept, expected values derived from the golden's) as a folder the parity program reads, for checking the port
at a batch size no golden has.

    python tests/doubled_batch.py train_step_synthetic runs/train_step_synthetic_b8
    python -m jaxreenact.parity runs/train_step_synthetic_b8
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import goldens
from jaxreenact.common.errors import UserError, cli_main

KINDS = ("train_step_synthetic", "train_step_mixed", "train_step_paired")


@cli_main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help=f"the golden in tests/golden: one of {', '.join(KINDS)}")
    ap.add_argument("out", type=pathlib.Path, help="the folder to write")
    args = ap.parse_args(argv)
    if args.name not in KINDS:
        raise UserError(f"{args.name}: not a training-step golden; use one of {', '.join(KINDS)}")
    t0 = time.monotonic()

    def progress(what):  # on stderr, as the parity program's progress lines
        print(f"[{time.monotonic() - t0:7.1f} s] {args.name}: {what}", file=sys.stderr, flush=True)

    progress("reading the golden and deriving the doubled batch's expected arrays")
    spec, inputs, expected = goldens.doubled_batch(args.name)
    progress(f"writing {len(expected)} expected arrays to {args.out}")
    goldens.write_folder(spec, inputs, expected, args.out, goldens.GOLDEN / args.name)
    print(f"wrote {args.out} (batch {spec['upstream']['config']['batch_size']}); check it with "
          f"python -m jaxreenact.parity {args.out} (progress on stderr)")  # fmt: skip


if __name__ == "__main__":
    main()
