"""Shared converter machinery: reading PyTorch files safely, strict key accounting, saving, the CLI shape.

Every converter module has `load_torch(*srcs) -> (module, variables)` and `save(srcs, dst) -> lines` (convert the
upstream file(s) `srcs` and write the checkpoint folder `dst`; the lines say what was done): its own CLI and
`python -m converters.all` both call `save`."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxreenact
from jaxreenact.common import checkpoints
from jaxreenact.common.errors import ConversionError, UserError, cli_main
from jaxreenact.models.irse import unit_specs
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


def _path(path) -> str:
    return "/".join(str(getattr(p, "key", p)) for p in path)


def _flat(tree) -> dict[str, Any]:
    return {_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
    checkpoints.save_tree(dst, variables, meta)


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


def file_save(name: str, load: Callable, source_key: str, summary: Callable) -> Callable:
    """The `save(srcs, dst) -> lines` of a converter that reads one file: `load(src) -> (module, variables)`, saved
    to `dst` with its sha256; `summary(module)` goes into the line returned."""

    def save(srcs, dst) -> list[str]:
        (src,) = srcs
        module, variables = load(src)
        save_converted(dst, module, variables, converter=f"converters.{name}", sources={source_key: src})
        return [f"converted {src} -> {dst} ({summary(module)})"]

    return save


def file_cli(name: str, description: str, src_help: str, save: Callable, argv=None):
    """`python -m converters.<name> SRC DST` for a converter that reads one file (`save` from `file_save`)."""

    def add(p: argparse.ArgumentParser):
        p.add_argument("src", help=src_help)
        p.add_argument("dst", help="output directory of the converted checkpoint (for jaxreenact.weights.load)")

    def convert(a):
        for line in save([a.src], a.dst):
            print(line)

    run_cli(name, description, add, convert, argv)


def bare_state_dict(path, what: str) -> dict[str, np.ndarray]:
    """A file that must hold a bare state dict (name → tensor), as numpy; `ConversionError` naming what it holds."""
    obj = torch_load(path, what)
    if not isinstance(obj, Mapping) or not obj or not all(hasattr(v, "detach") for v in obj.values()):
        raise ConversionError(f"{path}: not a bare {what} state dict; this looks like {describe(obj)}")
    return to_numpy(obj, str(path))


# ------------------------------------------------------------------------------------------------ key tables
# A converter's key map is a table {Flax path: PyTorch key | (PyTorch key, Hook)}, applied by one driver,
# `convert_table` (the shape of MaxText's param_mapping: a mapping plus per-entry hook functions). A Flax path is the
# variable's path joined with "/", collection first (`params/body_3/res_layer_1/weight`, `buffers/noise_0`); a bare
# key means the tensor is stored as it is. Networks whose Flax names mirror the PyTorch names get their table from
# `rule_table`; the others write theirs out (converters.stylegan2, converters.lpips, converters.direction_matrix).
@dataclasses.dataclass(frozen=True)
class Hook:
    """How one PyTorch tensor becomes one Flax leaf: `torch_shape(leaf shape)` is the shape the key must have (checked
    before the transform, so a wrong shape is reported by key), `to_flax(tensor)` the leaf."""

    name: str
    torch_shape: Callable[[tuple], tuple]
    to_flax: Callable[[np.ndarray], np.ndarray]


SAME = Hook("as is", lambda s: s, lambda a: a)
CONV = Hook("OIHW -> HWIO", lambda s: (s[3], s[2], s[0], s[1]), lambda a: a.transpose(2, 3, 1, 0))
LINEAR = Hook("[out, in] -> [in, out]", lambda s: (s[1], s[0]), lambda a: a.T)


def by_rank(shape) -> Hook:
    """The hook of a leaf of a module named like its PyTorch one: conv kernels (4-d) and linear weights (2-d)."""
    return {4: CONV, 2: LINEAR}.get(len(shape), SAME)


def torch_key(names, numbered: str = r"(.+?)_(\d+)") -> str:
    """Flax path names -> PyTorch key: `body_3`, `res_layer_5`, `fc1`, `weight` -> `body.3.res_layer.5.fc1.weight`
    (a name matching `numbered`, `<module>_<n>`, stands for `<module>.<n>`)."""
    parts = []
    for name in names:
        m = re.fullmatch(numbered, name)
        parts.append(f"{m[1]}.{m[2]}" if m else name)
    return ".".join(parts)


def rule_table(template, rule: Callable = torch_key, skip=()) -> dict[str, tuple[str, Hook]]:
    """The key table of a module whose Flax names mirror the PyTorch ones: every leaf of `template` except the paths
    in `skip` -> (`rule(names)`, `by_rank(shape)`), `names` being the path without its collection (BatchNorm running
    stats sit in `buffers` under the same names as in PyTorch)."""
    return {
        path: (rule(path.split("/")[1:]), by_rank(t.shape)) for path, t in _flat(template).items() if path not in skip
    }


def template_of(module, *inputs):
    """The variable tree of `module` as shapes (`jax.eval_shape` of its init on `inputs`): what a table must fill."""
    return jax.eval_shape(module.init, jax.random.key(0), *inputs)


def convert_table(template, sd: Mapping[str, np.ndarray], source: str, table: Mapping, *, computed=None, dropped=None):
    """Variables shaped like `template`, each leaf from its row of `table` or from `computed`, strictly.

    `table`: {Flax path: key | (key, Hook)}; `computed`: {Flax path: array} for leaves that do not come from `sd`
    (FLAME buffers, latent averages); `dropped`: {key: expected} for keys that are read but not stored, `expected`
    being a shape (any values) or an array (the constant the Flax module builds in; the values must match). A
    BatchNorm's `num_batches_tracked` beside a mapped `running_mean` is accounted for if present. Every error is a
    `ConversionError` naming the key or path: a missing, mis-shaped or unused key, a leaf no row fills, a row for a
    path the module lacks.
    """
    leaves, computed = _flat(template), dict(computed or {})
    unfilled = [p for p in leaves if p not in table and p not in computed]
    if unfilled:
        raise ConversionError(f"{source}: no value for parameter(s) {', '.join(unfilled[:10])}")
    unknown = sorted((set(table) | set(computed)) - set(leaves))
    if unknown:
        raise ConversionError(f"{source}: the key table names unknown parameter(s) {', '.join(unknown[:10])}")
    km = KeyMap(sd, source)
    out = {}
    for path, row in table.items():
        key, hook = (row, SAME) if isinstance(row, str) else row
        out[path] = np.ascontiguousarray(hook.to_flax(km.take(key, shape=hook.torch_shape(tuple(leaves[path].shape)))))
        nbt = key.removesuffix("running_mean") + "num_batches_tracked"
        if key.endswith(".running_mean") and km.has(nbt):
            km.skip(nbt)
    for key, want in (dropped or {}).items():
        got = km.take(key, shape=want if isinstance(want, tuple) else np.shape(want))
        if not isinstance(want, tuple) and not np.allclose(got, want, rtol=1e-6, atol=1e-7):
            raise ConversionError(
                f"{source}: key {key!r} holds {np.round(got, 4).tolist()}, but the JAX module builds in "
                f"{np.round(want, 4).tolist()}; other values are unsupported"
            )
    km.finish()
    out.update(computed)
    variables = jax.tree_util.tree_map_with_path(lambda p, _: out[_path(p)], template)
    check_tree(template, variables, source)
    return variables


def convert_by_template(module, sd: Mapping[str, np.ndarray], source: str, input_shape, rule=torch_key, **kw):
    """`convert_table` with `rule_table(rule)` for `module` initialised on zeros of `input_shape`; `computed` leaves
    are left out of the rule."""
    template = template_of(module, np.zeros(input_shape, np.float32))
    table = rule_table(template, rule, skip=set(kw.get("computed") or ()))
    return convert_table(template, sd, source, table, **kw)


def as_jax(variables):
    return jax.tree.map(jnp.asarray, variables)


def describe(obj: Any) -> str:
    """A short guess of what a loaded file is, for 'wrong network' errors."""
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}, not a state dict"
    keys = [str(k) for k in obj.keys()]
    ks = set(keys)
    if "g_ema" in ks:
        return "a StyleGAN2 generator checkpoint (g_ema): use converters.stylegan2"
    if "e" in ks or "state_dict" in ks:
        return "an e4e/pSp checkpoint: use converters.e4e"
    if "E_flame" in ks:
        return "a DECA checkpoint: use converters.deca"
    if any(k.startswith("styles.") for k in ks):
        return "an e4e encoder state dict: use converters.e4e"
    if "features.0.weight" in ks:
        return "an AlexNet state dict: use converters.lpips"
    if any(re.fullmatch(r"(lin)?\d\.(model\.)?1\.weight", k) for k in ks):
        return "LPIPS linear heads: use converters.lpips"
    if "output_layer.3.weight" in ks:
        return "an IR-SE ArcFace state dict: use converters.arcface"
    shown = ", ".join(repr(k) for k in keys[:6])
    return f"an unknown checkpoint with keys {shown}{' ...' if len(keys) > 6 else ''}"


def ir_se_depth(sd: Mapping[str, Any], source: str) -> int:
    """num_layers (50, 100 or 152) of an IR-SE body, from the number of its `body.<i>` units (ArcFace, e4e)."""
    units = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    depth = {len(unit_specs(n)): n for n in (50, 100, 152)}.get(units)
    if depth is None:
        raise ConversionError(f"{source}: {units} body units; an IR-SE 50/100/152 body has 24, 49 or 50")
    return depth


def strip_data_parallel(sd: dict) -> dict:
    """`sd` without the `module.` prefix that DataParallel puts on every key (if it is on every key)."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def unwrap_state_dict(ckpt, path, what: str) -> dict:
    """A bare state dict from a file that may wrap it in `state_dict` or prefix every key with `module.`."""
    if isinstance(ckpt, dict) and "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict) or not ckpt:
        raise ConversionError(f"{path}: not a {what} state dict (found {type(ckpt).__name__})")
    return strip_data_parallel(ckpt)
