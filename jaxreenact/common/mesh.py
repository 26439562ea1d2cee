"""Devices and batches: the one mesh builder, the shardings we use, and the one pad-and-trim batching helper.

Every jitted function in the package sees fixed batch shapes (one compilation per program run): a short last
batch is padded by repeating its last row and the padding is dropped from the outputs.

Training batches of any size run on any device count (`Padding`): the global batch of B rows is laid out as
``round_up(B, devices)`` rows, the extra rows copies of real ones with weight 0 in every loss (`masked_mean`), so
the loss and its gradient are those of the B real rows, whatever the device count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxreenact.common.errors import UserError

DATA_AXIS = "data"


def make_mesh(
    data: int | None = -1, devices: Sequence | None = None, order: str | Sequence[int] = ""
) -> jax.sharding.Mesh:
    """A 1-D mesh with axis `data` over the first `data` devices (-1 or None: all of `devices`, default
    `jax.devices()`); any count works, the batches are padded to it (`Padding`).

    `order` ("" = JAX's own, `jax.make_mesh`, which on a TPU pod follows the chips' ring and may interleave the
    processes' devices): the devices in this order instead, as positions in `devices`, e.g. "0,2,1,3"
    (`config.mesh.device_order`; the tests use it to interleave processes as a pod may). Whatever the order, every
    process reads the rows its devices hold (`data.pipeline.process_rows`)."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices) if data in (-1, None) else int(data)
    if n < 1 or n > len(devices):
        raise UserError(f"config.mesh.data={data}: {len(devices)} devices cannot form that axis")
    if n < len(devices) and jax.process_count() > 1:
        raise UserError(f"config.mesh.data={data}: a run over {jax.process_count()} processes uses all "
                        f"{len(devices)} devices (leave config.mesh.data=-1)")  # fmt: skip
    if isinstance(order, str):
        try:
            order = [int(i) for i in order.replace(" ", "").split(",") if i]
        except ValueError:
            raise UserError(f"config.mesh.device_order={order!r}: use comma-separated device positions") from None
    if order:
        if sorted(order) != list(range(len(devices))):
            raise UserError(f"config.mesh.device_order={','.join(map(str, order))}: must list each of the "
                            f"{len(devices)} device positions 0..{len(devices) - 1} once")  # fmt: skip
        chosen = np.asarray([devices[i] for i in order][:n])
        return jax.sharding.Mesh(chosen, (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=np.asarray(devices[:n]))


def local_mesh() -> jax.sharding.Mesh:
    """A data mesh over this process's devices (programs that do not train: invert, evaluate)."""
    return make_mesh(-1, jax.local_devices())


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_replicated(tree, mesh):
    """`tree` (numpy or single-process jax arrays, typed PRNG keys included) as arrays replicated over `mesh`;
    works when the mesh spans several processes (each passes the same values), which `jax.device_put` of a jax
    array does not."""
    sharding = replicated(mesh)

    def place(a: np.ndarray) -> jax.Array:
        # Each process fills its own devices: no collective. (`jax.device_put` onto a sharding that spans several
        # processes all-gathers the value to check it, a gloo rendezvous that fails a process arriving 30 s late.)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(place(np.asarray(jax.random.key_data(x))), impl=impl)
        if isinstance(x, jax.Array | np.ndarray | np.generic):
            return place(np.asarray(x))
        return x

    return jax.tree.map(put, tree)


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


@dataclasses.dataclass(frozen=True)
class Padding:
    """A global batch of `rows` real rows laid out as `padded` rows (a multiple of the device count).

    Rows [0, rows) are the real ones; row i >= rows repeats real row ``i % rows`` (a finite copy, so no NaN can
    reach the gradient) and weighs 0 in every loss. These are rows of the global batch: which process and device
    holds a row is the sharding's business (`data.pipeline.process_rows`), so the weights hold for any device order. With ``padded == rows`` nothing is padded and every helper
    is the identity, so the unpadded program is unchanged.
    """

    rows: int
    padded: int

    @property
    def needed(self) -> bool:
        return self.padded != self.rows

    def source_rows(self) -> np.ndarray:
        """int [padded]: the real row each padded row holds."""
        return np.arange(self.padded) % self.rows

    def weights(self) -> np.ndarray | None:
        """float32 [padded]: 1 for real rows, 0 for padding (None when nothing is padded)."""
        if not self.needed:
            return None
        return (np.arange(self.padded) < self.rows).astype(np.float32)

    def pad(self, x):
        """x [rows, ...] -> [padded, ...] (a pytree of arrays alike)."""
        if not self.needed:
            return x
        src = self.source_rows()
        return jax.tree.map(lambda a: jnp.take(a, src, axis=0), x)

    def place(self, x, mesh):
        """x [rows, ...] laid out as the padded batch and split over the mesh's `data` axis (inside `jit`)."""
        return shard_rows(self.pad(x), mesh)

    def real(self, x):
        """x [padded, ...] -> its real rows [rows, ...] (a pytree alike)."""
        if not self.needed:
            return x
        return jax.tree.map(lambda a: a[: self.rows], x)


def batch_padding(rows: int, devices: int) -> Padding:
    """The `Padding` of a global batch of `rows` over `devices` devices (padded up to a multiple of them)."""
    if rows < 1:
        raise UserError(f"batch size {rows} must be positive")
    return Padding(int(rows), round_up(int(rows), int(devices)))


def masked_mean(values, weight=None):
    """The batch mean of `values` [B, ...]: each sample's mean over its other axes, averaged with `weight` [B]
    (0 = a padded row that counts for nothing). `weight=None`: the plain mean of every element (unpadded)."""
    if weight is None:
        return jnp.mean(values)
    per_sample = jnp.mean(values.reshape(values.shape[0], -1), axis=1)
    weight = jnp.asarray(weight, per_sample.dtype)
    return jnp.sum(per_sample * weight) / jnp.sum(weight)


def shard_rows(x, mesh):
    """Constrain the leading (batch) axis of every leaf of `x` to the mesh's `data` axis inside a jitted function
    (the per-sample work then runs data-parallel); `mesh=None` leaves `x` as it is."""
    if mesh is None:
        return x
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), x)


CPU_CHUNK = 2  # rows per chunk of `cpu_chunks`


def chunking_default() -> bool:
    """Whether `cpu_chunks` splits a batch when not told: on a program with one CPU device only."""
    return jax.default_backend() == "cpu" and jax.local_device_count() == 1


def cpu_chunks(fn: Callable, x, rows: int = CPU_CHUNK, chunked: bool | None = None):
    """`fn(x)` for a batch `x` [B, ...] (fn maps rows to rows), run `rows` samples at a time (`lax.map`) when
    `chunked` (None: `chunking_default()`, i.e. on a one-device CPU program); else, or when `rows` does not divide
    B, plain `fn(x)`. Inside `jit`.

    XLA:CPU's convolutions lose their cache blocking on large batches of large feature maps: the e4e encoder at
    batch 8 runs ~1.4x faster 2 images at a time (bench/RESULTS.md). The results are the same sums; accelerators
    (and a sharded batch) want the whole batch in one call.
    """
    b = x.shape[0]
    if chunked is None:
        chunked = chunking_default()
    if not chunked or b <= rows or b % rows:
        return fn(x)
    out = jax.lax.map(fn, x.reshape(b // rows, rows, *x.shape[1:]))
    return jax.tree.map(lambda o: o.reshape(b, *o.shape[2:]), out)
