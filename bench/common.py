"""Helpers every bench/*.py script shares: timing, the machine description, writing a RESULTS.md section.

Scripts run as `python bench/<name>.py` from anywhere; they import this module as `common` (bench/ is the
script's own folder, so it is on sys.path) and call `setup_paths()` to reach the repository and tests/.
"""

from __future__ import annotations

import os
import pathlib
import platform
import re
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def setup_paths() -> None:
    """Put the repository (jaxreenact, converters) and tests/ (the PyTorch references) on sys.path."""
    for p in (ROOT / "tests", ROOT):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def median_times(fns, iters: int, warmup: int = 1) -> list[float]:
    """Median seconds per call of each fn, calls interleaved (fn0, fn1, ... per round) so that load from other
    processes on shared cores hits every contender alike; `warmup` untimed rounds first. Each fn must block until
    its result is ready (`jax.block_until_ready`)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    ts = [[] for _ in fns]
    for _ in range(iters):
        for fn, t_list in zip(fns, ts):
            t = time.perf_counter()
            fn()
            t_list.append(time.perf_counter() - t)
    return [statistics.median(t) for t in ts]


def machine() -> str:
    """CPU model and core count, JAX backend and device, PyTorch version and threads (when imported), Python."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = jax.devices()[0]
    text = f"{cpu}, {os.cpu_count()} cores visible; JAX {jax.__version__} on {dev.platform} ({dev.device_kind})"
    torch = sys.modules.get("torch")
    if torch is not None:
        text += f"; PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    return text + f"; Python {platform.python_version()}"


def section_head(title: str, command: str) -> list[str]:
    """The first lines of a RESULTS.md section: heading, then the command, the UTC time and the machine."""
    import datetime

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"## {title}", "", f"`{command}` — {now}. Machine: {machine()}."]


def write_section(text: str, path: pathlib.Path = RESULTS) -> None:
    """Replace the `## ` section of RESULTS.md whose heading line equals `text`'s first line (or append it),
    atomically (a temporary file and a rename)."""
    heading = text.splitlines()[0].strip()
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", old)
    body = text.rstrip() + "\n\n"
    for i, part in enumerate(parts):
        if part.splitlines()[0].strip() == heading if part else False:
            parts[i] = body
            break
    else:
        parts[-1] = parts[-1].rstrip() + "\n\n"
        parts.append(body)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("".join(parts).rstrip() + "\n")
    os.replace(tmp, path)


def publish(text: str, write: bool) -> None:
    """Print a bench's section, and with `write` replace it in RESULTS.md."""
    print(text)
    if write:
        write_section(text)
