"""Files the programs read, made from the tiny random networks: converted checkpoints (what `python -m
converters.<name>` writes) and training workdirs (what `python -m jaxreenact.train` writes), so a test can run a
program on its real, non-`--tiny` loading path."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from configs import synthetic
from converters.common import save_converted
from jaxreenact.common import checkpoints
from jaxreenact.training import loop
from jaxreenact.weights import load_bundle, registry


def converted(folder: pathlib.Path, names, seed: int = 0) -> dict[str, str]:
    """Write the tiny networks `names` (registry names) as converted checkpoints under `folder`; {name: path}."""
    nets, variables = load_bundle(names, tiny_seed=seed)
    paths = {}
    for n in names:
        key = registry.entry(n).key
        paths[n] = str(folder / n)
        if not (folder / n).exists():
            save_converted(paths[n], getattr(nets, key), variables[key], converter="tiny", sources={})
    return paths


def training_workdir(path: pathlib.Path, a_vars, step: int = 3, shift_scale: float = 6.0) -> pathlib.Path:
    """A training workdir holding A = `a_vars` at `step`, written as the training loop writes one (config.json, an
    Orbax `TrainState` checkpoint with Adam's state), with `config.model.shift_scale` = `shift_scale`."""
    c = synthetic.get_config("tiny")
    with c.unlocked():
        c.model.shift_scale = shift_scale
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(c.to_json_best_effort(indent=1))
    tx = loop.make_optimizer(c.train)
    params = jax.tree.map(jnp.asarray, a_vars)
    state = loop.TrainState(step=jnp.asarray(step, jnp.int32), params=params, opt_state=tx.init(params))
    mgr = checkpoints.Manager(path / "checkpoints")
    mgr.save(step, state)
    mgr.wait()
    mgr.close()
    return path
