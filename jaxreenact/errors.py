"""User-facing errors: a message that names the file or value, what is wrong and what to do.

Entry points catch `UserError` and print its message on one line (no traceback) via `cli_main`.
"""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A mistake in the user's input (a path, a file, a value): reported in one line, exit code 2."""


class ConversionError(UserError):
    """A checkpoint that cannot be converted: unknown, missing or mis-shaped keys, or not the expected network."""


def cli_main(fn):
    """Decorate an entry point `main(argv=None)` so a `UserError` ends the program with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            prog = getattr(fn, "__module__", "jaxreenact")
            print(f"error ({prog}): {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
