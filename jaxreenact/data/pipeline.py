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

from jaxreenact.common.errors import UserError


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


def host_rows(batch_size: int, process_index: int, process_count: int) -> slice:
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    if batch_size < 1 or batch_size % process_count:
        raise UserError(
            f"global batch size {batch_size} must be a positive multiple of the number of hosts ({process_count})"
        )
    per_host = batch_size // process_count
    return slice(process_index * per_host, (process_index + 1) * per_host)


def to_global(batch: Any, mesh=None, sharding=None, batch_axis: str | None = None):
    """Assemble each host's local batch into global `jax.Array`s with `jax.make_array_from_process_local_data`.

    `batch`: a pytree (e.g. dict) of host-local numpy arrays, leading axis = this host's rows (`iterate_*` output).
    `sharding`: a `jax.sharding.Sharding` for every leaf (or a pytree of them matching `batch`); by default
    ``NamedSharding(mesh, P(batch_axis))`` with `batch_axis` "data" if the mesh has it, else its first axis.
    The global leading size is the sum of the hosts' sizes; non-numeric leaves (strings) stay as they are.
    """
    if sharding is None:
        if mesh is None:
            raise ValueError("to_global needs a mesh or a sharding")
        axis = batch_axis or ("data" if "data" in mesh.axis_names else mesh.axis_names[0])
        sharding = NamedSharding(mesh, PartitionSpec(axis))

    def convert(x, s):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            return x
        return jax.make_array_from_process_local_data(s, x)

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda x: convert(x, sharding), batch)
    return jax.tree.map(convert, batch, sharding)


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
