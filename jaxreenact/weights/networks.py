"""The container of a run's frozen modules (see `jaxreenact.weights.bundle`)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Networks:
    """The frozen modules of a run (None where a run does not need one); their variables travel separately."""

    g: Any = None
    deca: Any = None
    arcface: Any = None
    lpips: Any = None
    e4e: Any = None
    sfd: Any = None
    fan: Any = None
    A: Any = None
    inception: Any = None
