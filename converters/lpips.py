"""LPIPS-alex v0.1 (AlexNet features + linear heads) -> `jaxreenact.models.lpips.LPIPS`.

    python -m converters.lpips alexnet-owt-7be5be79.pth alex.pth weights/lpips

Two inputs:
- ALEXNET_PTH: torchvision's AlexNet state dict (`features.{0,3,6,8,10}.{weight,bias}`); the `classifier.*` keys of
  the full torchvision file are ignored on purpose (LPIPS uses only `features`); anything else is an error.
- ALEX_LIN_PTH: the v0.1 heads, `lpips` package / richzhang layout `lin{i}.model.1.weight` [1, C, 1, 1]; the pSp
  renamed layout `{i}.1.weight` is read too. The heads are used as stored (not clamped).
Key tables (`FEATURES_TABLE`, `heads_table`): `params/features_<n>/{weight,bias}` <- `features.<n>.*` (OIHW -> HWIO);
`params/lin<i>/weight` <- `lin<i>.model.1.weight` (or `<i>.1.weight`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from converters.common import (
    CONV,
    SAME,
    as_jax,
    convert_table,
    describe,
    run_cli,
    save_converted,
    template_of,
    to_numpy,
    torch_load,
)
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.lpips import ALEX_CONVS, LPIPS

# The key tables, written out: AlexNet's `features.<n>` (two files, two tables) and the heads in either layout.
FEATURES_TABLE = {
    f"params/features_{n}/{leaf}": (f"features.{n}.{leaf}", CONV if leaf == "weight" else SAME)
    for n, *_ in ALEX_CONVS
    for leaf in ("weight", "bias")
}
HEAD_KEYS = {"lpips": "lin{}.model.1.weight", "psp": "{}.1.weight"}  # layout name -> key of head i


def heads_table(head_key: str) -> dict:
    return {f"params/lin{i}/weight": (head_key.format(i), CONV) for i in range(len(ALEX_CONVS))}


def _tensor_dict(obj, source: str, what: str) -> dict:
    if not isinstance(obj, Mapping) or not obj or not all(hasattr(v, "detach") for v in obj.values()):
        raise ConversionError(f"{source}: expected {what} (a state dict of tensors); this looks like {describe(obj)}")
    return to_numpy(obj, source)


def convert(alex_obj, lin_obj, alex_src: str, lin_src: str):
    """Loaded AlexNet and heads state dicts -> (LPIPS module, variables, info)."""
    alex = _tensor_dict(alex_obj, alex_src, "the torchvision AlexNet weights")
    lin = _tensor_dict(lin_obj, lin_src, "the LPIPS v0.1 alex heads")
    if "features.0.weight" not in alex:
        hint = " (the two files are swapped?)" if "features.0.weight" in lin else ""
        raise ConversionError(
            f"{alex_src}: not a torchvision AlexNet state dict{hint}; this looks like {describe(alex)}"
        )
    if alex["features.0.weight"].shape != (64, 3, 11, 11):
        raise ConversionError(
            f"{alex_src}: features.0.weight has shape {alex['features.0.weight'].shape}; AlexNet's is (64, 3, 11, 11)"
        )
    lin_layout = next((name for name, key in HEAD_KEYS.items() if key.format(0) in lin), None)
    if lin_layout is None:
        raise ConversionError(
            f"{lin_src}: not the LPIPS alex heads (expected keys 'lin0.model.1.weight' ...); this looks like {describe(lin)}"
        )
    ignored = sorted(k for k in alex if k.startswith("classifier."))
    alex = {k: v for k, v in alex.items() if not k.startswith("classifier.")}

    module = LPIPS()
    x = np.zeros((1, 64, 64, 3), np.float32)
    template = template_of(module, x, x)
    params = template["params"]
    heads = {"params": {k: v for k, v in params.items() if k.startswith("lin")}}
    features = {"params": {k: v for k, v in params.items() if k not in heads["params"]}}
    a = convert_table(features, alex, alex_src, FEATURES_TABLE)["params"]
    h = convert_table(heads, lin, lin_src, heads_table(HEAD_KEYS[lin_layout]))["params"]
    variables = {"params": {**a, **h}}  # the two parts cover the template: every leaf is a feature or a head
    info = {"lin_layout": lin_layout, "ignored_alexnet_keys": len(ignored)}
    return module, as_jax(variables), info


def load_torch(alexnet_path, lin_path, *, return_info: bool = False):
    """torchvision AlexNet state dict + LPIPS v0.1 `alex.pth` heads -> (LPIPS module, variables)."""
    alex = torch_load(alexnet_path, "torchvision AlexNet weights (alexnet-owt-7be5be79.pth)")
    lin = torch_load(lin_path, "LPIPS v0.1 alex heads (alex.pth)")
    module, variables, info = convert(alex, lin, str(alexnet_path), str(lin_path))
    return (module, variables, info) if return_info else (module, variables)


def _add_args(p):
    p.add_argument("alexnet", help="torchvision AlexNet weights, e.g. alexnet-owt-7be5be79.pth")
    p.add_argument("lin", help="LPIPS v0.1 linear heads: the lpips package's weights/v0.1/alex.pth")
    p.add_argument("dst", help="output directory of the converted checkpoint")


def save(srcs, dst) -> list[str]:
    """Convert `srcs` = (AlexNet weights, v0.1 heads) and write the checkpoint folder `dst`; returns what was done."""
    alexnet, lin = srcs
    module, variables, info = load_torch(alexnet, lin, return_info=True)
    save_converted(dst, module, variables, converter="converters.lpips", sources={"alexnet": alexnet, "lin": lin},
                   extra=info)  # fmt: skip
    lines = []
    if info["ignored_alexnet_keys"]:
        lines.append(
            f"note: ignored {info['ignored_alexnet_keys']} 'classifier.*' keys of {alexnet} (not used by LPIPS)"
        )
    return lines + [f"converted {alexnet} + {lin} -> {dst} (LPIPS-alex v0.1, heads layout {info['lin_layout']!r})"]


def _convert(args):
    for line in save([args.alexnet, args.lin], args.dst):
        print(line)


def main(argv=None):
    run_cli(
        "lpips",
        "Convert LPIPS-alex (AlexNet features + v0.1 heads) to a jaxreenact checkpoint.",
        _add_args,
        _convert,
        argv,
    )


if __name__ == "__main__":
    main()
