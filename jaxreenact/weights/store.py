"""Load a converted checkpoint (written by `python -m converters.<name> SRC DST`) as `(module, variables)`.

The checkpoint's metadata names the Linen module class (`"module": "jaxreenact.models.x:Class"`) and its
constructor arguments (`"config"`). Classes that moved keep loading through `MOVED` (checkpoints store the class
path of the version that wrote them).
"""

from __future__ import annotations

import importlib
import os
import pathlib
from typing import Any

import jax

from jaxreenact.common import checkpoints
from jaxreenact.common.errors import UserError

# Module paths of classes that moved since a checkpoint could have been written: old -> new.
MOVED = {"jaxreenact.directions": "jaxreenact.latent.directions"}


def build_module(spec: str, config: dict):
    """Instantiate `package.module:Class(**config)`; only classes inside jaxreenact may be named."""
    mod_name, _, cls_name = spec.partition(":")
    mod_name = MOVED.get(mod_name, mod_name)
    if not mod_name.startswith("jaxreenact.") or not cls_name:
        raise UserError(f"checkpoint names module {spec!r}, which is not a jaxreenact network")
    cls = getattr(importlib.import_module(mod_name), cls_name, None)
    if cls is None:
        raise UserError(f"checkpoint names {spec!r}, which does not exist in this version of jaxreenact")
    builder = getattr(cls, "from_config", None)
    return builder(config) if builder is not None else cls(**config)


def load(path: str | os.PathLike, with_metadata: bool = False) -> Any:
    """Return `(module, variables)` (and the metadata dict if `with_metadata`) of a converted checkpoint."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such converted checkpoint; convert the PyTorch file first (see README)")
    meta = checkpoints.read_metadata(path)
    module = build_module(meta["module"], meta.get("config", {}))
    variables = jax.tree.map(jax.numpy.asarray, checkpoints.restore_tree(path))
    return (module, variables, meta) if with_metadata else (module, variables)


def module_spec(module) -> str:
    cls = type(module)
    return f"{cls.__module__}:{cls.__qualname__}"
