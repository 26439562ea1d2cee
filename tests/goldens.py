"""Access to the golden test vectors copied from ../shared/golden (see tests/golden/README.md).

`regen.py` (the harness's own script, copied verbatim) rebuilds the random-weight checkpoints in the upstream
file layouts from `spec.json`; nothing is downloaded and no upstream code is needed.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _regen():
    spec = importlib.util.spec_from_file_location("_golden_regen", GOLDEN / "regen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def spec(name: str) -> dict:
    return json.loads((GOLDEN / name / "spec.json").read_text())


def inputs(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name / "inputs.npz") as f:
        return {k: f[k] for k in f.files}


def expected(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name / "expected.npz") as f:
        return {k: f[k] for k in f.files}


def image_input(u8: np.ndarray, deca: bool = False) -> np.ndarray:
    """uint8 NCHW golden image -> float32 NHWC in [-1, 1] (or [0, 1] for DECA), as the goldens define it."""
    x = u8.astype(np.float32) / (255.0 if deca else 127.5)
    if not deca:
        x = x - 1.0
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def write_checkpoint(name: str, out: pathlib.Path, file: str | None = None) -> pathlib.Path:
    """Write the golden checkpoint file(s) of `name` to `out` (a file if one, else a directory)."""
    regen = _regen()
    s = spec(name)
    files = [e for e in s["files"] if file is None or e["file"] == file]
    need_t = any(e["format"] == "torch" for e in files)
    tensors = regen.tensors(s["weights"]) if need_t else None
    out = pathlib.Path(out)
    if len(files) == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        regen.write(s, files[0], str(out), tensors)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for e in files:
        regen.write(s, e, str(out / e["file"]), tensors)
    return out


def state_dict(name: str, group: str, prefix: str = "") -> dict:
    """The golden weights of one group as {prefix + key: torch tensor}, without writing a file."""
    s = spec(name)
    return {prefix + k: t for (g, k), t in _regen().tensors(s["weights"]).items() if g == group}
