"""The one matmul-precision policy of the programs (docs/precision.md).

A program never runs at the backend's implicit default: it states a policy, `set_default` applies it to every
dot and convolution traced afterwards, and `scope` overrides it for the parts that must stay exact whatever the
program's policy (the DECA box, whose integer corners, argmax and truncation move with any rounding; the pixel
interpolation of DECA's crop). Policies, as XLA reads them:

* "highest": float32 operands and products (about 6 bfloat16 passes on a TPU, full float32 on a GPU). Every parity
  result in tests/golden was obtained at this precision.
* "high": about 3 bfloat16 passes on a TPU (close to float32); TF32 on an A100/H100.
* "default": the backend's fastest: one bfloat16 pass on a TPU, TF32 on an A100/H100, float32 on a CPU.

`scope(name)` is `jax.default_matmul_precision(name)`: it works inside traced code too, so a jitted step can run
its networks at the program's policy and the DECA box at "highest" (tests/test_precision.py reads the lowered HLO).
"""

from __future__ import annotations

import contextlib

import jax

from jaxreenact.common.errors import UserError

POLICIES = ("highest", "high", "default")
HIGHEST = "highest"

# The stated default of each program (docs/precision.md gives the measurements behind them). Where integers or
# metrics are derived (parity, statistics, evaluation, the face crops of preprocess) the programs run at highest;
# training's networks and the picture-making programs run at the backend's fast default, with the DECA box and
# crop scoped to highest inside the step.
PROGRAM_DEFAULTS = {
    "parity": "highest",
    "stats": "highest",
    "evaluate": "highest",
    "preprocess": "highest",
    "train": "default",
    "reenact": "default",
    "edit": "default",
    "invert": "default",
    "generate": "default",
    "app": "default",
}


def check(name: str, flag: str = "--precision") -> str:
    """`name` if it is one of POLICIES, else a one-line UserError naming the flag."""
    if name not in POLICIES:
        raise UserError(f"{flag}={name!r}: not a precision policy; use one of {', '.join(POLICIES)}")
    return name


def program_default(prog: str) -> str:
    """The stated policy of a program, by its module name (`python -m jaxreenact.reenact` or `reenact`); a program
    not listed in PROGRAM_DEFAULTS runs at "highest", the policy every parity result was obtained at."""
    key = prog.split()[-1].rsplit(".", 1)[-1]
    return PROGRAM_DEFAULTS.get(key, HIGHEST)


def set_default(name: str) -> str:
    """Make `name` the process-wide matmul precision of everything traced from now on; returns `name`."""
    jax.config.update("jax_default_matmul_precision", check(name))
    return name


def current() -> str | None:
    """The matmul precision in force (None: nothing was stated, the backend's default applies)."""
    return jax.config.jax_default_matmul_precision


@contextlib.contextmanager
def scope(name: str):
    """Run the enclosed code (traced or not) at precision `name`; the dots and convolutions traced inside carry it."""
    with jax.default_matmul_precision(check(name)):
        yield
