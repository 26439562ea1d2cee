"""User-facing errors: a message that names the file or value, what is wrong and what to do.

Entry points catch `UserError` and print its message on one line (no traceback) via `cli_main`; an interrupt
(Ctrl-C, or SIGTERM through `common.preemption`) is one line too, with exit status 130 / 143.
"""

from __future__ import annotations

import functools
import sys

from jaxreenact.common import preemption


class UserError(Exception):
    """A mistake in the user's input (a path, a file, a value): reported in one line, exit code 2."""


class ConversionError(UserError):
    """A checkpoint that cannot be converted: unknown, missing or mis-shaped keys, or not the expected network."""


def program_name(fn) -> str:
    """The dotted module of an entry point; under `python -m pkg.mod` its module is `__main__`, so the name comes
    from the main module's spec."""
    name = getattr(fn, "__module__", None) or "jaxreenact"
    if name == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = spec.name if spec is not None else "jaxreenact"
    return name


def cli_main(fn):
    """Decorate an entry point `main(argv=None)` so a `UserError` ends the program with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with preemption.raise_on_sigterm():
                return fn(*args, **kwargs)
        except UserError as e:
            prog = program_name(fn)
            print(f"error ({prog}): {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt as e:
            print(f"{program_name(fn)}: {preemption.message(e)}", file=sys.stderr)
            raise SystemExit(preemption.exit_code(e)) from None

    return wrapper


def report_user_errors(prog: str, fn, *args, **kwargs) -> int:
    """Run `fn`; a `UserError` is printed as one line naming `prog` (exit status 2), an interrupt too (130 / 143),
    else 0. For absl mains."""
    try:
        with preemption.raise_on_sigterm():
            fn(*args, **kwargs)
    except UserError as e:
        print(f"error ({prog}): {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"{prog}: {preemption.message(e)}", file=sys.stderr)
        return preemption.exit_code(e)
    return 0
