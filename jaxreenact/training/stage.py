"""The contract between a training stage and the loop: what a stage supplies (`Stage`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax


@dataclasses.dataclass
class Stage:
    """What a training mode supplies to the loop (built by `jaxreenact.training.stages.build_stage`).

    loss(params, frozen, key, batch) -> (scalar, dict of scalars); batch is None for the synthetic mode.
    validate(params, frozen, val) -> (dict of per-sample arrays, images dict NHWC in [-1, 1]).
    """

    init_params: Callable[[jax.Array], Any]
    loss: Callable
    validate: Callable
    frozen: Any  # pytree of the frozen networks' variables (replicated)
    batches: Callable[[int], Any] | None = None  # step -> global batch (real-data modes)
    val_data: Any = None
