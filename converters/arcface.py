"""ArcFace IR-SE50 (TreB1eN `model_ir_se50.pth`, a bare state dict) -> `jaxreenact.models.arcface.ArcFace`.

    python -m converters.arcface model_ir_se50.pth weights/arcface

Key map: every Flax leaf is the PyTorch key with `_<n>` read as `.<n>` (`body_3/res_layer_5/fc1/weight` <-
`body.3.res_layer.5.fc1.weight`); conv kernels OIHW -> HWIO, linear weights [out, in] -> [in, out]. The
Linear(512*7*7, 512) weight is only transposed: the module flattens its NHWC map in NCHW order, as PyTorch does.
`num_batches_tracked` keys are optional (the TreB1eN file has none) and ignored; a `module.` (DataParallel) prefix
on every key is stripped.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from converters.common import KeyMap, as_jax, bare_state_dict, check_tree, describe, file_cli, file_save, fill
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.arcface import ArcFace

WHAT = "ArcFace IR-SE50 (model_ir_se50.pth)"
_DEPTH = {24: 50, 49: 100, 50: 152}  # number of body units -> num_layers


# ---------------------------------------------------------------- ArcFace
def _strip_module(sd: dict) -> dict:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def convert_state_dict(sd: Mapping[str, np.ndarray], source: str):
    """A TreB1eN IR-SE Backbone state dict (numpy) -> (ArcFace module, variables)."""
    sd = _strip_module(dict(sd))
    if "output_layer.3.weight" not in sd or "input_layer.0.weight" not in sd:
        raise ConversionError(f"{source}: not an IR-SE ArcFace backbone; this looks like {describe(sd)}")
    if not any(k.endswith("res_layer.5.fc1.weight") for k in sd):
        raise ConversionError(f"{source}: an IR backbone without SE modules (mode 'ir'); only 'ir_se' is supported")
    units = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    if units not in _DEPTH:
        raise ConversionError(f"{source}: {units} body units; an IR-SE 50/100/152 backbone has 24, 49 or 50")
    fc_in = sd["output_layer.3.weight"].shape[1]
    size = {512 * 7 * 7: 112, 512 * 14 * 14: 224}.get(fc_in)
    if size is None:
        raise ConversionError(f"{source}: output_layer.3.weight has {fc_in} inputs; expected 25088 (112) or 100352")
    module = ArcFace(num_layers=_DEPTH[units], input_size=size, affine="output_layer.4.weight" in sd)
    template = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
    km = KeyMap(sd, source)
    variables = fill(dict(template), km)
    km.finish()
    check_tree(template, variables, source)
    return module, as_jax(variables)


def load_torch(path, **opts):
    """`model_ir_se50.pth` (bare TreB1eN state dict) -> (ArcFace module, variables)."""
    if opts:
        raise TypeError(f"converters.arcface.load_torch takes no options, got {sorted(opts)}")
    return convert_state_dict(bare_state_dict(path, WHAT), str(path))


save = file_save("arcface", load_torch, "model_ir_se50", lambda m: f"IR-SE{m.num_layers}, input {m.input_size}")


def main(argv=None):
    file_cli("arcface", "Convert the ArcFace IR-SE50 identity network to a jaxreenact checkpoint.",
             "TreB1eN model_ir_se50.pth (the identity-loss network)", save, argv)  # fmt: skip


if __name__ == "__main__":
    main()
