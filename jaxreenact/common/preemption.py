"""Stopping cleanly on SIGTERM and SIGINT: preemption on Cloud TPU VMs and Slurm, and Ctrl-C.

Two behaviours, one exception:

* `StopRequest` (training): the first SIGTERM/SIGINT only records the signal; the loop agrees on it at its sync
  points (every `log_every` steps, checkpoints, validation; every step with one process, where it costs nothing),
  and every process gets the same answer (the largest signal number any process received, posted to JAX's
  coordination service, not a device collective: `common.distributed.agreed_max`), so all of them checkpoint the
  same step and stop together. A second signal on the same process raises at once. This is the agreement JAX's `multihost_utils.reached_preemption_sync_point` makes for TPU pods
  (SIGTERM through the coordination service), done here for SIGINT too, on any platform and with one process
  alike; that one listens for SIGTERM itself (beside this module's handler), wants a call every step, and knows no
  SIGINT.
* `raise_on_sigterm` (every program, through `common.errors.cli_main`): SIGTERM raises `Interrupted` in the main
  thread as Ctrl-C raises `KeyboardInterrupt`, so `finally` blocks run and the atomic writes of the resumable
  programs (invert, evaluate, data.build) leave nothing half-written; a rerun continues from what was finished.

`Interrupted` is a `KeyboardInterrupt` carrying the exit status 128 + signal number (130 for SIGINT, 143 for
SIGTERM) and the one line the program prints.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; `exit_code` is 128 + the signal number, `str(e)` the one line to print."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(message or f"interrupted by {signal_name(self.signum)}")


def exit_code(e: BaseException) -> int:
    """The exit status of an interrupt: 128 + signal for `Interrupted`, 130 for a plain KeyboardInterrupt."""
    return getattr(e, "exit_code", 130)


def message(e: BaseException) -> str:
    return str(e) if isinstance(e, Interrupted) else "interrupted by SIGINT"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def raise_on_sigterm():
    """Inside: SIGTERM raises `Interrupted(SIGTERM)` in the main thread (outside the main thread: no change)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """SIGTERM/SIGINT as a request to stop after the current step, agreed between processes (module docstring).

    Use as a context manager around a loop; `signum` is this process's request (0: none). With several processes the
    loop agrees on it at its sync points (`common.distributed.agreed_max`, through the coordination service).
    `request(signum)` does what a signal does (for tests and callers).
    """

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}

    def request(self, signum: int) -> None:
        if self.signum:  # the second signal: stop now
            raise Interrupted(signum)
        self.signum = int(signum)

    def _handler(self, signum, frame):
        self.request(signum)

    def __enter__(self):
        if _in_main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
        return False
