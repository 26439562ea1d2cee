"""Shared converter machinery: reading PyTorch files safely, strict key accounting, saving, the CLI shape."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

import jaxreenact
from jaxreenact import checkpointing
from jaxreenact.errors import ConversionError, UserError, cli_main
from jaxreenact.weights import module_spec


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torch_load(path: str | os.PathLike, what: str) -> Any:
    """`torch.load` on CPU with `weights_only=True` (no code runs from the file); clear errors for bad paths."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} file not found")
    if not path.is_file():
        raise UserError(f"{path}: expected a {what} file, found a directory")
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise UserError("converting PyTorch checkpoints needs torch: pip install torch==2.13.0") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({what}): {first[:200]}") from None


def to_numpy(state_dict: Mapping[str, Any], source: str) -> dict[str, np.ndarray]:
    """A state dict of torch tensors -> {key: numpy array}; anything that is not a tensor is an error."""
    out = {}
    for k, v in state_dict.items():
        if not hasattr(v, "detach"):
            raise ConversionError(f"{source}: key {k!r} holds a {type(v).__name__}, not a tensor")
        out[k] = v.detach().cpu().numpy()
    return out


class KeyMap:
    """Strict use of a state dict: every key must be taken exactly as expected, none left over.

    `take(key, shape=...)` returns the array (float32 unless `dtype` says otherwise) and records the key;
    `finish()` raises a `ConversionError` naming every key that was not taken.
    """

    def __init__(self, state_dict: Mapping[str, np.ndarray], source: str):
        self.sd = dict(state_dict)
        self.source = source
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.sd

    def take(self, key: str, shape: tuple | None = None, dtype=np.float32) -> np.ndarray:
        if key not in self.sd:
            raise ConversionError(f"{self.source}: missing key {key!r}")
        if key in self.used:
            raise ConversionError(f"{self.source}: key {key!r} used twice (converter bug)")
        a = np.asarray(self.sd[key])
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise ConversionError(f"{self.source}: key {key!r} has shape {tuple(a.shape)}, expected {tuple(shape)}")
        self.used.add(key)
        return a.astype(dtype) if dtype is not None else a

    def skip(self, key: str) -> None:
        """Mark a key as accounted for without using it (e.g. a fixed buffer checked elsewhere)."""
        self.take(key, dtype=None)

    def finish(self) -> None:
        unused = sorted(set(self.sd) - self.used)
        if unused:
            shown = ", ".join(repr(k) for k in unused[:10])
            more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""
            raise ConversionError(f"{self.source}: unexpected key(s) {shown}{more}")


def _flat(tree) -> dict[str, Any]:
    return {
        "/".join(str(getattr(p, "key", p)) for p in path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def check_tree(template: Any, variables: Any, source: str) -> None:
    """Compare converted variables with the module's own variable tree (from `jax.eval_shape(init)`)."""
    want, got = _flat(template), _flat(variables)
    missing = sorted(set(want) - set(got))
    if missing:
        raise ConversionError(f"{source}: no value for parameter(s) {', '.join(missing[:10])}")
    extra = sorted(set(got) - set(want))
    if extra:
        raise ConversionError(f"{source}: converter produced unknown parameter(s) {', '.join(extra[:10])}")
    for k, t in want.items():
        if tuple(t.shape) != tuple(np.shape(got[k])):
            raise ConversionError(
                f"{source}: parameter {k} has shape {tuple(np.shape(got[k]))}, module expects {tuple(t.shape)}"
            )


def module_config(module) -> dict:
    """The constructor arguments of a Linen module, JSON-ready (tuples become lists)."""

    def plain(v):
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    skip = {"parent", "name"}
    return {f.name: plain(getattr(module, f.name)) for f in dataclasses.fields(module) if f.name not in skip}


def save_converted(
    dst: str | os.PathLike,
    module,
    variables: Any,
    *,
    converter: str,
    sources: Mapping[str, str | os.PathLike],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write `variables` and the metadata `jaxreenact.weights.load` needs to rebuild `module`."""
    meta = {
        "module": module_spec(module),
        "config": module_config(module),
        "converter": converter,
        "jaxreenact_version": jaxreenact.__version__,
        "sources": {k: {"path": os.path.basename(str(p)), "sha256": sha256(p)} for k, p in sources.items()},
    }
    meta.update(extra or {})
    checkpointing.save_tree(dst, variables, meta)


def run_cli(
    name: str,
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    convert: Callable[[argparse.Namespace], None],
    argv=None,
) -> None:
    """The converters' common CLI: parse, convert, print one line; user mistakes end in one-line errors."""

    @cli_main
    def main():
        p = argparse.ArgumentParser(prog=f"python -m converters.{name}", description=description)
        add_args(p)
        args = p.parse_args(argv)
        convert(args)

    main()
