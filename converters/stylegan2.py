"""Convert a rosinality-layout StyleGAN2 checkpoint (the authors' `stylegan2-voxceleb.pt`, FFHQ 256/1024) to JAX.

    python -m converters.stylegan2 stylegan2-voxceleb.pt converted/stylegan2_vox256

Reads `ckpt['g_ema']` (the EMA generator the authors load) and, if present, `ckpt['latent_avg']`; every other
top-level entry (`g`, `d`, `g_optim`, `d_optim`, `args`, ...) is ignored and reported. Size, channel multiplier,
style_dim and n_mlp are inferred from the keys and shapes. Every state-dict key is accounted for: an unknown,
missing or mis-shaped key is a `ConversionError` naming it. The blur FIR buffers (`convs.{2k}.conv.blur.kernel`,
`to_rgbs.{k}.upsample.kernel`) are constants of the JAX module; they are checked to equal
`outer([1,3,3,1])/64 * 4`. The truncation centre `buffers/mean_latent` is computed here once, as the mean of
`mapping(z)` over 4096 `z = numpy.random.default_rng(0).standard_normal((4096, style_dim), float32)`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from converters.common import KeyMap, check_tree, run_cli, save_converted, to_numpy, torch_load
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.stylegan2 import MEAN_LATENT_SAMPLES, MEAN_LATENT_SEED, Generator, channels, mean_latent_z
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


def _modconv(km: KeyMap, p: str, cin: int, cout: int, k: int, style_dim: int) -> dict:
    w = km.take(f"{p}.weight", (1, cout, cin, k, k))[0]
    return {
        "weight": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),  # [out,in,kh,kw] -> HWIO
        "modulation": {
            "weight": np.ascontiguousarray(km.take(f"{p}.modulation.weight", (cin, style_dim)).T),
            "bias": km.take(f"{p}.modulation.bias", (cin,)),
        },
    }


def _check_fir(km: KeyMap, key: str, blur_kernel) -> None:
    want = make_kernel(blur_kernel) * 4
    got = km.take(key, want.shape)
    if not np.allclose(got, want, rtol=1e-6, atol=1e-7):
        raise ConversionError(
            f"{km.source}: key {key!r} is not the StyleGAN2 FIR outer({list(blur_kernel)})/sum*4 "
            f"(got {np.round(got, 4).tolist()}); custom blur kernels are unsupported"
        )


def convert_state_dict(sd: Mapping[str, np.ndarray], source: str, latent_avg=None, dtype: str = "float32"):
    """A `g_ema` state dict (numpy) -> (Generator, variables) without the mean latent filled in."""
    cfg = infer_config(sd, source)
    size, sdim, cm = cfg["size"], cfg["style_dim"], cfg["channel_multiplier"]
    module = Generator(**cfg, has_latent_avg=latent_avg is not None, dtype=dtype)
    ch = channels(size, cm)
    km = KeyMap(sd, source)
    params, buffers = {}, {}
    for i in range(1, cfg["n_mlp"] + 1):
        params[f"style_{i}"] = {
            "weight": np.ascontiguousarray(km.take(f"style.{i}.weight", (sdim, sdim)).T),
            "bias": km.take(f"style.{i}.bias", (sdim,)),
        }
    params["input"] = {"input": km.take("input.input", (1, ch[4], 4, 4)).transpose(0, 2, 3, 1).copy()}

    def styled(p, cin, cout, up):
        d = {
            "conv": _modconv(km, f"{p}.conv", cin, cout, 3, sdim),
            "noise": {"weight": km.take(f"{p}.noise.weight", (1,))},
            "activate": {"bias": km.take(f"{p}.activate.bias", (cout,))},
        }
        if up:
            _check_fir(km, f"{p}.conv.blur.kernel", BLUR_KERNEL)
        return d

    def to_rgb(p, cin, up):
        d = {"conv": _modconv(km, f"{p}.conv", cin, 3, 1, sdim), "bias": km.take(f"{p}.bias", (1, 3, 1, 1)).reshape(3)}
        if up:
            _check_fir(km, f"{p}.upsample.kernel", BLUR_KERNEL)
        return d

    params["conv1"] = styled("conv1", ch[4], ch[4], False)
    params["to_rgb1"] = to_rgb("to_rgb1", ch[4], False)
    cin = ch[4]
    for k, lg in enumerate(range(3, module.log_size + 1)):
        c = ch[2**lg]
        params[f"convs_{2 * k}"] = styled(f"convs.{2 * k}", cin, c, True)
        params[f"convs_{2 * k + 1}"] = styled(f"convs.{2 * k + 1}", c, c, False)
        params[f"to_rgbs_{k}"] = to_rgb(f"to_rgbs.{k}", c, True)
        cin = c
    for i in range(module.num_layers):
        r = 2 ** ((i + 5) // 2)
        buffers[f"noise_{i}"] = km.take(f"noises.noise_{i}", (1, 1, r, r)).reshape(1, r, r, 1)
    km.finish()
    buffers["mean_latent"] = np.zeros((1, sdim), np.float32)
    if latent_avg is not None:
        la = np.asarray(latent_avg, np.float32)
        if la.size != sdim or la.ndim > 2:
            raise ConversionError(f"{source}: 'latent_avg' has shape {la.shape}, expected ({sdim},) or (1, {sdim})")
        buffers["latent_avg"] = la.reshape(sdim)
    variables = {"params": params, "buffers": buffers}
    template = jax.eval_shape(module.init, jax.random.key(0), module.init_inputs())
    check_tree(template, variables, source)
    return module, variables


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
