"""Devices and batches: the one mesh builder, the shardings we use, and the one pad-and-trim batching helper.

Every jitted function in the package sees fixed batch shapes (one compilation per program run): a short last
batch is padded by repeating its last row and the padding is dropped from the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxreenact.common.errors import UserError

DATA_AXIS = "data"


def make_mesh(data: int | None = -1, devices: Sequence | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis `data` over `data` devices (-1 or None: all of `devices`, default `jax.devices()`)."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices) if data in (-1, None) else int(data)
    if n < 1 or n > len(devices) or len(devices) % n:
        raise UserError(f"config.mesh.data={data}: {len(devices)} devices cannot form that axis")
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=np.asarray(devices[:n]))


def local_mesh() -> jax.sharding.Mesh:
    """A data mesh over this process's devices (programs that do not train: invert, evaluate)."""
    return make_mesh(-1, jax.local_devices())


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh) -> NamedSharding:
    """Leading axis split over the `data` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def round_up(n: int, multiple: int) -> int:
    return -(-max(n, 1) // multiple) * multiple


def pad_rows(x: np.ndarray, size: int, fill: str = "repeat") -> np.ndarray:
    """`x` [k, ...] with k <= size, padded to [size, ...] by repeating its last row (`fill="repeat"`) or zeros."""
    k = len(x)
    if k == size:
        return x
    if k > size:
        raise ValueError(f"{k} rows do not fit a batch of {size}")
    pad = np.repeat(x[-1:], size - k, 0) if fill == "repeat" else np.zeros((size - k, *x.shape[1:]), x.dtype)
    return np.concatenate([x, pad], 0)


def map_batches(fn: Callable, arrays: Sequence[np.ndarray], batch: int, fill: str = "repeat"):
    """Apply `fn(*batch_arrays)` to fixed-size batches of the row-aligned `arrays`; returns the outputs (an array or
    a tuple of arrays) concatenated over the rows, the padding trimmed."""
    n = len(arrays[0])
    outs = []
    for lo in range(0, n, batch):
        parts = [pad_rows(np.asarray(a[lo : lo + batch]), batch, fill) for a in arrays]
        k = min(batch, n - lo)
        r = fn(*parts)
        outs.append(tuple(np.asarray(o)[:k] for o in r) if isinstance(r, tuple) else np.asarray(r)[:k])
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(cols, 0) for cols in zip(*outs))
    return np.concatenate(outs, 0)
