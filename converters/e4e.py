"""Encoder4Editing checkpoint -> `jaxreenact.models.e4e.Encoder4Editing`.

    python -m converters.e4e e4e_vox.pt weights/e4e

Layouts read (the one found is printed and stored in the metadata as `source_layout`):
- `official`: `{'e': encoder state dict}`, the authors' e4e-VoxCeleb file (`torch.load(f)['e']`);
- `psp`: omertov/pSp training output `{'state_dict': {'encoder.<k>': ..., 'decoder.<k>': ...}, 'latent_avg',
  'opts', ...}`. `decoder.*` keys (the StyleGAN2 generator saved with the encoder) are ignored on purpose: convert
  the generator with converters.stylegan2. Any other state_dict prefix is an error. `latent_avg` ([512] or
  [rows, 512]) is stored, broadcast to [rows, 512], in `buffers/latent_avg`; `apply` never adds it unless
  called with `add_latent_avg=True`. Training leftovers at the top level (`opts`, `global_step`, optimizer and
  discriminator states, ...) are not read;
- `bare`: an encoder state dict by itself.
Key table: `converters.common.rule_table`, as the Flax names are the PyTorch ones with `_<n>` for `.<n>`
(`params/styles_3/convs_4/weight` <- `styles.3.convs.4.weight`); conv kernels OIHW -> HWIO, the EqualLinear weight
[out, in] -> [in, out] (stored unscaled, as in PyTorch).
The number of `styles.<i>` blocks sets the generator resolution (14 -> 256, 18 -> 1024).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from converters.common import (
    as_jax,
    convert_by_template,
    describe,
    ir_se_depth,
    run_cli,
    save_converted,
    to_numpy,
    torch_load,
)
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.e4e import Encoder4Editing, style_count

WHAT = "e4e encoder"
# Top-level entries of e4e/pSp training checkpoints that hold no encoder weights.
PSP_IGNORED_TOP = {
    "opts",
    "global_step",
    "best_val_loss",
    "optimizer",
    "discriminator_state_dict",
    "discriminator_optimizer_state_dict",
}


def _split(obj, source: str):
    """(layout name, encoder state dict (torch), latent_avg or None, notes)."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: not an e4e checkpoint; it is {describe(obj)}")
    notes = []
    if "e" in obj and isinstance(obj["e"], Mapping):
        extra = sorted(str(k) for k in obj if k != "e")
        if extra:
            notes.append(f"ignored top-level entries {extra}")
        return "official", dict(obj["e"]), None, notes
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        unknown = sorted(str(k) for k in obj if k not in PSP_IGNORED_TOP | {"state_dict", "latent_avg"})
        if unknown:
            raise ConversionError(f"{source}: unexpected top-level entries {unknown} in an e4e/pSp checkpoint")
        enc, n_dec, other = {}, 0, []
        for k, v in obj["state_dict"].items():
            if k.startswith("encoder."):
                enc[k[len("encoder.") :]] = v
            elif k.startswith("decoder."):
                n_dec += 1
            else:
                other.append(k)
        if other:
            shown = ", ".join(repr(k) for k in other[:10])
            raise ConversionError(f"{source}: state_dict key(s) {shown} are neither 'encoder.*' nor 'decoder.*'")
        if not enc:
            raise ConversionError(f"{source}: its state_dict has no 'encoder.*' keys; not an e4e/pSp checkpoint")
        if n_dec:
            notes.append(f"ignored {n_dec} 'decoder.*' keys (the generator; convert it with converters.stylegan2)")
        avg = obj.get("latent_avg")
        if avg is not None and not hasattr(avg, "detach"):
            raise ConversionError(f"{source}: 'latent_avg' holds a {type(avg).__name__}, not a tensor")
        return "psp", enc, avg, notes
    if "input_layer.0.weight" in obj and any(str(k).startswith("styles.") for k in obj):
        return "bare", dict(obj), None, notes
    raise ConversionError(
        f"{source}: not an e4e checkpoint (expected {{'e': state_dict}} or {{'state_dict': ...}}); "
        f"this looks like {describe(obj)}"
    )


def convert(obj, source: str):
    """A loaded checkpoint object -> (module, variables, info) with info = {'layout', 'notes', ...}."""
    layout, enc, avg, notes = _split(obj, source)
    sd = to_numpy(enc, source)
    if "input_layer.0.weight" not in sd or "styles.0.linear.weight" not in sd:
        raise ConversionError(
            f"{source}: the encoder weights are not an Encoder4Editing; this looks like {describe(sd)}"
        )
    n_styles = len({k.split(".")[1] for k in sd if k.startswith("styles.")})
    resolution = {style_count(r): r for r in (256, 512, 1024)}.get(n_styles)
    if resolution is None:
        raise ConversionError(f"{source}: {n_styles} style blocks; e4e has 14 (256), 16 (512) or 18 (1024)")
    module = Encoder4Editing(
        num_layers=ir_se_depth(sd, source), image_resolution=resolution, has_latent_avg=avg is not None
    )
    computed = {} if avg is None else {"buffers/latent_avg": _latent_avg(avg, n_styles, source)}
    variables = convert_by_template(module, sd, source, (1, 256, 256, 3), computed=computed)
    info = {"source_layout": layout, "notes": notes, "has_latent_avg": avg is not None}
    return module, as_jax(variables), info


def _latent_avg(avg, rows: int, source: str) -> np.ndarray:
    a = avg.detach().cpu().numpy().astype(np.float32)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.shape == (512,):  # pSp's mean_latent: added to every row
        a = np.broadcast_to(a, (rows, 512))
    elif a.shape != (rows, 512):
        raise ConversionError(f"{source}: latent_avg has shape {tuple(a.shape)}, expected [512] or [{rows}, 512]")
    return np.ascontiguousarray(a)


def load_torch(path, *, return_info: bool = False):
    """An e4e checkpoint ({'e': ...} official or pSp {'state_dict', 'latent_avg', 'opts'}) -> (module, variables).

    `return_info=True` adds a dict naming the layout found (`source_layout`) and what was ignored.
    """
    module, variables, info = convert(torch_load(path, WHAT), str(path))
    return (module, variables, info) if return_info else (module, variables)


def _add_args(p):
    p.add_argument("src", help="e4e checkpoint: the authors' e4e-VoxCeleb file ({'e': ...}) or an e4e/pSp file")
    p.add_argument("dst", help="output directory of the converted checkpoint")


def save(srcs, dst) -> list[str]:
    """Convert the e4e file `srcs[0]` and write the checkpoint folder `dst`; returns what was done."""
    (src,) = srcs
    module, variables, info = load_torch(src, return_info=True)
    save_converted(dst, module, variables, converter="converters.e4e", sources={"e4e": src}, extra=info)
    avg = ", latent_avg stored (not added by apply)" if info["has_latent_avg"] else ""
    return ([f"found the {info['source_layout']!r} layout in {src}"] + [f"note: {n}" for n in info["notes"]]
            + [f"converted {src} -> {dst} ({style_count(module.image_resolution)} W+ rows{avg})"])  # fmt: skip


def _convert(args):
    for line in save([args.src], args.dst):
        print(line)


def main(argv=None):
    run_cli("e4e", "Convert an Encoder4Editing checkpoint to a jaxreenact checkpoint.", _add_args, _convert, argv)


if __name__ == "__main__":
    main()
