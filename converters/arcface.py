"""ArcFace IR-SE50 (TreB1eN `model_ir_se50.pth`, a bare state dict) -> `jaxreenact.models.arcface.ArcFace`.

    python -m converters.arcface model_ir_se50.pth weights/arcface

Key table: `converters.common.rule_table`, as every Flax leaf is named like its PyTorch key with `_<n>` for `.<n>`
(`params/body_3/res_layer_5/fc1/weight` <- `body.3.res_layer.5.fc1.weight`); conv kernels OIHW -> HWIO, linear
weights [out, in] -> [in, out]. (Written out, the table would repeat the IR-SE body of `jaxreenact.models.irse`.) The
Linear(512*7*7, 512) weight is only transposed: the module flattens its NHWC map in NCHW order, as PyTorch does.
`num_batches_tracked` keys are optional (the TreB1eN file has none) and ignored; a `module.` (DataParallel) prefix
on every key is stripped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from converters.common import (
    as_jax,
    bare_state_dict,
    convert_by_template,
    describe,
    file_cli,
    file_save,
    ir_se_depth,
    strip_data_parallel,
)
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.arcface import ArcFace

WHAT = "ArcFace IR-SE50 (model_ir_se50.pth)"


def convert_state_dict(sd: Mapping[str, np.ndarray], source: str):
    """A TreB1eN IR-SE Backbone state dict (numpy) -> (ArcFace module, variables)."""
    sd = strip_data_parallel(dict(sd))
    if "output_layer.3.weight" not in sd or "input_layer.0.weight" not in sd:
        raise ConversionError(f"{source}: not an IR-SE ArcFace backbone; this looks like {describe(sd)}")
    if not any(k.endswith("res_layer.5.fc1.weight") for k in sd):
        raise ConversionError(f"{source}: an IR backbone without SE modules (mode 'ir'); only 'ir_se' is supported")
    depth = ir_se_depth(sd, source)
    fc_in = sd["output_layer.3.weight"].shape[1]
    size = {512 * 7 * 7: 112, 512 * 14 * 14: 224}.get(fc_in)
    if size is None:
        raise ConversionError(f"{source}: output_layer.3.weight has {fc_in} inputs; expected 25088 (112) or 100352")
    module = ArcFace(num_layers=depth, input_size=size, affine="output_layer.4.weight" in sd)
    return module, as_jax(convert_by_template(module, sd, source, (1, size, size, 3)))


def load_torch(path):
    """`model_ir_se50.pth` (bare TreB1eN state dict) -> (ArcFace module, variables)."""
    return convert_state_dict(bare_state_dict(path, WHAT), str(path))


save = file_save("arcface", load_torch, "model_ir_se50", lambda m: f"IR-SE{m.num_layers}, input {m.input_size}")


def main(argv=None):
    file_cli("arcface", "Convert the ArcFace IR-SE50 identity network to a jaxreenact checkpoint.",
             "TreB1eN model_ir_se50.pth (the identity-loss network)", save, argv)  # fmt: skip


if __name__ == "__main__":
    main()
