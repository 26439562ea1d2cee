"""Pose/expression ranges of a generator's faces (the authors' `extract_statistics.py`), in the ranges-file layout.

    python -m jaxreenact.stats --generator weights/stylegan2-voxceleb --deca weights/deca --num 2000 \\
        --out ranges_mine.npy

N faces G(z, ψ=0.7) with z ~ N(0, I) from `--seed`, DECA on each (batched under jit), and per parameter the min and
max over the N faces: a float64 [54, 2] array whose rows are yaw, pitch, roll (degrees), jaw (pose[3], radians),
exp0..exp49, as `jaxreenact/resources/ranges_voxceleb.npy`. `--tiny` uses small random networks (tests, demos).
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.errors import UserError, cli_main


def ranges_rows(codes) -> jax.Array:
    """[B, 54]: yaw, pitch, roll (degrees), jaw, exp0..49 of DECA codes."""
    from jaxreenact.method import angles_of

    return jnp.concatenate([angles_of(codes), codes["pose"][:, 3:4], codes["exp"]], axis=1)


def compute_ranges(
    nets, frozen, num: int, seed: int = 0, batch: int = 16, truncation: float = 0.7, progress: bool = True
) -> np.ndarray:
    """min/max [54, 2] (float64) of `ranges_rows` over `num` generated faces (DECA crop: the fixed 256 box)."""
    from jaxreenact import method

    theta = jnp.asarray(method.fixed_deca_theta(batch))

    @jax.jit
    def rows(key):
        z = jax.random.normal(key, (batch, 512), jnp.float32)
        w = method.mapping(nets, frozen, z)
        img = method.render(nets, frozen, jnp.repeat(w[:, None], nets.g.n_latent, 1), truncation)
        return ranges_rows(method.deca_encode(nets, frozen, img, theta))

    lo = np.full(54, np.inf)
    hi = np.full(54, -np.inf)
    steps = -(-num // batch)
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="stats", unit="batch")
    root = jax.random.key(seed)
    for i in it:
        r = np.asarray(rows(jax.random.fold_in(root, i)), np.float64)[: num - i * batch]
        lo, hi = np.minimum(lo, r.min(0)), np.maximum(hi, r.max(0))
    return np.stack([lo, hi], axis=1)


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.stats", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="weights/stylegan2-voxceleb", help="converted generator folder")
    p.add_argument("--deca", default="weights/deca", help="converted DECA folder")
    p.add_argument("--num", type=int, default=2000, help="number of generated faces (the authors use 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--truncation", type=float, default=0.7)
    p.add_argument("--out", required=True, help="output .npy (float64 [54, 2], rows [min, max])")
    p.add_argument("--tiny", action="store_true", help="small random networks (tests/demos only)")
    a = p.parse_args(argv)
    if a.num < 1 or a.batch_size < 1:
        raise UserError(f"--num ({a.num}) and --batch-size ({a.batch_size}) must be positive")
    from jaxreenact import method

    if a.tiny:
        from jaxreenact import tiny

        nets, frozen = tiny.networks(0)
    else:
        import ml_collections

        cfg = ml_collections.ConfigDict({"weights": {"generator": a.generator, "deca": a.deca}})
        method.check_weights(cfg, ("generator", "deca"))
        from jaxreenact import weights

        g, gv = weights.load(a.generator)
        d, dv = weights.load(a.deca)
        nets, frozen = method.Networks(g=g, deca=d, arcface=None, lpips=None), {"g": gv, "deca": dv}
    r = compute_ranges(nets, frozen, a.num, a.seed, a.batch_size, a.truncation)
    out = pathlib.Path(a.out)
    import io

    from jaxreenact.checkpointing import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, r)
    atomic_write_bytes(out, buf.getvalue())
    print(f"ranges of {a.num} faces: yaw [{r[0, 0]:.1f}, {r[0, 1]:.1f}] deg, jaw [{r[3, 0]:.3f}, {r[3, 1]:.3f}]")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
