"""StyleGAN2 synthesis throughput: JAX (this port) against a PyTorch StyleGAN2 of the same layout, same process.

    python bench/generator.py                       # 256 px, channel multiplier 1 (the VoxCeleb generator)
    python bench/generator.py --size 1024 --cm 2 --batches 1 4 --write

Both run W+ -> image (synthesis only, stored noise) on the same random weights (the PyTorch reference's
state dict converted with converters.stylegan2) and the same inputs. Compile time (first jitted call) is
reported apart from steady-state throughput (median of `--iters` timed calls after a warm-up). The PyTorch side
is `tests/torch_reference/stylegan2.py` (upstream's CPU path: grouped modulated conv, native upfirdn2d; and the
non-fused modulated conv for comparison), run under `torch.inference_mode()`. `--write` appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import common

common.setup_paths()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import torch_reference.stylegan2 as ref_mod  # noqa: E402
from converters.stylegan2 import convert_state_dict  # noqa: E402
from torch_reference.stylegan2 import random_generator  # noqa: E402


def _set_fused(flag: bool) -> None:
    ref_mod.ModulatedConv2d.fused = flag


def run(size: int, cm: int, batches, iters: int, dtypes=("float32",), with_torch: bool = True) -> list[dict]:
    tg = random_generator(size, cm, seed=0)
    sd = {k: v.detach().numpy() for k, v in tg.state_dict().items()}
    rows = []
    for dtype in dtypes:
        module, variables = convert_state_dict(sd, "bench", dtype=dtype)
        variables = jax.device_put(jax.tree.map(np.asarray, variables))
        for b in batches:
            w = np.random.default_rng(b).standard_normal((b, module.n_latent, 512), dtype=np.float32)
            syn = jax.jit(lambda v, x, m=module: m.apply(v, x, method=m.synthesis))
            t = time.perf_counter()
            compiled = syn.lower(variables, w).compile()
            compile_s = time.perf_counter() - t
            wj = jax.device_put(w)
            row = dict(size=size, cm=cm, dtype=dtype, batch=b, compile_s=compile_s)

            def jax_call(c=compiled, v=variables, x=wj):
                return c(v, x).block_until_ready()

            if dtype != "float32" or not with_torch:
                (jax_s,) = common.median_times([jax_call], iters)
                row.update(jax_ips=b / jax_s)
            else:
                wt = torch.from_numpy(w)

                def torch_call(fused, x=wt):
                    _set_fused(fused)
                    with torch.inference_mode():
                        return tg(x, input_is_latent=True)

                jax_s, torch_s, torch_nf_s = common.median_times(
                    [jax_call, lambda: torch_call(True), lambda: torch_call(False)], iters
                )
                want = torch_call(True).permute(0, 2, 3, 1).numpy()
                diff = float(np.abs(np.asarray(compiled(variables, wj)) - want).max())
                best = min(torch_s, torch_nf_s)
                row.update(
                    jax_ips=b / jax_s,
                    torch_ips=b / torch_s,
                    torch_nf_ips=b / torch_nf_s,
                    ratio=best / jax_s,
                    max_abs_diff=diff,
                )
            rows.append(row)
            print(row, flush=True)
    return rows


def to_markdown(rows, iters) -> str:
    out = [
        *common.section_head("StyleGAN2 generator (issue 2)", "python bench/generator.py"),
        f"Synthesis only (W+ -> image, stored noise), median of {iters} calls after a warm-up, JAX and PyTorch calls interleaved; compile = first",
        "`jit(...).lower().compile()`. PyTorch: the upstream grouped (fused) modulated conv and, in brackets, the",
        "non-fused form; ratio = JAX images/s ÷ the faster PyTorch form's images/s (> 1: JAX faster).",
        "Other processes shared the CPU cores during the run, so the numbers are noisy (±20 % or more).",
        "",
        "| size | cm | dtype | batch | compile (s) | JAX img/s | PyTorch img/s | ratio | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = (
            f"{r['torch_ips']:.2f} ({r['torch_nf_ips']:.2f}) | {r['ratio']:.2f} | {r['max_abs_diff']:.1e}"
            if "torch_ips" in r
            else "– | – | –"
        )
        out.append(
            f"| {r['size']} | {r['cm']} | {r['dtype']} | {r['batch']} | {r['compile_s']:.1f} | {r['jax_ips']:.2f} | {t} |"
        )
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--cm", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="also time the bfloat16 compute dtype (JAX only)")
    p.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    p.add_argument("--no-torch", action="store_true", help="JAX only (the PyTorch side runs on the CPU)")
    a = p.parse_args(argv)
    if jax.default_backend() == "cpu":  # parity-grade matmuls; accelerators keep their default precision
        jax.config.update("jax_default_matmul_precision", "highest")
    dtypes = ("float32", "bfloat16") if a.bf16 else ("float32",)
    rows = run(a.size, a.cm, a.batches, a.iters, dtypes, with_torch=not a.no_torch)
    md = to_markdown(rows, a.iters)
    print(md)
    if a.write:
        common.write_section(md)


if __name__ == "__main__":
    main()
