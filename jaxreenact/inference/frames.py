"""The per-frame core of inference, batched under jit: DECA p of crops, G(trunc(w + A·Δp)), e4e, G(w).

Each function takes the bundle's modules (`nets`, static) and variables explicitly and fixed-size batches (the last
batch padded, `map_sharded`), so one compilation serves a whole video, and every batch is split over all local
devices (`current_mesh`: a 1-D `data` mesh, the variables replicated once per tree): a batch of B rows is laid out as
round_up(B, devices) rows. Two batches are in flight at a time, so the host pads and copies the next batch while
the devices compute.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import numpy as np

from jaxreenact.common.images import from_uint8, to_uint8_jax
from jaxreenact.common.mesh import (
    batch_sharded,
    cpu_chunks,
    local_mesh,
    pad_rows,
    put_replicated,
    replicated,
    round_up,
)
from jaxreenact.latent import render as render_lib
from jaxreenact.pose import deca as deca_lib
from jaxreenact.pose import params as pose
from jaxreenact.weights import Networks

_MESH: list = []  # an override of the local mesh (`on_mesh`)
_REPLICATED: dict = {}  # id(tree) -> (tree, mesh, its replicated copy)
IN_FLIGHT = 2  # batches dispatched before the first one's result is read


@functools.lru_cache(maxsize=1)
def _local_mesh():
    return local_mesh()


def current_mesh() -> jax.sharding.Mesh:
    """The mesh the per-frame functions shard over: every local device, unless `on_mesh` says otherwise."""
    return _MESH[-1] if _MESH else _local_mesh()


@contextlib.contextmanager
def on_mesh(mesh):
    """Run the per-frame functions (and `face.pipeline.FaceLocator`s built meanwhile) over `mesh` (tests: one
    device as the reference of many)."""
    _MESH.append(mesh)
    try:
        yield mesh
    finally:
        _MESH.pop()


def replicate(tree, mesh=None):
    """`tree` replicated over `mesh` (default `current_mesh()`), copied once per tree and mesh."""
    mesh = mesh or current_mesh()
    hit = _REPLICATED.get(id(tree))
    if hit is not None and hit[0] is tree and hit[1] == mesh:
        return hit[2]
    if len(_REPLICATED) > 32:
        _REPLICATED.clear()
    rep = put_replicated(tree, mesh)
    _REPLICATED[id(tree)] = (tree, mesh, rep)
    return rep


def sharded_batch(batch: int, mesh=None) -> int:
    """The rows of one device batch: `batch` rounded up to a multiple of the device count."""
    return round_up(batch, (mesh or current_mesh()).size)


def map_sharded(fn, arrays, batch: int, fill: str = "repeat", mesh=None):
    """`fn(*batch_arrays)` over fixed-size batches of the row-aligned host `arrays`, each batch padded to
    `sharded_batch(batch)` rows and split over the mesh's devices; returns the outputs (an array or a tuple)
    concatenated over the rows as numpy, the padding trimmed."""
    mesh = mesh or current_mesh()
    sharding = batch_sharded(mesh)
    b = sharded_batch(batch, mesh)
    n = len(arrays[0])
    pending, outs = [], []

    def fetch():
        r, k = pending.pop(0)
        outs.append(tuple(np.asarray(o)[:k] for o in r) if isinstance(r, tuple) else np.asarray(r)[:k])

    for lo in range(0, n, b):
        parts = [jax.device_put(pad_rows(np.asarray(a[lo : lo + b]), b, fill), sharding) for a in arrays]
        pending.append((fn(*parts), min(b, n - lo)))  # dispatched; read later
        if len(pending) > IN_FLIGHT:
            fetch()
    while pending:
        fetch()
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(cols, 0) for cols in zip(*outs))
    return np.concatenate(outs, 0)


@functools.partial(jax.jit, static_argnames=("deca", "layout"))
def _p_of(deca, deca_vars, images_u8, theta, layout):
    codes = deca_lib.encode(deca, deca_vars, from_uint8(images_u8), theta)
    return pose.params_to_p(codes, layout)


def p_of_crops(nets: Networks, variables, layout, crops_u8: np.ndarray, theta: np.ndarray, batch: int | None = None):
    """Raw p [N, D] of 256² crops (uint8 [N, 256, 256, 3]) with DECA crop matrices theta [N, 3, 3]."""
    deca_vars = replicate(variables["deca"])
    fn = lambda x, t: _p_of(nets.deca, deca_vars, x, t, layout)
    theta = np.asarray(theta, np.float32)
    return map_sharded(fn, [crops_u8, theta], batch or len(crops_u8)).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("g", "a", "truncation"))
def _render_dp(g, a, g_vars, a_vars, w_src, dp, truncation):
    return to_uint8_jax(render_lib.render_shifted(g, g_vars, a, a_vars, w_src, dp, truncation))


def render_dp(nets: Networks, variables, g_vars, w_src, dp: np.ndarray, batch: int,
              truncation: float = render_lib.TRUNCATION) -> np.ndarray:  # fmt: skip
    """uint8 frames [N, 256, 256, 3] = G(trunc(w_src + A·Δp)) for Δp [N, D]; `g_vars` may be a tuned generator."""
    mesh = current_mesh()
    g_rep, a_rep = replicate(g_vars, mesh), replicate(variables["A"], mesh)
    w_rep = jax.device_put(np.asarray(w_src, np.float32), replicated(mesh))  # small: copied every call
    fn = lambda d: _render_dp(nets.g, nets.A, g_rep, a_rep, w_rep, d, truncation)
    return map_sharded(fn, [np.asarray(dp, np.float32)], batch, fill="zeros")


@functools.partial(jax.jit, static_argnames=("g", "truncation"))
def render_w(g, g_vars, w, truncation: float = render_lib.TRUNCATION):
    """uint8 G(trunc(w)) of W+ [B, n, 512]."""
    return to_uint8_jax(render_lib.render(g, g_vars, w, truncation))


@functools.partial(jax.jit, static_argnames=("e4e",))
def e4e_codes(e4e, e4e_vars, images_u8):
    """e4e W+ [B, n_latent, 512] of uint8 crops [B, 256, 256, 3] (no latent_avg added, as the authors); a few
    images at a time on a CPU (`common.mesh.cpu_chunks`)."""
    return cpu_chunks(lambda x: e4e.apply(e4e_vars, from_uint8(x)), images_u8)
