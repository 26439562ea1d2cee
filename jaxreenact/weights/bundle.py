"""The one bundle of networks and the one loader: converted checkpoints, tiny random networks, or one message
listing every missing file with the command that makes it.

A bundle is `(Networks, variables)`: `Networks` holds the Linen modules (hashable, static under jit) and
`variables` the arrays, keyed alike (`"g"`, `"deca"`, `"A"`, ...). Library functions of face/, pose/ and latent/
take explicit `(module, variables)` pairs; training and inference pass the bundle's parts to them.
"""

from __future__ import annotations

import json
import logging
import pathlib

import jax
import jax.numpy as jnp

from jaxreenact.common import checkpoints
from jaxreenact.common.errors import UserError
from jaxreenact.latent.directions import DirectionMatrix
from jaxreenact.weights import registry, store, tiny
from jaxreenact.weights.networks import Networks

log = logging.getLogger("jaxreenact.weights")


def _workdir_model(path: pathlib.Path) -> dict:
    """`config.model` of a training workdir (its config.json), or {} when the file is missing or unreadable."""
    try:
        return dict(json.loads((path / "config.json").read_text()).get("model") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def load_A(path: str | pathlib.Path) -> tuple[DirectionMatrix, dict]:
    """A from a converted A checkpoint or from a training workdir of ours (its latest checkpoint; the layers and the
    shift units come from the workdir's config.json, as the training run used them)."""
    path = pathlib.Path(path)
    if (path / "checkpoints").is_dir():
        mgr = checkpoints.Manager(path / "checkpoints")
        try:
            if mgr.latest_step() is None:
                raise UserError(f"{path}: a training workdir without a checkpoint yet (train it first, or pass "
                                "a converted A)")  # fmt: skip
            state = mgr.restore()
        finally:
            mgr.close()
        params = {"params": jax.tree.map(jnp.asarray, state["params"]["params"])}
        w = params["params"]["linear"]["weight"]
        model = _workdir_model(path)
        layers = int(model.get("num_layers_shift", 8))
        if w.ndim != 2 or w.shape[1] % layers:
            raise UserError(f"{path}: A's weight {tuple(w.shape)} does not split into {layers} layers (config.json)")
        shift_scale = float(model.get("shift_scale", 6.0))
        module = DirectionMatrix(int(w.shape[0]), layers, int(w.shape[1]) // layers, shift_scale=shift_scale)
        return module, params
    module, variables = store.load(path)
    if not isinstance(module, DirectionMatrix):
        raise UserError(f"{path}: not a direction matrix checkpoint (holds {type(module).__name__})")
    return module, variables


def load(names, paths: dict[str, str] | None = None, *, tiny_seed: int | None = None, how: str = "flag",
         hint: str = "") -> tuple[Networks, dict]:  # fmt: skip
    """The bundle of networks `names` (registry names): the converted checkpoints at `paths` (default: the
    registry's default paths), checked all at once before anything loads; or, with `tiny_seed`, small random
    networks of the same kinds (tests and demos; nothing is read)."""
    names = tuple(dict.fromkeys(names))
    for n in names:
        registry.entry(n)
    if tiny_seed is not None:
        log.info("building tiny random networks (%s; --tiny: the pictures mean nothing) ...", ", ".join(names))
        return tiny.bundle(names, tiny_seed)
    paths = {n: (paths or {}).get(n) or registry.entry(n).default for n in names}
    registry.check_paths(paths, how=how, hint=hint)
    log.info("loading networks: %s ...", ", ".join(f"{n} ({paths[n]})" for n in names))
    mods, variables = {}, {}
    for n in names:
        e = registry.entry(n)
        if n == "A":
            m, v = load_A(paths[n])
        else:
            m, v = store.load(paths[n])
        want = e.module.rpartition(":")[2]
        if type(m).__name__ != want:
            where = f"--{n} {paths[n]}" if how == "flag" else f"config.weights.{n} = {paths[n]}"
            raise UserError(f"{where}: holds a converted {type(m).__name__}, not a {want} "
                            f"(make it with `{e.convert(paths[n])}`)")  # fmt: skip
        mods[e.key], variables[e.key] = m, v
    return Networks(**mods), variables
