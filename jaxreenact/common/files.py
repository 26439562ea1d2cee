"""Writes that never leave a half-written file behind (a temporary file in the same folder, then a rename), and
the checked read of a user's `.npy` file."""

from __future__ import annotations

import io
import os
import pathlib
import tempfile

import numpy as np

from jaxreenact.common.errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """`np.save` through `atomic_write_bytes` (never pickled)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def read_npy(path: str | os.PathLike, flag: str, what: str = "array") -> np.ndarray:
    """A user's `.npy` file as a plain numeric array, never unpickled: a missing path, a folder, an empty or
    truncated file, a pickled (object) array and a non-numeric dtype are each a one-line `UserError` naming
    `flag` and the file."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path}: no such {what} file")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a .npy {what} file")
    if path.stat().st_size == 0:
        raise UserError(f"{flag} {path}: the {what} file is empty")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"PK"):
        raise UserError(f"{flag} {path}: holds an .npz archive, expected one .npy {what}")
    if magic != b"\x93NUMPY":
        raise UserError(f"{flag} {path}: not a .npy file (no NumPy header); write the {what} with np.save")
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise UserError(f"{flag} {path}: a pickled .npy (object array); it is never unpickled: save the {what} "
                            "as a plain float array (np.save(path, np.asarray(x, np.float32)))") from None  # fmt: skip
        raise UserError(f"{flag} {path}: a truncated or damaged .npy {what} ({str(e).splitlines()[0][:100]})") from None
    except (OSError, EOFError) as e:
        raise UserError(f"{flag} {path}: not a .npy file, or truncated ({str(e).splitlines()[0][:120]})") from None
    if a.dtype.kind not in "fiu":
        raise UserError(f"{flag} {path}: has dtype {a.dtype}, expected a float {what}")
    return a
