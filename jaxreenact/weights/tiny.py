"""Small random-weight networks of the method's kinds, for the `:tiny` configs (CI, laptops, smoke tests).

Same module classes as the real ones, shrunk through their constructor knobs (channels, depth, FLAME mesh size),
initialised from a seed. Nothing is read from disk, so `python -m jaxreenact.train --config=...:tiny` runs on a
fresh clone. The numbers they produce mean nothing; the code paths are the real ones.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.latent.directions import DirectionMatrix
from jaxreenact.models import arcface, deca, e4e, lpips, stylegan2
from jaxreenact.models import flame as flame_lib
from jaxreenact.models.fan import FAN
from jaxreenact.models.inception import FIDInceptionV3
from jaxreenact.models.sfd import S3FD
from jaxreenact.weights.networks import Networks


def synthetic_flame_buffers(seed: int = 0, rings: int = 12, segments: int = 16) -> dict[str, np.ndarray]:
    """A small FLAME-like head (UV sphere, 5 joints) with the buffer layout of `jaxreenact.models.flame`.

    Landmarks sit on faces at fixed directions, so the eye and mouth pairs have non-zero, pose-dependent
    distances; shape/expression bases are smooth random fields (~1 mm per unit).
    """
    rng = np.random.default_rng(seed)
    lat = np.linspace(80, -80, rings) * np.pi / 180
    lon = np.linspace(-np.pi, np.pi, segments, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    dirs = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    v = dirs * np.array([0.08, 0.11, 0.09])
    n_v = len(v)
    idx = np.arange(n_v).reshape(rings, segments)
    nxt = np.roll(idx, -1, axis=1)
    faces = np.concatenate(
        [
            np.stack([idx[:-1], idx[1:], nxt[:-1]], -1).reshape(-1, 3),
            np.stack([nxt[:-1], idx[1:], nxt[1:]], -1).reshape(-1, 3),
        ]
    )
    n_betas = 150
    basis = rng.normal(0, 1e-3, (4, 3, n_betas))
    feats = np.concatenate([v / 0.1, np.ones((n_v, 1))], 1)  # smooth: linear in position
    shapedirs = np.einsum("vk,kdb->vdb", feats, basis)
    posedirs = rng.normal(0, 1e-4, (36, n_v * 3))
    y = v[:, 1]
    j_reg = np.zeros((5, n_v))
    for j, sel in enumerate([y < -0.06, (y < -0.02) & (y > -0.06), (y < 0) & (v[:, 2] > 0.05), y > 0.04, y > 0.04]):
        j_reg[j, sel] = 1.0
    j_reg /= j_reg.sum(1, keepdims=True)
    w = np.stack(
        [np.ones(n_v), np.clip(-y / 0.1, 0, 1), np.clip(-y / 0.05, 0, 1) * (v[:, 2] > 0), 0.01 + 0 * y, 0.01 + 0 * y], 1
    )
    w /= w.sum(1, keepdims=True)
    centres = v[faces].mean(1)

    def face_at(lat_deg, lon_deg):
        d = np.array([np.cos(np.radians(lat_deg)) * np.sin(np.radians(lon_deg)), np.sin(np.radians(lat_deg)),
                      np.cos(np.radians(lat_deg)) * np.cos(np.radians(lon_deg))])  # fmt: skip
        return int(np.argmax(centres @ d / np.linalg.norm(centres, axis=1)))

    t = np.linspace(-1, 1, 17)
    lat68 = np.r_[-10 - 30 * (1 - t**2), np.full(10, 28), np.linspace(22, -2, 9), np.full(12, 12), np.full(20, -22)]
    lon68 = np.r_[
        70 * t, np.linspace(-40, 40, 10), np.linspace(-8, 8, 9), np.linspace(-32, 32, 12), np.linspace(-25, 25, 20)
    ]
    lat68[36:48] += np.tile([0, 3, 3, 0, -3, -3], 2)  # eyes: upper and lower lids apart
    lat68[48:68] += np.r_[
        np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False)) * 6,
        np.sin(np.linspace(0, 2 * np.pi, 8, endpoint=False)) * 3,
    ]
    full = np.array([face_at(a, b) for a, b in zip(lat68, lon68)], np.int32)
    bary = rng.uniform(0.1, 1.0, (68, 3))
    bary /= bary.sum(1, keepdims=True)
    dyn = np.stack([[face_at(a, b - 0.5 * yy) for a, b in zip(lat68[:17], lon68[:17])]
                    for yy in np.r_[np.arange(40), -np.arange(1, 40)]]).astype(np.int32)  # fmt: skip
    dyn_bary = np.broadcast_to(bary[:17], (flame_lib.N_DYNAMIC_ROWS, 17, 3))
    out = {
        "v_template": v,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": j_reg,
        "lbs_weights": w,
        "faces": faces.astype(np.int32),
        "lmk_faces_idx": full[17:],
        "lmk_bary_coords": bary[17:],
        "dynamic_lmk_faces_idx": dyn,
        "dynamic_lmk_bary_coords": dyn_bary,
        "full_lmk_faces_idx": full,
        "full_lmk_bary_coords": bary,
    }
    return {k: (a.astype(np.int32) if a.dtype.kind in "iu" else a.astype(np.float32)) for k, a in out.items()}


@functools.lru_cache(maxsize=4)  # deterministic in its arguments; building takes seconds (jit of every init)
def networks(seed: int = 0, with_e4e: bool = False):
    """(Networks, frozen variables) of small random networks: G 256² (narrow), DECA (narrow ResNet, small FLAME),
    ArcFace (shallow IR-SE), LPIPS-alex (non-negative random heads), optionally e4e (shallow IR-SE)."""
    keys = jax.random.split(jax.random.key(seed), 5)
    g = stylegan2.Generator(size=256, channel_multiplier=1, channel_divisor=32)
    # jit: eager Flax init runs every op one by one and takes many times longer on a CPU.
    g_vars = jax.jit(g.init)(keys[0], g.init_inputs(1))
    z = jax.random.normal(jax.random.key(seed + 1), (256, g.style_dim))
    mean = jax.jit(lambda v, z: g.apply(v, z, method="compute_mean_latent"))(g_vars, z)
    g_vars["buffers"]["mean_latent"] = jnp.reshape(mean, g_vars["buffers"]["mean_latent"].shape)

    fb = synthetic_flame_buffers(seed)
    d = deca.DECA(n_vertices=len(fb["v_template"]), n_faces=len(fb["faces"]), **deca.TINY_ENCODER)
    d_vars = jax.jit(d.init)(keys[1], jnp.zeros((1, 224, 224, 3)))
    d_vars["buffers"]["flame"] = {k: jnp.asarray(v) for k, v in fb.items()}
    # Small outputs: random heads would otherwise give extreme poses (angles of tens of radians).
    d_vars["params"]["E_flame"]["layers_2"] = jax.tree.map(lambda a: a * 0.05, d_vars["params"]["E_flame"]["layers_2"])

    a = arcface.ArcFace(**arcface.TINY)
    a_vars = jax.jit(a.init)(keys[2], jnp.zeros((1, 112, 112, 3)))
    lp = lpips.LPIPS(width_div=4)
    lp_vars = jax.jit(lp.init)(keys[3], jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 3)))
    lp_vars = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.abs(x) if "lin" in jax.tree_util.keystr(p) else x, lp_vars
    )
    mods = {"g": g, "deca": d, "arcface": a, "lpips": lp}
    frozen = {"g": g_vars, "deca": d_vars, "arcface": a_vars, "lpips": lp_vars}
    if with_e4e:
        e = e4e.Encoder4Editing(**e4e.TINY)
        frozen["e4e"] = jax.jit(e.init)(keys[4], jnp.zeros((1, 256, 256, 3)))
        mods["e4e"] = e
    return Networks(**mods), frozen


@functools.lru_cache(maxsize=2)
def inception(seed: int = 0):
    """(FIDInceptionV3, random variables) for the tiny evaluation: the real architecture (it has no width knob),
    random weights, so FID runs end to end; its values mean nothing."""
    m = FIDInceptionV3()
    # Filled from the variables' shapes (a trace, ~1 s) rather than `jax.jit(m.init)`, whose compilation of the
    # full 299² network takes ~20 s on a CI core: He-normal convolutions, identity BatchNorms, zero biases.
    shapes = jax.eval_shape(m.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32))
    rng = np.random.default_rng(seed + 11)

    def fill(path, leaf):
        name = path[-1].key
        if name == "weight" and len(leaf.shape) == 4:  # HWIO
            std = np.sqrt(2.0 / np.prod(leaf.shape[:3]))
            return jnp.asarray(rng.normal(0.0, std, leaf.shape), leaf.dtype)
        one = name in ("weight", "running_var")  # BatchNorm scale and variance; biases and means are 0
        return jnp.full(leaf.shape, 1.0 if one else 0.0, leaf.dtype)

    return m, jax.tree_util.tree_map_with_path(fill, shapes)


@functools.lru_cache(maxsize=2)
def face_locator_networks(seed: int = 0):
    """((S3FD, variables), (FAN, variables)) with random weights for `deca_box="landmarks"` in tiny runs: S3FD is
    the real architecture (no width knob), FAN has one hourglass stack."""
    s, f = S3FD(), FAN(num_modules=1)
    sv = jax.jit(s.init)(jax.random.key(seed + 21), jnp.zeros((1, 64, 64, 3)))
    fv = jax.jit(f.init)(jax.random.key(seed + 22), jnp.zeros((1, 256, 256, 3)))
    return (s, sv), (f, fv)


@functools.lru_cache(maxsize=4)
def direction_matrix(seed: int = 0, input_dim: int = 15, style_dim: int = 512):
    """(DirectionMatrix, random variables) with the authors' initialisation."""
    a = DirectionMatrix(input_dim, 8, style_dim)
    return a, a.init(jax.random.key(seed + 7), jnp.zeros((1, input_dim), jnp.float32))


def bundle(names, seed: int = 0) -> tuple[Networks, dict]:
    """The tiny bundle of the registry networks `names` (see `jaxreenact.weights.bundle.load`)."""
    nets, frozen = networks(seed, with_e4e="e4e" in names)
    mods = {k: getattr(nets, k) for k in ("g", "deca", "arcface", "lpips", "e4e")}
    variables = dict(frozen)
    if "sfd" in names or "fan" in names:
        (mods["sfd"], variables["sfd"]), (mods["fan"], variables["fan"]) = face_locator_networks(seed)
    if "inception" in names:
        mods["inception"], variables["inception"] = inception(seed)
    if "A" in names:
        mods["A"], variables["A"] = direction_matrix(seed, 15, nets.g.style_dim)
    mods = {k: v for k, v in mods.items() if v is not None}
    return Networks(**mods), variables
