"""Read PyTorch `.pth` state dicts (ssd.pytorch) without torch and without running pickle code.

Two serialisations exist and both must load byte-for-byte:

* the **legacy stream** (torch < 1.6, e.g. `ssd300_mAP_77.43_v2.pth`): four pickles in a row
  (magic number, protocol version 1001, sys_info, the object) then a pickled list of storage
  keys, then for every key an int64 element count followed by the storage's raw bytes;
* the **zip archive** (torch >= 1.6): `<name>/data.pkl`, one record `<name>/data/<key>` per
  storage, `<name>/version` and optionally `<name>/byteorder`.

The object pickle is read by :class:`_SafeUnpickler`, whose `find_class` answers only an
allow-list (tensor rebuild helpers, `collections.OrderedDict`, storage types, dtypes), each
mapped to a stand-in defined here.  Anything else raises :class:`UnsafeCheckpointError`
before it is called, so nothing from the file is ever executed.  Tensors are rebuilt lazily
(the legacy stream stores the bytes after the pickle) from offset, size and stride.

The file is untrusted: every pickle first passes :mod:`weights.pickle_scan` (sizes, memo
indices, nesting), zip records pass :mod:`weights.zips` (headers that cannot be true, bounded
inflation), and every storage, record and shared-storage copy is counted against
`--limit checkpoint_bytes` (:class:`weights.limits.Budget`) before it is allocated; a tensor
may not claim more elements than its storage holds nor more than `--limit tensor_elements`.

This module knows no network: it checks the container (magic bytes, zip/legacy structure,
storage sizes against offsets and strides, float dtypes, duplicate keys) and labels the key
*naming* convention (:func:`detect_layout`).  Which key must hold which shape is derived from
the network by `transfer.backbones.convert`.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from weights.checkpoint import Checkpoint
from weights.errors import UnsafeCheckpointError, WeightsError, first_line, one_line_errors
from weights.files import read_into, regular_file_size
from weights.limits import Budget
from weights.pickle_scan import pickle_bytes
from weights.zips import check_record, open_zip, read_record

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
#: First bytes of a legacy stream: pickle protocol 2, then LONG1 with 10 bytes (the magic).
LEGACY_PREFIX = b"\x80\x02\x8a\x0a"
ZIP_PREFIX = b"PK\x03\x04"

SSD_LAYOUT = "ssd300-pth"
REDUCEDFC_LAYOUT = "vgg16-reducedfc-pth"
UNKNOWN_LAYOUT = "torch-state-dict"

# --------------------------------------------------------------------------------------
# Safe stand-ins for the globals a torch pickle may name
# --------------------------------------------------------------------------------------


class _Frozen:
    """Base of the stand-ins: a pickle's BUILD opcode must not be able to modify them."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise UnsafeCheckpointError(f"pickle tries to set {_brief(name)} on a loader stand-in")

    def __delattr__(self, name: str) -> None:
        raise UnsafeCheckpointError(f"pickle tries to delete {_brief(name)} on a loader stand-in")


class _DType(_Frozen):
    """Stand-in for `torch.float32` & co."""

    __slots__ = ("name", "np_dtype")

    def __init__(self, name: str, np_dtype: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "np_dtype", np_dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


# torch dtype name -> numpy dtype ("bfloat16" is read as raw uint16, widened later).
_DTYPES: dict[str, str] = {
    "float32": "f4", "float": "f4", "float64": "f8", "double": "f8",
    "float16": "f2", "half": "f2", "bfloat16": "bf16",
    "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2", "short": "i2",
    "int8": "i1", "uint8": "u1", "bool": "?",
    "complex64": "c8", "cfloat": "c8", "complex128": "c16", "cdouble": "c16",
}
_DTYPE_OBJECTS = {name: _DType(name, code) for name, code in _DTYPES.items()}


class _StorageType(_Frozen):
    """Stand-in for `torch.FloatStorage` etc.; only ever used as a tag, never called."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: _DType | None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)  # None: untyped bytes

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(f"pickle tries to call storage type {self.name}")

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_STORAGE_DTYPE = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_STORAGE_TYPES = {n: _StorageType(n, _DTYPE_OBJECTS[d]) for n, d in _STORAGE_DTYPE.items()}
_UNTYPED = _StorageType("UntypedStorage", None)


def _np_dtype(dtype: _DType | None, big_endian: bool) -> np.dtype:
    code = "u1" if dtype is None else dtype.np_dtype
    if code == "bf16":
        code = "u2"
    return np.dtype(code).newbyteorder(">" if big_endian else "<")


class _Storage:
    """A storage named by the pickle; its bytes are attached later."""

    def __init__(self, key: str, dtype: _DType | None, numel: int, location: str) -> None:
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location
        self.array: np.ndarray | None = None  # 1-D, native byte order once loaded
        self.users = 0


class _StorageView:
    """A legacy storage view: elements `offset : offset + size` of a root storage."""

    def __init__(self, root: _Storage, offset: int, size: int) -> None:
        self.root, self.offset, self.size = root, offset, size
        self.users = 0


class _TensorRef:
    """A tensor waiting for its storage bytes."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, dtype: Any = None) -> None:
        if not isinstance(storage, (_Storage, _StorageView)):
            raise WeightsError(f"tensor rebuild got {type(storage).__name__} instead of a storage")
        if dtype is not None and not isinstance(dtype, _DType):
            raise WeightsError(f"tensor rebuild got dtype {_brief(dtype)}")
        try:
            self.offset = int(offset)
            self.size = tuple(int(s) for s in size)
            self.stride = tuple(int(s) for s in stride)
        except (TypeError, ValueError):
            raise WeightsError("tensor rebuild got a malformed offset/size/stride") from None
        if len(self.size) != len(self.stride) or self.offset < 0 or any(
            v < 0 for v in self.size + self.stride
        ):
            raise WeightsError(f"tensor rebuild got size {_brief(self.size)} with stride {_brief(self.stride)}")
        self.storage, self.dtype = storage, dtype
        storage.users += 1

    @property
    def root(self) -> _Storage:
        """The storage holding the bytes (a legacy view's root)."""
        return self.storage.root if isinstance(self.storage, _StorageView) else self.storage


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride, dtype=dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, _TensorRef):
        raise WeightsError(f"parameter rebuild got {type(data).__name__} instead of a tensor")
    return data


def _size(values=()):
    return tuple(int(v) for v in values)


class _Helper(_Frozen):
    """An allow-listed callable, wrapped so that the pickle cannot alter it."""

    __slots__ = ("_fn", "name")

    def __init__(self, fn: Any, name: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "name", name)

    def __call__(self, *args: Any) -> Any:
        try:
            return self._fn(*args)
        except TypeError as exc:
            raise WeightsError(f"{self.name} called with {len(args)} arguments ({exc})") from None


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _Helper(_rebuild_tensor, "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"): _Helper(_rebuild_tensor_v2, "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"): _Helper(_rebuild_tensor_v3, "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"): _Helper(_rebuild_parameter, "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"): _Helper(_rebuild_parameter, "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): _Helper(_size, "torch.Size"),
    ("torch", "UntypedStorage"): _UNTYPED,
    ("torch.storage", "UntypedStorage"): _UNTYPED,
    ("torch.storage", "_UntypedStorage"): _UNTYPED,
    **{("torch", name): st for name, st in _STORAGE_TYPES.items()},
    **{("torch.cuda", name): st for name, st in _STORAGE_TYPES.items()},
    **{("torch", name): dt for name, dt in _DTYPE_OBJECTS.items()},
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals, to stand-ins defined above."""

    def __init__(self, file: Any, path: Path, persistent_load=None) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            pass
        raise UnsafeCheckpointError(
            f"{self._path}: refuses to load: pickle asks for global {module:.100}.{name:.100} "
            "(not a tensor rebuild helper); nothing was executed"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise WeightsError(f"{self._path}: unexpected persistent id {_brief(pid)} in a header pickle")
        return self._persistent(pid)


# --------------------------------------------------------------------------------------
# Reading the two serialisations
# --------------------------------------------------------------------------------------


def _brief(value: Any, depth: int = 2) -> str:
    """A short repr of an object from a pickle, for messages: bounded whatever the file built.

    `repr()` of unpickled data can be huge (a 100 MB string, a 10**6-digit int, a list shared
    thousands of times over), so only scalars' and small tuples' reprs are shown.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<int of {value.bit_length()} bits>"
    if isinstance(value, (str, bytes, int, float, bool, type(None), _DType, _StorageType)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    if isinstance(value, tuple) and depth > 0:
        items = ", ".join(_brief(v, depth - 1) for v in value[:5])
        return f"({items}{', ...' if len(value) > 5 else ',' if len(value) == 1 else ''})"
    return f"<{type(value).__name__}>"


def _safe_load(path: Path, stream: Any, end: int, what: str, persistent_load=None) -> Any:
    """Unpickle the pickle at `stream`'s position (data ends at byte `end`), once it passes the scan.

    Every failure becomes a one-line WeightsError naming the file and which pickle failed.
    """
    try:
        data = pickle_bytes(stream, end)
        return _SafeUnpickler(io.BytesIO(data), path, persistent_load).load()
    except WeightsError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise type(exc)(f"{path}: {what} pickle: {exc}") from None
    except EOFError:
        raise WeightsError(f"{path}: truncated file: the {what} pickle ends early") from None
    except Exception as exc:  # UnpicklingError, ValueError, TypeError, MemoryError, ...
        if _ends_early(exc):
            raise WeightsError(f"{path}: truncated file: the {what} pickle ends early ({first_line(exc)})") from None
        raise WeightsError(f"{path}: corrupt or truncated {what} pickle ({first_line(exc, 120)})") from None


def _ends_early(exc: Exception) -> bool:
    """Whether `pickletools` stopped because the data ran out (its wording, not a type, says so)."""
    text = str(exc)
    return "exhausted before seeing STOP" in text or (text.startswith("expected ") and " remain" in text)


def _decode(value: Any) -> Any:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _storage_id(path: Path, pid: Any, length: int) -> tuple:
    """A persistent id `('storage', type, key, location, numel[, view])`, checked, its type a storage."""
    if not isinstance(pid, tuple) or len(pid) != length or _decode(pid[0]) != "storage":
        raise WeightsError(f"{path}: unsupported persistent id {_brief(pid)} (only storages are read)")
    if not isinstance(pid[1], _StorageType):
        raise WeightsError(f"{path}: persistent id names {_brief(pid[1])}, not a storage type")
    return pid


def _storage_for(storages: dict[str, _Storage], pid: tuple) -> _Storage:
    """The storage a checked persistent id names, created on its first mention."""
    _, storage_type, key, location, numel = pid[:5]
    key = str(_decode(key))
    if key not in storages:
        storages[key] = _Storage(key, storage_type.dtype, int(numel), str(_decode(location)))
    return storages[key]


def _read_legacy(path: Path, file_size: int, budget: Budget) -> tuple[Any, dict]:
    storages: dict[str, _Storage] = {}
    views: dict[str, _StorageView] = {}

    def persistent_load(pid: Any) -> Any:
        root = _storage_for(storages, _storage_id(path, pid, 6))
        if pid[5] is None:
            return root
        view_key, offset, size = pid[5]
        view_key = str(_decode(view_key))
        if view_key not in views:
            views[view_key] = _StorageView(root, int(offset), int(size))
        return views[view_key]

    with open(path, "rb") as f:
        magic = _safe_load(path, f, file_size, "magic number")
        if magic != LEGACY_MAGIC_NUMBER:
            raise WeightsError(f"{path}: wrong magic number {_brief(magic)}: not a torch legacy checkpoint")
        version = _safe_load(path, f, file_size, "protocol version")
        if version != LEGACY_PROTOCOL_VERSION:
            raise WeightsError(f"{path}: unsupported legacy protocol version {_brief(version)} (expected 1001)")
        sys_info = _safe_load(path, f, file_size, "sys_info")
        if not isinstance(sys_info, dict):
            raise WeightsError(f"{path}: sys_info is {type(sys_info).__name__}, not a dict")
        big_endian = sys_info.get("little_endian", True) is False
        obj = _safe_load(path, f, file_size, "state dict", persistent_load)
        keys = _safe_load(path, f, file_size, "storage key list")
        if not isinstance(keys, list):
            raise WeightsError(f"{path}: storage key list is {type(keys).__name__}, not a list")
        _charge_storages(path, storages.values(), big_endian, budget, room=file_size - f.tell())
        for key in keys:
            key = str(_decode(key))
            if key not in storages:
                raise WeightsError(f"{path}: storage {_brief(key)} is in the key list but no tensor uses it")
            _read_legacy_storage(path, f, file_size, storages[key], big_endian)
    missing = [k for k, s in storages.items() if s.array is None]
    if missing:
        raise WeightsError(f"{path}: truncated or corrupt file: no data for storage(s) {_brief(tuple(missing[:3]))}")
    meta = {"serialisation": "legacy", "protocol_version": version, "byteorder": "big" if big_endian else "little"}
    return obj, meta


def _charge_storages(path: Path, storages: Any, big_endian: bool, budget: Budget, room: int | None = None) -> None:
    """Count every storage the pickle names against the limit, before any is allocated.

    `room`: bytes left in the file after the pickles; a legacy stream's storages must fit in it.
    """
    total = 0
    for storage in storages:
        nbytes = storage.numel * _np_dtype(storage.dtype, big_endian).itemsize
        budget.charge(nbytes, f"storage {_brief(storage.key)} ({storage.numel:,} elements)")
        total += nbytes
    if room is not None and total > room:
        raise WeightsError(
            f"{path}: truncated file: the pickle names storages of {total:,} bytes but only {room:,} bytes follow it"
        )


def _read_legacy_storage(path: Path, f: BinaryIO, file_size: int, storage: _Storage, big_endian: bool) -> None:
    """One storage of a legacy stream: an int64 element count, then the raw bytes."""
    offset = f.tell()
    header = f.read(8)
    if len(header) < 8:
        raise WeightsError(
            f"{path}: truncated file: storage {_brief(storage.key)} header at byte {offset} is cut off "
            f"(file has {file_size} bytes)"
        )
    (numel,) = struct.unpack(">q" if big_endian else "<q", header)
    if numel != storage.numel:
        raise WeightsError(
            f"{path}: storage {_brief(storage.key)} holds {numel} elements but the pickle says {storage.numel}"
        )
    dtype = _np_dtype(storage.dtype, big_endian)
    nbytes = numel * dtype.itemsize
    if offset + 8 + nbytes > file_size:
        raise WeightsError(
            f"{path}: truncated file: storage {_brief(storage.key)} needs {nbytes} bytes at byte {offset + 8} "
            f"but the file ends at {file_size}"
        )
    array = np.empty(numel, dtype=dtype)
    if read_into(f, memoryview(array).cast("B")) != nbytes:
        raise WeightsError(f"{path}: truncated file: storage {_brief(storage.key)} is cut off")
    storage.array = array


def _read_zip(path: Path, file_size: int, budget: Budget) -> tuple[Any, dict]:
    with open_zip(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            if "data.pkl" in names:
                pickles = ["data.pkl"]
            else:
                raise WeightsError(f"{path}: zip archive has no <name>/data.pkl: not a torch.save file")
        data_pkl = pickles[0]
        prefix = data_pkl[: -len("data.pkl")]
        if any(n.startswith(prefix + "code/") for n in names):
            raise WeightsError(
                f"{path}: is a TorchScript archive, not a state dict; save model.state_dict() instead"
            )

        def record(name: str) -> bytes | None:
            try:
                info = archive.getinfo(prefix + name)
            except KeyError:
                return None
            return read_record(path, archive, info, budget, file_size)

        byteorder = (record("byteorder") or b"little").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byteorder record {byteorder!r:.20}")
        version = (record("version") or b"").decode("ascii", "replace").strip()[:40]
        big_endian = byteorder == "big"
        storages: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> Any:
            return _storage_for(storages, _storage_id(path, pid, 5))

        raw_pickle = record("data.pkl") or b""
        obj = _safe_load(path, io.BytesIO(raw_pickle), len(raw_pickle), "state dict", persistent_load)
        _charge_storages(path, storages.values(), big_endian, budget)
        for storage in storages.values():
            _read_zip_storage(path, archive, f"{prefix}data/{storage.key}", storage, big_endian, file_size)
    meta = {"serialisation": "zip", "archive_version": version, "byteorder": byteorder,
            "record_prefix": prefix.rstrip("/")}
    return obj, meta


def _read_zip_storage(path: Path, archive: zipfile.ZipFile, name: str, storage: _Storage, big_endian: bool,
                      archive_size: int) -> None:
    """One storage record `<prefix>data/<key>`: its first numel x itemsize bytes, read in chunks."""
    dtype = _np_dtype(storage.dtype, big_endian)
    nbytes = storage.numel * dtype.itemsize
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightsError(f"{path}: storage record {name} is missing from the archive") from None
    check_record(path, info, archive_size)
    if info.file_size < nbytes:
        raise WeightsError(f"{path}: storage record {name} has {info.file_size} bytes, the pickle needs {nbytes}")
    array = np.empty(storage.numel, dtype=dtype)
    try:
        with archive.open(info) as fh:
            got = read_into(fh, memoryview(array).cast("B"))
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError, ...
        raise WeightsError(f"{path}: corrupt or truncated storage record {name} ({first_line(exc)})") from None
    if got != nbytes:
        raise WeightsError(f"{path}: truncated storage record {name}")
    storage.array = array


# --------------------------------------------------------------------------------------
# Tensors, state dict, key naming
# --------------------------------------------------------------------------------------


def _elements(path: Path, key: str, ref: _TensorRef) -> tuple[np.ndarray, int, int, bool]:
    """`(flat, start, available, shared)`: the 1-D array a tensor indexes in its own dtype, where
    its storage (or legacy view) begins in it, how many elements that storage holds, and whether
    other tensors use the same storage (then the tensor must be copied out)."""
    storage = ref.storage
    if isinstance(storage, _StorageView):
        root, start, available, shared = storage.root, storage.offset, storage.size, True
        if start < 0 or available < 0 or start + available > root.numel:
            raise WeightsError(f"{path}: tensor {_brief(key)} uses a storage view ({start}, {available}) "
                               f"outside its storage of {root.numel} elements")
    else:
        root, start, available, shared = storage, 0, storage.numel, storage.users > 1
    flat = root.array
    if ref.dtype is not None and root.dtype is None:  # _rebuild_tensor_v3 on untyped bytes
        itemsize = _np_dtype(ref.dtype, False).itemsize
        if flat.size % itemsize:
            raise WeightsError(f"{path}: tensor {_brief(key)} is {ref.dtype} but its storage has {flat.size} bytes")
        flat = flat.view(_np_dtype(ref.dtype, flat.dtype.byteorder == ">"))
        available = available // itemsize if not isinstance(storage, _StorageView) else available
    return flat, start, available, shared


def _check_extent(path: Path, key: str, ref: _TensorRef, numel: int, available: int, budget: Budget) -> None:
    """Refuse, before allocating, a tensor larger than its storage, the limit, or reaching past it.

    Why numel against the storage: zero or overlapping strides let a few stored bytes claim
    billions of elements, and a state dict's tensors (parameters, buffers) never overlap.
    """
    where = f"tensor {_brief(key)} (offset {ref.offset}, size {_brief(ref.size)}, stride {_brief(ref.stride)})"
    if numel > available:
        raise WeightsError(
            f"{path}: {where} has {numel:,} elements but its storage holds {available:,}; a state-dict tensor "
            "never has more elements than its storage (zero or overlapping strides)"
        )
    budget.check_elements(numel, where)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if numel and last >= available:
        raise WeightsError(f"{path}: {where} reads past its storage of {available} elements")


def _materialise(path: Path, key: str, ref: _TensorRef, budget: Budget) -> np.ndarray:
    """The tensor as its own C-contiguous array in native byte order (bfloat16 widened)."""
    flat, start, available, shared = _elements(path, key, ref)
    numel = math.prod(ref.size)
    _check_extent(path, key, ref, numel, available, budget)
    contiguous = ref.stride == _contiguous_strides(ref.size)
    if numel == 0:
        out = np.zeros(ref.size, dtype=flat.dtype)
    elif contiguous and not shared and ref.offset == 0 and numel == available and start == 0:
        out = flat.reshape(ref.size)  # the storage is this tensor: no copy
    else:
        budget.charge(numel * flat.dtype.itemsize, f"tensor {_brief(key)} (copied out of a shared storage)")
        view = np.lib.stride_tricks.as_strided(
            flat[start + ref.offset :],
            shape=ref.size,
            strides=[s * flat.dtype.itemsize for s in ref.stride],
            writeable=False,
        )
        out = np.array(view, copy=True)
    if out.dtype.byteorder == ">" or (out.dtype.byteorder == "<" and not np.little_endian):
        out = out.astype(out.dtype.newbyteorder("="))
    dtype = ref.dtype if ref.dtype is not None else ref.root.dtype
    if dtype is not None and dtype.np_dtype == "bf16":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(size):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


_NESTING_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights")


def _find_state_dict(path: Path, obj: Any) -> tuple[dict, str | None]:
    def has_tensors(d: Any) -> bool:
        return isinstance(d, dict) and any(isinstance(v, _TensorRef) for v in d.values())

    if has_tensors(obj):
        return obj, None
    if isinstance(obj, dict):
        for key in _NESTING_KEYS:
            if has_tensors(obj.get(key)):
                return obj[key], key
        keys = ", ".join(_brief(k) for k in list(obj)[:6])
        raise WeightsError(f"{path}: no state dict of tensors found (top-level keys: {keys})")
    raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")


_REDUCEDFC_KEY = re.compile(r"^\d+\.(weight|bias)$")


def detect_layout(keys: list[str]) -> str:
    """`"ssd300-pth"`, `"vgg16-reducedfc-pth"` or `"torch-state-dict"` from key names alone.

    A label of the naming convention (ssd.pytorch's `vgg.*` ModuleList, or its base-net file's
    bare `0.weight` ...), so callers can pick a converter; it promises nothing about shapes.
    """
    if any(k.startswith("vgg.") for k in keys):
        return SSD_LAYOUT
    if keys and all(_REDUCEDFC_KEY.match(k) for k in keys):
        return REDUCEDFC_LAYOUT
    return UNKNOWN_LAYOUT


def _short_list(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def check_dtypes(path: Path, tensors: dict[str, np.ndarray], layout: str) -> None:
    """Refuse a non-float tensor in a file named like a network's weights (one-line WeightsError).

    Why here and not in the converter: an integer or bool array where a weight belongs means the
    file is not what its key names claim, whichever network later reads it.  Shapes are the
    converter's business (`transfer.backbones.convert`), since only the network knows them.
    """
    if layout == UNKNOWN_LAYOUT:
        return
    not_float = [k for k, a in tensors.items() if a.dtype.kind != "f"]
    if not_float:
        raise WeightsError(f"{path}: {not_float[0]} has dtype {tensors[not_float[0]].dtype}, expected floating point")


def _key_text(path: Path, key: Any) -> str:
    """A state-dict key as text; torch's keys are strings (ints are tolerated, as str() shows them)."""
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, str) or (isinstance(key, int) and key.bit_length() <= 64):
        return str(key)
    raise WeightsError(f"{path}: state dict key {_brief(key)} is a {type(key).__name__}, not a name")


@one_line_errors("torch checkpoint")
def read_torch_pth(path: str | Path, *, strict: bool = True) -> Checkpoint:
    """Read a torch `.pth` state dict (legacy stream or zip archive) into numpy arrays.

    Never imports torch and never executes code from the file.  Keys keep PyTorch's names
    (a DataParallel `module.` prefix is removed) and kernels stay OIHW.  Only the container is
    checked (magic bytes, structure, storage sizes against offsets and strides, duplicate keys,
    float dtypes); which key holds which shape is the converter's business.  With `strict`, the
    key names must follow a known convention (`ssd300-pth`: `vgg.*`; `vgg16-reducedfc-pth`:
    `0.weight` ...) and every tensor be floating point; without it an unknown key set reads as
    `torch-state-dict` and a dtype problem is listed in `meta["problems"]`.
    """
    path = Path(path)
    file_size = regular_file_size(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    budget = Budget(path)
    if head.startswith(ZIP_PREFIX[:2]):
        obj, meta = _read_zip(path, file_size, budget)
    elif head == LEGACY_PREFIX:
        obj, meta = _read_legacy(path, file_size, budget)
    elif not head:
        raise WeightsError(f"{path}: empty file")
    else:
        raise WeightsError(
            f"{path}: wrong magic bytes {head.hex(' ')}: neither a torch zip archive (PK) "
            "nor a legacy torch pickle stream (80 02 8a 0a)"
        )
    state, nested_under = _find_state_dict(path, obj)
    tensors: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    stripped = False
    for raw_key, value in state.items():
        key = _key_text(path, raw_key)
        if key.startswith("module."):
            key, stripped = key[len("module."):], True
        if not isinstance(value, _TensorRef):
            ignored.append(key)
            continue
        if key in tensors:
            raise WeightsError(f"{path}: key {_brief(key)} appears twice (with and without 'module.')")
        tensors[key] = _materialise(path, key, value, budget)
    layout = detect_layout(list(tensors))
    if layout == UNKNOWN_LAYOUT and strict:
        raise WeightsError(
            f"{path}: wrong key set: keys match neither {SSD_LAYOUT} (vgg.*, L2Norm, extras, loc, conf) "
            f"nor {REDUCEDFC_LAYOUT} (0.weight ... 33.bias); first keys: {_short_list(list(tensors), 3)}"
        )
    meta.update(
        file_size=file_size,
        nested_under=nested_under,
        module_prefix_stripped=stripped,
        dtypes=sorted({str(a.dtype) for a in tensors.values()}),
    )
    if ignored:
        meta["ignored_keys"] = ignored
    try:
        check_dtypes(path, tensors, layout)
    except WeightsError as exc:
        if strict:
            raise
        meta["problems"] = [str(exc)]
    return Checkpoint(tensors=tensors, layout=layout, source=path, meta=meta)
