"""A web-app session (one browser page: its folder, uploads, cached sources, edit state and jobs), the progress
of the running job read from the library's own progress bars, and the checks of a request's numbers."""

from __future__ import annotations

import collections
import dataclasses
import io
import pathlib
import secrets
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


@dataclasses.dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued | running | done | error
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None
    message: str | None = None
    result: dict | None = None
    stage: str = ""  # what the job is doing when no progress bar runs


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

    def tidy(self, message: str) -> str:
        """A library message with this session's temporary paths replaced by the names the user knows."""
        for path, name in self.uploads.values():
            message = message.replace(str(path), name)
        return message.replace(str(self.dir), "(session folder)")

    def url(self, path: pathlib.Path) -> str:
        return f"/files/{self.id}/{path.relative_to(self.dir).as_posix()}"


def number(req: dict, key: str) -> float | None:
    v = req.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{key}: {v!r} is not a number") from None
    if not np.isfinite(x):
        raise UserError(f"{key}: {v!r} is not a finite number")
    return x


def whole_number(req: dict, key: str, default, lo, hi):
    x = number(req, key)
    if x is None:
        if default is None and lo is None:
            raise UserError(f"{key}: a whole number is needed")
        return default
    if x != int(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
        bounds = f" in {lo}..{hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
        raise UserError(f"{key}: {x:g} is not allowed; use a whole number{bounds}")
    return int(x)
