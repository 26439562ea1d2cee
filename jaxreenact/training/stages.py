"""The registry of training stages: `config.mode` -> the function that builds its `Stage`.

The loop (`jaxreenact.training.loop`) imports no stage; `python -m jaxreenact.train` hands it `build_stage`.
"""

from __future__ import annotations

from jaxreenact.common.errors import UserError
from jaxreenact.training import mixed, paired, synthetic
from jaxreenact.training.setup import make_setup, weight_names
from jaxreenact.training.stage import Stage
from jaxreenact.weights import load_bundle

STAGES = {
    "synthetic": synthetic.build,  # stage 1
    "real": mixed.build_real,  # the authors' `real` mode (every source real; not one of the paper's stages)
    "real_synthetic": mixed.build,  # stage 2 (the configs call it mixed)
    "paired": paired.build,  # stage 3
}


def build_stage(config, mesh) -> Stage:
    """The `Stage` of `config.mode`; every weight path is checked before anything loads."""
    if config.mode not in STAGES:
        raise UserError(f"config.mode={config.mode!r}: use one of {', '.join(STAGES)}")
    nets, frozen = load_bundle(
        weight_names(config), {n: getattr(config.weights, n) for n in weight_names(config)},
        tiny_seed=config.seed if config.tiny else None, how="config",
        hint="or run a ':tiny' config, which needs none",
    )  # fmt: skip
    s = make_setup(config, nets)
    return STAGES[config.mode](config, mesh, s, frozen)
