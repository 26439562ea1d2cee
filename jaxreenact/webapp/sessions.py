"""A web-app session (one browser page: its folder, uploads, cached sources, edit state and jobs), a job that can
be stopped, the progress of the running job read from the library's own progress bars, and the checks of a
request's numbers and booleans (each bounded and finite)."""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import io
import pathlib
import secrets
import threading
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from jaxreenact.common.errors import UserError


def live_bars() -> list[dict]:
    """The library's live progress bars (the running job's: jobs run one at a time)."""
    with tqdm.get_lock():
        bars = list(getattr(tqdm, "_instances", ()))
    out = []
    for b in bars:
        if not getattr(b, "disable", True):
            out.append({"desc": str(b.desc or "").rstrip(": "), "n": int(b.n), "total": b.total and int(b.total)})
    return out


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclasses.dataclass
class EditState:
    w: np.ndarray
    g_vars: dict
    shown: np.ndarray  # uint8 [256, 256, 3]: the crop, or G(trunc(w)) of a latent
    start: np.ndarray  # [D] the source's own value of each direction, shift units
    label: str


class JobStopped(BaseException):
    """Raised inside a job's thread to stop it (a BaseException: the library's `except Exception` does not catch
    it, its `finally` and `with` blocks still run)."""


ACTIVE = ("queued", "running")


@dataclasses.dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued | running | done | error | cancelled
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    message: str | None = None
    result: dict | None = None
    stage: str = ""  # what the job is doing when no progress bar runs
    stop_reason: str | None = None  # set once: why the job is being stopped
    thread: threading.Thread | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def stop(self, reason: str) -> None:
        """Stop the job: a queued one leaves the queue; a running one gets `JobStopped` raised in its thread at the
        next Python instruction (a device call in flight finishes first). Only the first reason counts."""
        with self.lock:
            if not self.active or self.stop_reason is not None:
                return
            self.stop_reason = reason
            if self.state == "running" and self.thread is not None and self.thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread.ident),
                                                           ctypes.py_object(JobStopped))  # fmt: skip

    def begin(self) -> bool:
        """queued -> running, unless it was stopped while queued."""
        with self.lock:
            if self.stop_reason is not None:
                return False
            self.state, self.started = "running", time.monotonic()
            return True

    def end(self, state: str, message: str | None = None, result: dict | None = None) -> None:
        with self.lock:
            if not self.active:
                return
            if self.stop_reason is not None:
                state, message, result = "cancelled", self.stop_reason, None
            self.state, self.message, self.result, self.finished = state, message, result, time.monotonic()


class Session:
    def __init__(self, root: pathlib.Path):
        self.id = secrets.token_urlsafe(12)
        self.dir = root / self.id
        self.dir.mkdir()
        self.uploads: dict[str, tuple[pathlib.Path, str]] = {}  # slot -> (path, the name the user gave)
        self.sources: collections.OrderedDict = collections.OrderedDict()
        self.edit: EditState | None = None
        self.jobs: dict[str, Job] = {}
        self.runs = 0
        self.uploads_made = 0
        self.used = time.monotonic()
        self.closed = False
        self.headers: dict = {}  # upload path -> its `uploads.Header`

    def active_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.active]

    def tidy(self, message: str) -> str:
        """A library message with this session's temporary paths replaced by the names the user knows."""
        for path, name in self.uploads.values():
            message = message.replace(str(path), name)
        return message.replace(str(self.dir), "(session folder)")

    def url(self, path: pathlib.Path) -> str:
        return f"/files/{self.id}/{path.relative_to(self.dir).as_posix()}"


def number(req: dict, key: str, lo: float | None = None, hi: float | None = None) -> float | None:
    """A finite number in [lo, hi] (None when absent or empty); anything else is a `UserError` naming `key`."""
    v = req.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise UserError(f"{key}: {v!r} is not a number")
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{key}: {str(v)[:40]!r} is not a number") from None
    if not np.isfinite(x):
        raise UserError(f"{key}: {v!r} is not a finite number")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise UserError(f"{key}: {x:g} is out of range; use {lo:g}..{hi:g}")
    return x


def whole_number(req: dict, key: str, default, lo, hi):
    x = number(req, key)
    if x is None:
        if default is None:
            raise UserError(f"{key}: a whole number is needed")
        return default
    if x != int(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
        bounds = f" in {lo}..{hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
        raise UserError(f"{key}: {x:g} is not allowed; use a whole number{bounds}")
    return int(x)


TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def boolean(req: dict, key: str, default: bool) -> bool:
    """A JSON boolean (or 0/1, or one of the words "true"/"false"/"on"/"off"...); anything else is a `UserError`:
    never Python's truthiness, where the string "false" is true."""
    v = req.get(key)
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in TRUE + FALSE:
        return v.strip().lower() in TRUE
    raise UserError(f"{key}: {str(v)[:40]!r} is not a boolean; use true or false")
