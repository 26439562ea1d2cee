"""The kinds a parity run knows: `kind -> run(spec, inputs, expected, networks) -> list[Row]`.

`networks.get(name)` gives the `(module, variables)` of one of the folder's components (converted on first use
through `converters.<name>.load_torch`). A kind registered with `not_yet` is known but has no runner yet: its
folders are reported as not checked (never as passing) instead of failing to read.
"""

from __future__ import annotations

from collections.abc import Callable

KINDS: dict[str, Callable] = {}


class NotYet(Exception):
    """A known kind whose runner is not written yet (the message says what is missing)."""


def register(kind: str):
    def deco(fn):
        KINDS[kind] = fn
        return fn

    return deco


def not_yet(kind: str, why: str) -> None:
    def run(spec, inputs, expected, networks):
        raise NotYet(why)

    KINDS[kind] = run
