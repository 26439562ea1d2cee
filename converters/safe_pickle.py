"""A restricted unpickler for the py2-era FLAME pickle and DECA's `landmark_embedding.npy`, without chumpy, scipy
or torch.

Only numpy array/dtype/scalar reconstruction, a few builtins, inert stand-ins for `chumpy.ch.Ch` and `scipy.sparse`
csc/csr matrices, and torch tensor storages (rebuilt as numpy arrays from their bytes) are admitted. Any other
class or function named in the file is refused with a `UserError` before anything is called.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from jaxreenact.common.errors import UserError

_NP_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's own `_reconstruct` (numpy.core or numpy._core)
_NP_SCALAR = np.float64(0).__reduce__()[0]  # numpy's own `scalar`


class _StandIn:
    """Base of the inert objects that replace foreign classes; they only store the pickled state."""

    def __init__(self, *args):
        self._args = args
        self.state: Any = None

    def __setstate__(self, state):
        self.state = state


class ChStandIn(_StandIn):
    """`chumpy.ch.Ch`: its state dict's `'x'` is the array value."""

    def value(self) -> np.ndarray:
        if not isinstance(self.state, dict) or "x" not in self.state:
            raise UserError("a chumpy object in the file has no 'x' array in its state")
        return plain(self.state["x"])


class SparseStandIn(_StandIn):
    """`scipy.sparse` csc/csr matrix, rebuilt as a dense array from (data, indices, indptr, shape)."""

    fmt = "csc"

    def value(self) -> np.ndarray:
        s = self.state if isinstance(self.state, dict) else {}
        try:
            shape = tuple(int(v) for v in s.get("_shape", s.get("shape")))
            data, indices, indptr = (np.asarray(plain(s[k])) for k in ("data", "indices", "indptr"))
        except (KeyError, TypeError) as e:
            raise UserError(f"a scipy sparse matrix in the file has an unexpected state ({e})") from None
        fmt = s.get("format", self.fmt)
        fmt = fmt.decode("latin1") if isinstance(fmt, bytes) else fmt
        out = np.zeros(shape, data.dtype)
        major = 1 if fmt == "csc" else 0  # csc: indptr runs over columns
        for j in range(shape[major]):
            sl = slice(int(indptr[j]), int(indptr[j + 1]))
            if major == 1:
                np.add.at(out, (indices[sl], j), data[sl])
            else:
                np.add.at(out, (j, indices[sl]), data[sl])
        return out


class CscStandIn(SparseStandIn):
    fmt = "csc"


class CsrStandIn(SparseStandIn):
    fmt = "csr"


class _TorchStorage:
    def __init__(self, array: np.ndarray):
        self.array = array


_TORCH_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_TORCH_DTYPES[name])


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """`torch._utils._rebuild_tensor_v2` without torch: a numpy view of the storage (copied)."""
    if not isinstance(storage, _TorchStorage):
        raise UserError("a torch tensor in the file does not reference a storage")
    arr = storage.array
    item = arr.itemsize
    try:
        off, size, stride = int(storage_offset), tuple(int(v) for v in size), tuple(int(v) for v in stride)
    except (TypeError, ValueError):
        raise UserError("a torch tensor in the file has a malformed size/stride") from None
    # bounds check before as_strided (which would otherwise read outside the buffer)
    last = off + sum((n - 1) * st for n, st in zip(size, stride) if n > 0)
    if (
        len(size) != len(stride)
        or off < 0
        or any(n < 0 for n in size)
        or any(st < 0 for st in stride)
        or (all(n > 0 for n in size) and last >= arr.size)
    ):
        raise UserError("a torch tensor in the file reaches outside its storage (corrupt or malicious file)")
    if len(size) == 0:
        return arr[off].copy()
    if any(n == 0 for n in size):
        return np.zeros(size, arr.dtype)
    view = np.lib.stride_tricks.as_strided(
        arr[off:], shape=size, strides=tuple(st * item for st in stride), writeable=False
    )
    return np.array(view)


def _load_storage_bytes(b: bytes):
    """`torch.storage._load_from_bytes` without torch: parse the legacy `torch.save` stream of one storage."""
    if not isinstance(b, bytes | bytearray):
        raise UserError("a torch storage in the file is not stored as bytes")
    f = io.BytesIO(bytes(b))
    try:
        magic = _Restricted(f, torch_storage=False).load()
        if magic != 0x1950A86A20F9469CFC6C:
            raise UserError("a torch storage in the file uses an unknown serialization (not the legacy format)")
        _Restricted(f, torch_storage=False).load()  # protocol version
        info = _Restricted(f, torch_storage=False).load()
        if isinstance(info, dict) and not info.get("little_endian", True):
            raise UserError("a torch storage in the file is big-endian")
        records: dict[str, tuple[_StorageType, int, Any]] = {}

        def persistent_load(pid):
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
                raise UserError(f"a torch storage in the file has an unexpected persistent id {pid!r:.80}")
            _, stype, key, _loc, numel = pid[:5]
            view = pid[5] if len(pid) > 5 else None
            records[key] = (stype, int(numel), view)
            return ("__storage__", key)

        result = _Restricted(f, torch_storage=False, persistent=persistent_load).load()
        keys = _Restricted(f, torch_storage=False).load()
        arrays = {}
        for key in keys:
            stype, numel, _ = records[key]
            (n,) = struct.unpack("<q", f.read(8))
            if n != numel:
                raise UserError("a torch storage in the file is truncated or inconsistent")
            raw = f.read(n * stype.dtype.itemsize)
            if len(raw) != n * stype.dtype.itemsize:
                raise UserError("a torch storage in the file is truncated")
            arrays[key] = np.frombuffer(raw, dtype=stype.dtype.newbyteorder("<")).astype(stype.dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as e:
        raise UserError(f"could not read a torch storage embedded in the file ({type(e).__name__}: {e})") from None
    if not (isinstance(result, tuple) and result[:1] == ("__storage__",)):
        raise UserError("a torch storage blob in the file does not hold a storage")
    key = result[1]
    view = records[key][2]
    arr = arrays[key]
    if view is not None:  # (view_key, offset, size)
        arr = arr[int(view[1]) : int(view[1]) + int(view[2])]
    return _TorchStorage(arr)


def _safe_reconstructor(cls, base, state):
    """`copy_reg._reconstructor` restricted to the stand-ins (object.__new__ only)."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object:
        raise UserError(f"refusing copy_reg._reconstructor for {cls!r}")
    obj = cls()
    if state is not None:
        obj.__setstate__(state)
    return obj


_NUMPY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray"}
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, "_reconstruct"): _NP_RECONSTRUCT for m in _NUMPY_MODULES},
    **{(m, "scalar"): _NP_SCALAR for m in _NUMPY_MODULES},
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): OrderedDict,
    ("copy_reg", "_reconstructor"): _safe_reconstructor,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("chumpy.ch", "Ch"): ChStandIn,
    **{(m, "csc_matrix"): CscStandIn for m in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse")},
    **{(m, "csr_matrix"): CsrStandIn for m in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse")},
}
_TORCH_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
}


class _Restricted(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals; everything else is refused before it is called.

    Numpy's own reconstruction functions are admitted (they build arrays, dtypes and scalars and call nothing
    else); chumpy and scipy classes become inert stand-ins; torch tensors are rebuilt by our own parser.
    `torch_storage=False` (inside a storage blob) admits the torch storage *types* only, as markers.
    """

    def __init__(self, file, *, torch_storage: bool = True, source: str = "pickle", persistent=None):
        super().__init__(file, encoding="latin1")
        self._torch = torch_storage
        self._source = source
        self._persistent = persistent

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if self._torch and key in _TORCH_ALLOWED:
            return _TORCH_ALLOWED[key]
        if not self._torch and module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(name)
        raise UserError(
            f"{self._source}: refusing to unpickle {module}.{name}: not a class a FLAME/DECA file needs "
            "(only numpy arrays, chumpy arrays and scipy sparse matrices are allowed). The file may be corrupt "
            "or malicious; download it again from the official site."
        )

    def persistent_load(self, pid):
        if self._persistent is not None:
            return self._persistent(pid)
        raise UserError(f"{self._source}: unexpected persistent id in the pickle ({pid!r:.60})")


def safe_unpickle(data: bytes | io.BufferedIOBase, source: str = "pickle") -> Any:
    """Unpickle `data` (bytes or a binary file) with the restricted unpickler; never runs foreign code."""
    f = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        return _Restricted(f, source=source).load()
    except UserError:
        raise
    except Exception as e:  # a damaged file raises many types
        raise UserError(f"{source}: not a readable pickle ({type(e).__name__}: {str(e)[:160]})") from None


def plain(obj):
    """Resolve stand-ins to arrays, recursively through containers."""
    if isinstance(obj, ChStandIn | SparseStandIn):
        return obj.value()
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return np.array([plain(v) for v in obj.ravel()], dtype=object).reshape(obj.shape)
    return obj
