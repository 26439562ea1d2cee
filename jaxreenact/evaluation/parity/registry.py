"""The kinds a parity run knows: `kind -> run(spec, inputs, expected, networks) -> list[Row]`.

`networks.get(name)` gives the `(module, variables)` of one of the folder's components (converted on first use
through `converters.<name>.load_torch`). A kind registered with `not_yet` is known but has no runner yet: its
folders are reported as not checked (never as passing) instead of failing to read. A kind may register a
`hint(rows) -> str`: a line printed under its table that says how to read its failures (empty: none).
"""

from __future__ import annotations

from collections.abc import Callable

KINDS: dict[str, Callable] = {}
HINTS: dict[str, Callable] = {}


class NotYet(Exception):
    """A known kind whose runner is not written yet (the message says what is missing)."""


def register(kind: str, hint: Callable | None = None):
    def deco(fn):
        KINDS[kind] = fn
        if hint is not None:
            HINTS[kind] = hint
        return fn

    return deco


def not_yet(kind: str, why: str) -> None:
    def run(spec, inputs, expected, networks):
        raise NotYet(why)

    KINDS[kind] = run
