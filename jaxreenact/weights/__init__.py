"""The method's networks: the registry (what each is, where it comes from), the one bundle type and loader, and
`load(DST)` of one converted checkpoint.

    from jaxreenact import weights
    G, variables = weights.load("weights/stylegan2-voxceleb")            # one converted checkpoint
    nets, variables = weights.load_bundle(("generator", "deca"), paths)  # several, checked all at once

The names below load on first use, so `jaxreenact.weights.registry` (which configs import) stays light.
"""

import importlib

_EXPORTS = {
    "load": "store", "build_module": "store", "module_spec": "store",
    "load_bundle": ("bundle", "load"), "load_A": "bundle",
    "Networks": "networks",
    "REGISTRY": "registry", "check_paths": "registry", "default_paths": "registry",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'jaxreenact.weights' has no attribute {name!r}")
    mod, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(f"jaxreenact.weights.{mod}"), attr)
    globals()[name] = value
    return value
