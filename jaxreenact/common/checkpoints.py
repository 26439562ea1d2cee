"""Orbax behind one small module: pytree save/restore for converted weights and a manager for training state.

Converted networks live in a directory `DST/` holding `variables/` (an Orbax pytree checkpoint) and
`jaxreenact.json` (what module to build, its constructor arguments, the source file's sha256, ...).
Training state lives under `WORKDIR/checkpoints/<step>/` through an Orbax `CheckpointManager`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxreenact.common import distributed
from jaxreenact.common.errors import UserError

META_FILE = "jaxreenact.json"
VARS_DIR = "variables"


def save_tree(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> None:
    """Save a pytree of arrays (and a JSON metadata file) to directory `path`, replacing it atomically."""
    path = pathlib.Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tree = jax.tree.map(np.asarray, tree)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / VARS_DIR, tree)
            ckptr.wait_until_finished()
        (tmp / META_FILE).write_text(json.dumps(metadata or {}, indent=1, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_metadata(path: str | os.PathLike) -> dict:
    path = pathlib.Path(path)
    meta = path / META_FILE
    if not meta.is_file():
        raise UserError(
            f"{path}: not a converted jaxreenact checkpoint (no {META_FILE} inside); "
            "make one with `python -m converters.<network> SRC DST`"
        )
    return json.loads(meta.read_text())


def restore_tree(path: str | os.PathLike) -> Any:
    """Restore the pytree saved by `save_tree` as numpy-backed jax arrays on the default device."""
    path = pathlib.Path(path).absolute()
    if not (path / VARS_DIR).is_dir():
        raise UserError(f"{path}: no '{VARS_DIR}' folder inside; is this a converted checkpoint?")
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path / VARS_DIR)


class Manager:
    """Training-state checkpoints under `directory`: save every step it is asked to, restore the latest."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 3):
        self.directory = pathlib.Path(directory).absolute()
        # Orbax's first barrier is a device collective, which gloo (CPU) gives 30 s to meet: wait at the coordination
        # service first, since the processes get here after building their networks and state, at their own pace.
        distributed.barrier("checkpoint manager")
        opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._mgr = ocp.CheckpointManager(self.directory, options=opts)

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def save(self, step: int, state: Any, force: bool = False) -> bool:
        return self._mgr.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, step: int | None = None, target: Any = None) -> Any:
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.directory}: no checkpoint to restore")
        if target is None:
            return self._mgr.restore(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self._mgr.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()
