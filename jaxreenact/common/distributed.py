"""Multi-process runs: when a program calls `jax.distributed.initialize()`, and how it is told where the others are.

A program runs as one process of many when its environment says so:

* explicitly: ``JAXREENACT_COORDINATOR=host:port JAXREENACT_NUM_PROCESSES=N JAXREENACT_PROCESS_ID=i`` (what
  `launch/local_multiprocess.sh` sets for processes on one machine);
* ``JAXREENACT_DISTRIBUTED=1``: JAX finds the cluster itself (Slurm's variables, Cloud TPU's metadata, ...);
* detected: a Slurm step of more than one task (``SLURM_NTASKS`` > 1) or a Cloud TPU pod slice (several
  ``TPU_WORKER_HOSTNAMES``).

On CPU the processes talk through the gloo collectives (the default of the JAX here, set explicitly below). When a
set of devices first meets in a collective, gloo waits only 30 s for the other processes to arrive, and a compile
can take longer than that on one process than on another (a loaded host, a cache hit on one side only): a program's
big jitted steps go through `compiled_together`, which waits for every process between compiling and running.

A process that fails would leave the others waiting in their next collective (gloo: 30 min) and itself at JAX's
shutdown barrier (5 min); inside `fail_together` it tells them through the coordination service, and every
process ends within seconds, naming the process that failed and why.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping

import jax
from jax._src import distributed as jax_distributed

from jaxreenact.common.errors import UserError

COORDINATOR = "JAXREENACT_COORDINATOR"
NUM_PROCESSES = "JAXREENACT_NUM_PROCESSES"
PROCESS_ID = "JAXREENACT_PROCESS_ID"


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for a multi-process run (module docstring)."""
    if environ.get(COORDINATOR) or environ.get("JAXREENACT_DISTRIBUTED") == "1":
        return True
    if int(environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return True
    return "," in environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(environ: Mapping[str, str] = os.environ) -> bool:
    """Join the multi-process run the environment describes (nothing when it describes none); returns whether
    this is one process of several. Call it before anything touches a device."""
    if not requested(environ):
        return False
    if environ.get(COORDINATOR):
        try:
            n, i = int(environ[NUM_PROCESSES]), int(environ[PROCESS_ID])
        except (KeyError, ValueError):
            raise UserError(
                f"{COORDINATOR} is set: also set {NUM_PROCESSES} (the number of processes) and {PROCESS_ID} "
                "(this process, 0-based) to integers"
            ) from None
        if not 0 <= i < n:
            raise UserError(f"{PROCESS_ID}={i} must be in [0, {NUM_PROCESSES}={n})")
        kwargs = {"coordinator_address": environ[COORDINATOR], "num_processes": n, "process_id": i}
    else:
        kwargs = {}
    # Only the CPU backend reads this (GPUs and TPUs have their own collectives); touching no device before
    # `initialize` is the rule, so it is set unconditionally.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    return jax.process_count() > 1


def refuse(program: str, environ: Mapping[str, str] = os.environ) -> None:
    """A one-line `UserError` when `program` (one that runs as one process) is started as one of several."""
    if requested(environ):
        raise UserError(
            f"{program} runs as one process on this host's devices; start it as a single task "
            "(unset JAXREENACT_COORDINATOR / JAXREENACT_DISTRIBUTED, or srun -n 1)"
        )


def _client():
    """The coordination service's client that `jax.distributed.initialize` made (JAX has no public handle; Orbax
    reads the same one)."""
    return jax_distributed.global_state.client


_BARRIER_TIMEOUT_S = 3600  # a compile of a big step on a slow host; the coordination service's own clock
_barriers = itertools.count()


def barrier(name: str, timeout_s: float = _BARRIER_TIMEOUT_S) -> None:
    """Wait until every process has reached this call (nothing with one process). Through the coordination
    service, so no device and no collective is involved; every process must make the same calls in the same order."""
    if jax.process_count() == 1:
        return
    # Barrier ids may not repeat within a run: a counter keeps repeated names distinct.
    _client().wait_at_barrier(f"jaxreenact/{next(_barriers)}/{name}", int(timeout_s * 1000))


_decisions = itertools.count()


def decided_once(name: str, fn: Callable, timeout_s: float = _BARRIER_TIMEOUT_S):
    """`fn()` evaluated on process 0 only and its value (JSON: None, numbers, strings, lists, dicts) handed to every
    process through the coordination service, so processes that would see different things (a shared folder listed
    at different moments) cannot disagree. No device and no collective is involved; every process must make the
    same calls in the same order. One process: `fn()`."""
    if jax.process_count() == 1:
        return fn()
    key = f"jaxreenact/decided/{next(_decisions)}/{name}"
    if jax.process_index() == 0:
        value = fn()
        _client().key_value_set(key, json.dumps(value))
        return value
    return json.loads(_client().blocking_key_value_get(key, int(timeout_s * 1000)))


_agreements = itertools.count()


def agreed_max(name: str, value: int, timeout_s: float = _BARRIER_TIMEOUT_S) -> int:
    """The largest of every process's `value`, the same on every process. Each process posts its value to the
    coordination service and reads the others', so no device collective runs: gloo's 30 s rendezvous would fail a
    process that arrives late (a slow host, a checkpoint still being written). Every process must make the same calls
    in the same order. One process: `value`."""
    if jax.process_count() == 1:
        return int(value)
    prefix = f"jaxreenact/agreed/{next(_agreements)}/{name}"
    client = _client()
    client.key_value_set(f"{prefix}/{jax.process_index()}", str(int(value)))
    return max(int(client.blocking_key_value_get(f"{prefix}/{i}", int(timeout_s * 1000)))
               for i in range(jax.process_count()))  # fmt: skip


def compiled_together(fn: Callable, name: str) -> Callable:
    """`fn` (a `jax.jit` function) whose first call compiles it, waits at a `barrier` for every process to have
    compiled it too, and only then runs it, so its first collectives start on every process within moments (module
    docstring). Later calls are `fn`'s own (the jit cache holds the compiled program). One process: `fn` itself."""
    if jax.process_count() == 1:
        return fn
    first = True

    def call(*args):
        nonlocal first
        if first:
            fn.lower(*args).compile()
            barrier(f"{name} compiled")
            first = False
        return fn(*args)

    return call


_FAILED = "jaxreenact/failed"  # the coordination service's key: "<process> <one line>"
_ACK_S = 10  # how long a failing process waits for the others to have read the key


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def fail_together(program: str, poll_s: float = 1.0):
    """Inside, an exception on any process ends every process (module docstring). The failing process raises as
    usual (its message and exit status are the program's own) and then exits at once, skipping JAX's shutdown
    barrier, once the others have read its line or `_ACK_S` has passed; every other process prints
    "<program>: process P failed (<its line>); stopping process Q too" and exits with status 1. Signals
    (`KeyboardInterrupt`) are not failures: the processes agree on those themselves. One process: nothing."""
    if jax.process_count() == 1:
        yield
        return
    client, me = _client(), jax.process_index()
    stop = threading.Event()

    def watch():
        while not stop.wait(poll_s):
            try:
                who, line = client.key_value_try_get(_FAILED).split(" ", 1)
            except Exception:  # not set (NOT_FOUND), or the service is gone: JAX itself then ends the process
                continue
            with contextlib.suppress(Exception):
                client.key_value_set(f"{_FAILED}/read/{me}", "1")
            print(f"{program}: process {who} failed ({line}); stopping process {me} too", file=sys.stderr)
            _exit_now(1)

    watcher = threading.Thread(target=watch, name="jaxreenact-fail-together", daemon=True)
    watcher.start()
    try:
        yield
    except Exception as e:
        stop.set()
        watcher.join()
        line = " ".join(f"{type(e).__name__}: {e}".split())[:500]
        with contextlib.suppress(Exception):
            client.key_value_set(_FAILED, f"{me} {line}")
            for other in range(jax.process_count()):
                if other != me:
                    client.blocking_key_value_get(f"{_FAILED}/read/{other}", _ACK_S * 1000)
        # Registered after JAX's own shutdown hook, so it runs first: the program prints its error, then exits.
        atexit.register(_exit_now, 2 if isinstance(e, UserError) else 1)
        raise
    finally:
        stop.set()
        watcher.join()


def share(items: list, process_index: int | None = None, process_count: int | None = None) -> list:
    """This process's share of `items` (every `process_count`-th, from `process_index`): disjoint, covering."""
    i = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    return list(items[i::n])
