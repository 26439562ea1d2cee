"""Convert a rosinality-layout StyleGAN2 checkpoint (the authors' `stylegan2-voxceleb.pt`, FFHQ 256/1024) to JAX.

    python -m converters.stylegan2 stylegan2-voxceleb.pt converted/stylegan2_vox256

Reads `ckpt['g_ema']` (the EMA generator the authors load) and, if present, `ckpt['latent_avg']`; every other
top-level entry (`g`, `d`, `g_optim`, `d_optim`, `args`, ...) is ignored and reported. Size, channel multiplier,
style_dim and n_mlp are inferred from the keys and shapes. The key map is the table `key_table(module)`, applied by
`converters.common.convert_table`: every state-dict key is accounted for, and an unknown, missing or mis-shaped key
is a `ConversionError` naming it. The blur FIR buffers (`convs.{2k}.conv.blur.kernel`, `to_rgbs.{k}.upsample.kernel`)
are constants of the JAX module; they are checked to equal `outer([1,3,3,1])/64 * 4`. The truncation centre
`buffers/mean_latent` is computed here once, as the mean of `mapping(z)` over 4096
`z = numpy.random.default_rng(0).standard_normal((4096, style_dim), float32)`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from converters.common import (
    LINEAR,
    Hook,
    convert_table,
    run_cli,
    save_converted,
    template_of,
    to_numpy,
    torch_load,
)
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.stylegan2 import MEAN_LATENT_SAMPLES, MEAN_LATENT_SEED, Generator, mean_latent_z
from jaxreenact.nn.stylegan import BLUR_KERNEL, make_kernel

USED_ENTRIES = ("g_ema", "latent_avg")


def _max_index(sd, prefix: str) -> int:
    idx = [int(k.split(".")[1]) for k in sd if k.startswith(prefix + ".") and k.split(".")[1].isdigit()]
    return max(idx, default=-1)


def infer_config(sd: Mapping[str, np.ndarray], source: str) -> dict:
    """size, style_dim, n_mlp and channel_multiplier from a `g_ema` state dict."""
    if "conv1.conv.modulation.weight" not in sd:
        raise ConversionError(f"{source}: missing key 'conv1.conv.modulation.weight'; not a StyleGAN2 generator")
    style_dim = int(sd["conv1.conv.modulation.weight"].shape[1])
    # Counts come from the highest index of any key, so a missing weight is reported by name, not inferred away.
    n_mlp = _max_index(sd, "style")
    if n_mlp < 1:
        raise ConversionError(f"{source}: missing key 'style.1.weight' (no mapping network)")
    n_rgb = _max_index(sd, "to_rgbs") + 1
    if n_rgb < 1:
        raise ConversionError(f"{source}: missing key 'to_rgbs.0.conv.weight'")
    size = 2 ** (n_rgb + 2)
    if size > 1024:
        raise ConversionError(f"{source}: {n_rgb} to_rgbs layers means size {size}; sizes above 1024 are unsupported")
    cm = 1
    if size >= 64:
        c64 = int(sd["to_rgbs.3.conv.weight"].shape[2]) if "to_rgbs.3.conv.weight" in sd else 256
        if c64 % 256:
            raise ConversionError(
                f"{source}: key 'to_rgbs.3.conv.weight' has {c64} input channels; expected 256 * channel_multiplier"
            )
        cm = c64 // 256
    return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm)


# The key table, written out: the layout differs from the Flax tree in ways a naming rule would hide (5-d modulated
# kernels, an NCHW constant input, [1, 3, 1, 1] to_rgb biases, noise buffers under `noises.`).
MODCONV = Hook("[1, O, I, k, k] -> HWIO", lambda s: (1, s[3], s[2], s[0], s[1]), lambda a: a[0].transpose(2, 3, 1, 0))
NCHW = Hook("NCHW -> NHWC", lambda s: (s[0], s[3], s[1], s[2]), lambda a: a.transpose(0, 2, 3, 1))
RGB_BIAS = Hook("[1, 3, 1, 1] -> [3]", lambda s: (1, s[0], 1, 1), lambda a: a.reshape(-1))
# The blur FIR of each upsampling layer: a constant of the JAX module, checked and dropped.
FIR = make_kernel(BLUR_KERNEL) * 4


def _modconv(flax: str, torch: str) -> dict:
    return {
        f"{flax}/weight": (f"{torch}.weight", MODCONV),
        f"{flax}/modulation/weight": (f"{torch}.modulation.weight", LINEAR),
        f"{flax}/modulation/bias": f"{torch}.modulation.bias",
    }


def _styled(flax: str, torch: str) -> dict:
    return {
        **_modconv(f"params/{flax}/conv", f"{torch}.conv"),
        f"params/{flax}/noise/weight": f"{torch}.noise.weight",
        f"params/{flax}/activate/bias": f"{torch}.activate.bias",
    }


def _to_rgb(flax: str, torch: str) -> dict:
    return {**_modconv(f"params/{flax}/conv", f"{torch}.conv"), f"params/{flax}/bias": (f"{torch}.bias", RGB_BIAS)}


def key_table(module: Generator) -> tuple[dict, dict]:
    """(table {Flax path: key | (key, Hook)}, dropped {FIR key: FIR}) of a rosinality `g_ema` for `module`."""
    table = {"params/input/input": ("input.input", NCHW)}
    for i in range(1, module.n_mlp + 1):
        table |= {
            f"params/style_{i}/weight": (f"style.{i}.weight", LINEAR),
            f"params/style_{i}/bias": f"style.{i}.bias",
        }
    table |= _styled("conv1", "conv1") | _to_rgb("to_rgb1", "to_rgb1")
    dropped = {}
    for k in range(module.log_size - 2):
        table |= _styled(f"convs_{2 * k}", f"convs.{2 * k}") | _styled(f"convs_{2 * k + 1}", f"convs.{2 * k + 1}")
        table |= _to_rgb(f"to_rgbs_{k}", f"to_rgbs.{k}")
        dropped |= {f"convs.{2 * k}.conv.blur.kernel": FIR, f"to_rgbs.{k}.upsample.kernel": FIR}
    table |= {f"buffers/noise_{i}": (f"noises.noise_{i}", NCHW) for i in range(module.num_layers)}
    return table, dropped


def convert_state_dict(sd: Mapping[str, np.ndarray], source: str, latent_avg=None, dtype: str = "float32"):
    """A `g_ema` state dict (numpy) -> (Generator, variables) without the mean latent filled in."""
    cfg = infer_config(sd, source)
    sdim = cfg["style_dim"]
    module = Generator(**cfg, has_latent_avg=latent_avg is not None, dtype=dtype)
    computed = {"buffers/mean_latent": np.zeros((1, sdim), np.float32)}
    if latent_avg is not None:
        la = np.asarray(latent_avg, np.float32)
        if la.size != sdim or la.ndim > 2:
            raise ConversionError(f"{source}: 'latent_avg' has shape {la.shape}, expected ({sdim},) or (1, {sdim})")
        computed["buffers/latent_avg"] = la.reshape(sdim)
    table, dropped = key_table(module)
    template = template_of(module, module.init_inputs())
    return module, convert_table(template, sd, source, table, computed=computed, dropped=dropped)


def with_mean_latent(module: Generator, variables, n: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED):
    """Fill `buffers/mean_latent` with mean(mapping(z)) over the fixed sample `mean_latent_z(style_dim, n, seed)`."""
    z = mean_latent_z(module.style_dim, n, seed)
    with jax.default_matmul_precision("highest"):
        mean = jax.jit(lambda v, z: module.apply(v, z, method=Generator.compute_mean_latent))(variables, z)
    buffers = dict(variables["buffers"], mean_latent=np.asarray(mean, np.float32))
    return {**variables, "buffers": buffers}


def load_torch(path, dtype: str = "float32", return_info: bool = False):
    """`(Generator, variables)` from a rosinality checkpoint `{'g_ema': state_dict, ['latent_avg': [512]], ...}`."""
    ckpt = torch_load(path, "StyleGAN2 generator")
    if not isinstance(ckpt, Mapping) or "g_ema" not in ckpt:
        found = sorted(map(str, ckpt))[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ConversionError(
            f"{path}: not a StyleGAN2 generator checkpoint (no 'g_ema' entry; found {found}); "
            "expected the rosinality layout {'g_ema': state_dict, ...}"
        )
    g = ckpt["g_ema"]
    if not isinstance(g, Mapping):
        raise ConversionError(f"{path}: 'g_ema' is a {type(g).__name__}, not a state dict")
    sd = to_numpy(g, f"{path}['g_ema']")
    la = ckpt.get("latent_avg")
    if la is not None:
        la = la.detach().cpu().numpy() if hasattr(la, "detach") else np.asarray(la)
    module, variables = convert_state_dict(sd, f"{path}['g_ema']", la, dtype)
    variables = with_mean_latent(module, variables)
    variables = jax.tree.map(jnp.asarray, variables)
    if not return_info:
        return module, variables
    info = {
        "size": module.size,
        "channel_multiplier": module.channel_multiplier,
        "style_dim": module.style_dim,
        "n_mlp": module.n_mlp,
        "n_latent": module.n_latent,
        "entries_used": [k for k in USED_ENTRIES if k in ckpt],
        "entries_ignored": sorted(str(k) for k in ckpt if k not in USED_ENTRIES),
        "mean_latent": {
            "samples": MEAN_LATENT_SAMPLES,
            "z": f"numpy.random.default_rng({MEAN_LATENT_SEED}).standard_normal(({MEAN_LATENT_SAMPLES}, "
            f"{module.style_dim}), dtype=float32)",
            "used_by_default": "truncation < 1 with truncation_latent=None uses buffers/mean_latent",
        },
    }
    return module, variables, info


def save(srcs, dst, dtype: str = "float32") -> list[str]:
    """Convert the generator file `srcs[0]` and write the checkpoint folder `dst`; returns what was done."""
    (src,) = srcs
    module, variables, info = load_torch(src, dtype=dtype, return_info=True)
    save_converted(dst, module, variables, converter="stylegan2", sources={"generator": src}, extra=info)
    ign = f"; ignored entries {info['entries_ignored']}" if info["entries_ignored"] else ""
    return [f"converted StyleGAN2 {info['size']}px, channel_multiplier {info['channel_multiplier']}, "
            f"n_latent {info['n_latent']} from {info['entries_used']}{ign}", f"wrote {dst}"]  # fmt: skip


def main(argv=None):

    def add(p: argparse.ArgumentParser):
        p.add_argument("src", help="rosinality-layout StyleGAN2 checkpoint ({'g_ema': ..., ['latent_avg': ...]})")
        p.add_argument("dst", help="output directory (an Orbax checkpoint for jaxreenact.weights.load)")
        p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="synthesis compute dtype")

    def convert(a):
        for line in save([a.src], a.dst, dtype=a.dtype):
            print(line)

    run_cli("stylegan2", "Convert a rosinality StyleGAN2 generator checkpoint to jaxreenact.", add, convert, argv)


if __name__ == "__main__":
    main()
