"""The generic input pipeline: host batches, ordered parallel maps, prefetch, and global arrays.

Nothing here knows about VoxCeleb: the dataset readers use it, and so do inversion and evaluation.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec


def ordered_map(fn, items, num_threads: int, window: int = 256):
    """`map(fn, items)` on a thread pool, in order, with at most `window` results waiting (bounded memory)."""
    if num_threads <= 1:
        yield from map(fn, items)
        return
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def process_rows(sharding: jax.sharding.Sharding, size: int, devices=None) -> np.ndarray:
    """The rows of a global batch of `size` rows (leading axis split by `sharding`) that this process's devices
    hold: int [k], ascending, each once. Read from the sharding itself (`devices_indices_map`), so any device order
    works, rows of one process need not be contiguous, and nothing assumes devices grouped by process. `devices`:
    whose rows (default: this process's addressable devices; tests pass a subset to play one process of several)."""
    devices = sharding.addressable_devices if devices is None else set(devices)
    held = np.zeros(size, bool)
    for device, index in sharding.devices_indices_map((size,)).items():
        if device in devices:
            held[index[0]] = True
    return np.flatnonzero(held)


def to_global(batch: Any, sharding: jax.sharding.Sharding, rows: np.ndarray, size: int):
    """Global `jax.Array`s of `size` rows from this process's rows of them.

    `batch`: a pytree (e.g. dict) of numpy arrays whose leading axis holds global rows `rows` (`process_rows` of the
    same sharding and size, in that order); each device gets exactly the rows the sharding gives it, whatever the
    device order. Non-numeric leaves (strings) stay as they are.
    """
    rows = np.asarray(rows)

    def convert(x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            return x
        if len(x) != len(rows):
            raise ValueError(f"{len(x)} local rows for {len(rows)} row indices")

        def shard(index):
            want = np.arange(size)[index[0]]
            at = np.searchsorted(rows, want)
            if np.any(at >= len(rows)) or np.any(rows[np.minimum(at, len(rows) - 1)] != want):
                raise ValueError(f"rows {want.tolist()} of a device of this process were not loaded")
            return x[at]

        return jax.make_array_from_callback((size, *x.shape[1:]), sharding, shard)

    return jax.tree.map(convert, batch)


def global_from_full(batch: Any, sharding: jax.sharding.Sharding):
    """`to_global` of a batch every process holds whole (e.g. computed, not read): each process uses its rows."""
    leaves = [x for x in jax.tree.leaves(batch) if np.asarray(x).dtype.kind in "biuf"]
    size = len(leaves[0])
    rows = process_rows(sharding, size)
    return to_global(jax.tree.map(lambda x: np.asarray(x)[rows], batch), sharding, rows, size)


def data_sharding(mesh, batch_axis: str | None = None) -> NamedSharding:
    """The leading axis over `batch_axis` ("data" if the mesh has it, else its first axis)."""
    axis = batch_axis or ("data" if "data" in mesh.axis_names else mesh.axis_names[0])
    return NamedSharding(mesh, PartitionSpec(axis))


def prefetch(iterator: Iterator[Any], size: int = 2) -> Iterator[Any]:
    """Run `iterator` in a background thread, `size` items ahead (image decoding overlaps the training step).

    The items and their order are unchanged; an exception in the iterator is re-raised here.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    done = object()
    stop = threading.Event()

    def worker():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
