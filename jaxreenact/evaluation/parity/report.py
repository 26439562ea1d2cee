"""Rows of a parity report: one per expected array, with the measure its spec entry asks for.

Measures (`compare`), chosen from the array's spec entry:
* `max_abs`: max |a − b| ≤ `tol_max_abs` (the default);
* `rel`: max |a − b| / max(|b|, floor) ≤ `tol_rel`, floor = `tol_max_abs / tol_rel` when the entry also has
  `tol_max_abs` (so an element passes when it is within `tol_max_abs` or within `tol_rel` of its own size, as
  `numpy.allclose` would with max instead of sum; the losses and crop similarities);
* `rel_l2`: ‖a − b‖₂ / ‖b‖₂ ≤ `tol_rel_l2` (gradients);
* `cosine`: min over rows of cos(a, b) ≥ `tol_cosine` / `min_cosine` (embeddings, where a spec asks for it);
* `exact`: integer arrays and `tol_max_abs = 0`: the number of differing entries, 0 to pass.
A pipeline kind may build a row with its own measure where the spec entry's `compare` says how (`Row` directly).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time

import numpy as np


@dataclasses.dataclass
class Row:
    name: str
    measure: str
    value: float
    tol: float
    ok: bool
    note: str = ""

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "FAIL"


# ----------------------------------------------------------------------------------------------- progress
_SINKS: list[tuple] = []  # the active progress sink: (write(line), folder label, start time)


@contextlib.contextmanager
def progress_to(write, label: str):
    """Inside the block, `progress(what)` calls `write("[  12.3 s] LABEL: what")` (nothing when `write` is None)."""
    _SINKS.append((write, label, time.monotonic()))
    try:
        yield
    finally:
        _SINKS.pop()


def progress(what: str) -> None:
    """One progress line for the folder being checked (a row done, a network converted, a step replayed)."""
    if _SINKS and _SINKS[-1][0] is not None:
        write, label, t0 = _SINKS[-1]
        write(f"[{time.monotonic() - t0:7.1f} s] {label}: {what}")


def failed(name: str, note: str, measure: str = "-") -> Row:
    """A row that could not be measured (a missing rule, a shape mismatch, a non-finite value)."""
    return Row(name, measure, float("nan"), float("nan"), False, note)


def _f64(a) -> np.ndarray:
    return np.asarray(a, np.float64)


def compare(name: str, got, want, entry: dict | None) -> Row:
    """The row of one expected array `want` against the port's `got`, measured as the spec `entry` says."""
    entry = entry or {}
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        if got.size == want.size:
            got = got.reshape(want.shape)
        else:
            return failed(name, f"shape {list(got.shape)} != expected {list(want.shape)}")
    if np.issubdtype(want.dtype, np.integer) or np.issubdtype(want.dtype, np.bool_) or entry.get("tol_max_abs") == 0:
        n = int(np.sum(_f64(got) != _f64(want)))
        return Row(name, "exact", float(n), 0.0, n == 0, f"{n} of {want.size} differ" if n else "")
    a, b = _f64(got), _f64(want)
    if not np.all(np.isfinite(a)):
        return failed(name, f"{int(np.sum(~np.isfinite(a)))} non-finite value(s) in the port's output")
    err = np.abs(a - b)
    cos_tol = entry.get("tol_cosine", entry.get("min_cosine"))
    if cos_tol is not None:
        a2, b2 = a.reshape(-1, a.shape[-1]) if a.ndim else a[None], b.reshape(-1, b.shape[-1]) if b.ndim else b[None]
        cos = np.sum(a2 * b2, -1) / (np.linalg.norm(a2, axis=-1) * np.linalg.norm(b2, axis=-1))
        v = float(cos.min())
        return Row(name, "cosine", v, float(cos_tol), v >= cos_tol)
    if "tol_rel_l2" in entry:
        nb = float(np.linalg.norm(b))
        v = float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a - b))
        tol = float(entry["tol_rel_l2"])
        return Row(name, "rel_l2", v, tol, v <= tol, f"max abs {float(err.max(initial=0)):.3g}")
    if "tol_rel" in entry:
        tol = float(entry["tol_rel"])
        floor = float(entry["tol_max_abs"]) / tol if "tol_max_abs" in entry else np.finfo(np.float64).tiny
        v = float(np.max(err / np.maximum(np.abs(b), floor), initial=0.0))
        return Row(name, "rel", v, tol, v <= tol, f"max abs {float(err.max(initial=0)):.3g}")
    if "tol_max_abs" in entry:
        v, tol = float(err.max(initial=0.0)), float(entry["tol_max_abs"])
        return Row(name, "max_abs", v, tol, v <= tol)
    return failed(name, "the spec gives no tolerance for this array")


def format_rows(title: str, rows: list[Row]) -> str:
    """A table: name, measure, value, tolerance, PASS/FAIL (and a note)."""
    w = max([len(r.name) for r in rows] + [4])
    lines = [title, f"  {'name':<{w}}  {'measure':<8} {'value':>10}  {'tol':>8}  status"]
    for r in rows:
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"  {r.name:<{w}}  {r.measure:<8} {r.value:>10.3g}  {r.tol:>8.3g}  {r.status}{note}")
    return "\n".join(lines)


class Rows:
    """The rows of one folder: `add(name, value)` compares with the expected array of that name (once). `only`: the
    names to report (default: every expected array); the others still feed the stages."""

    def __init__(self, spec, expected, only=None):
        self.entries, self.expected, self.rows = spec.get("expected", {}), expected, {}
        self.only = None if only is None else set(only)

    def want(self, name: str) -> bool:
        return name in self.expected and name not in self.rows and (self.only is None or name in self.only)

    def add(self, name: str, value=None, row: Row | None = None) -> None:
        if self.want(name):
            self.rows[name] = row or compare(name, np.asarray(value), self.expected[name], self.entries.get(name))
            n = sum(1 for k in self.expected if self.only is None or k in self.only)
            progress(f"{name} ({len(self.rows)}/{n} arrays) {self.rows[name].status}")

    def finish(self, why: str = "no rule of this kind computes this array") -> list[Row]:
        """Rows in the spec's order; an expected array no rule reached is a failure, so none is skipped silently."""
        order = list(self.entries) + [k for k in self.expected if k not in self.entries]
        order = [k for k in order if k in self.expected and (self.only is None or k in self.only)]
        return [self.rows.get(k) or failed(k, why) for k in order]


# ----------------------------------------------------------------------------------------------- golden layouts
def image_input(u8, deca: bool = False) -> np.ndarray:
    """uint8 NCHW golden image -> float32 NHWC: u8/127.5 − 1 ([-1, 1], bit-identical to the authors' paths), or
    u8/255 for DECA ([0, 1])."""
    x = np.asarray(u8).astype(np.float32) / (np.float32(255.0) if deca else np.float32(127.5))
    if not deca:
        x = x - np.float32(1.0)
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def box_kind(spec) -> str:
    """DECA's detector box type in the spec's `box_convention` ("kpt68": FAN's landmark box, or "bbox")."""
    m = re.search(r'type "(kpt68|bbox)"', (spec.get("box_convention") or {}).get("detector", ""))
    return m.group(1) if m else "kpt68"
