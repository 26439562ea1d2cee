"""Convert the authors' `A_matrix.pt` (or a checkpoint of their trainer) to a jaxreenact DirectionMatrix.

Layout: `{'A_matrix': {'linear.weight' [L·512, D], 'linear.bias' [L·512]}, 'learned_directions': D,
'shift_scale': 6.0, 'w_plus': True, 'num_layers_shift': L, 'shift_dim': 512}`. The authors' own trainer saves no
`shift_dim` (METHOD.md 2.1); we default it to 512 and say so, rather than fail as their inference scripts do.
`shift_scale` (the units of Δp A was trained with) is kept on the module, and inference builds Δp in those units.
"""

from __future__ import annotations

import argparse

import numpy as np

from converters.common import LINEAR, convert_table, run_cli, save_converted, template_of, to_numpy, torch_load
from jaxreenact.common.errors import ConversionError
from jaxreenact.latent.directions import DirectionMatrix

KNOWN = {"A_matrix", "learned_directions", "shift_scale", "w_plus", "num_layers_shift", "shift_dim"}
# Entries of a training checkpoint of the authors' trainer that are not part of A.
TRAINER_EXTRA = {"step", "optimizer", "opt"}
TABLE = {"params/linear/weight": ("linear.weight", LINEAR), "params/linear/bias": "linear.bias"}


def load_torch(path, return_info: bool = False):
    """Read `A_matrix.pt` strictly; return `(module, variables)` (and an info dict if `return_info`)."""
    ckpt = torch_load(path, "direction matrix (A_matrix.pt)")
    if not isinstance(ckpt, dict) or "A_matrix" not in ckpt:
        keys = list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConversionError(f"{path}: not a direction-matrix checkpoint (no 'A_matrix' entry; found {keys})")
    unknown = sorted(set(ckpt) - KNOWN - TRAINER_EXTRA)
    if unknown:
        raise ConversionError(f"{path}: unexpected top-level key(s) {unknown}")
    if ckpt.get("w_plus", True) is not True:
        raise ConversionError(f"{path}: w_plus=False direction matrices are not supported (the paper uses W+)")
    sd = to_numpy(ckpt["A_matrix"], str(path))
    w = sd.get("linear.weight")
    if w is None or w.ndim != 2:
        got = "is missing" if w is None else f"has shape {w.shape}"
        raise ConversionError(f"{path}: 'linear.weight' {got}, expected [layers*512, directions]")
    out_dim, in_dim = w.shape
    shift_dim = int(ckpt.get("shift_dim", 512))
    num_layers = int(ckpt.get("num_layers_shift", out_dim // shift_dim))
    if num_layers * shift_dim != out_dim:
        raise ConversionError(
            f"{path}: 'linear.weight' has {out_dim} rows, not num_layers_shift·shift_dim = {num_layers}·{shift_dim}"
        )
    if int(ckpt.get("learned_directions", in_dim)) != in_dim:
        raise ConversionError(f"{path}: learned_directions={ckpt['learned_directions']} but the weight has {in_dim}")
    shift_scale = float(ckpt.get("shift_scale", 6.0))
    if not shift_scale > 0:
        raise ConversionError(f"{path}: shift_scale={ckpt['shift_scale']!r}, expected a positive number")
    module = DirectionMatrix(input_dim=in_dim, num_layers=num_layers, shift_dim=shift_dim, shift_scale=shift_scale)
    template = template_of(module, np.zeros((1, in_dim), np.float32))
    variables = convert_table(template, sd, f"{path}['A_matrix']", TABLE)
    info = {
        "shift_scale": shift_scale,
        "learned_directions": in_dim,
        "num_layers_shift": num_layers,
        "shift_dim_in_file": "shift_dim" in ckpt,
    }
    return (module, variables, info) if return_info else (module, variables)


def save(srcs, dst) -> list[str]:
    """Convert `srcs[0]` (A_matrix.pt) and write the checkpoint folder `dst`; returns what was done."""
    (src,) = srcs
    module, variables, info = load_torch(src, return_info=True)
    save_converted(dst, module, variables, converter="direction_matrix", sources={"A_matrix": src}, extra=info)
    note = "" if info["shift_dim_in_file"] else " (no shift_dim in the file: assumed 512)"
    return [f"converted A: {info['learned_directions']} directions -> {module.num_layers}x{module.shift_dim}{note}",
            f"wrote {dst}"]  # fmt: skip


def main(argv=None):

    def add(p: argparse.ArgumentParser):
        p.add_argument("src", help="the authors' A_matrix.pt (or a checkpoint of their trainer)")
        p.add_argument("dst", help="output directory (an Orbax checkpoint for jaxreenact.weights.load)")

    def convert(a):
        for line in save([a.src], a.dst):
            print(line)

    run_cli(
        "direction_matrix", "Convert the authors' direction matrix A to a jaxreenact checkpoint.", add, convert, argv
    )


if __name__ == "__main__":
    main()
