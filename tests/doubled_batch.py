"""Write a training-step golden at twice its batch (`goldens.doubled_batch`: each sample twice, the 50 % scheme's
halves kept, expected values derived from the golden's) as a folder the parity program reads, for checking the port
at a batch size no golden has.

    python tests/doubled_batch.py train_step_synthetic runs/train_step_synthetic_b8
    python -m jaxreenact.parity runs/train_step_synthetic_b8
"""

from __future__ import annotations

import argparse
import pathlib

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
    spec, inputs, expected = goldens.doubled_batch(args.name)
    goldens.write_folder(spec, inputs, expected, args.out, goldens.GOLDEN / args.name)
    print(f"wrote {args.out} (batch {spec['upstream']['config']['batch_size']})")


if __name__ == "__main__":
    main()
