"""Write a state dict as a torch >= 1.6 `.pth` zip archive without importing torch.

Why: a detector trained here must be usable by ssd.pytorch (and by our own reader) as the file
`torch.save(net.state_dict(), path)` would have written, so torch is not needed to export one.

Layout, as `torch.save` writes it (torch 2.x, checked against `zipfile` listings of its files):

* `archive/data.pkl`: pickle protocol 2 of an `OrderedDict` mapping each key to
  `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, where
  `storage` is the persistent id `('storage', torch.FloatStorage, '<n>', 'cpu', numel)`;
* `archive/.format_version` (`1`: storages numbered in order), `archive/.storage_alignment`
  (`64`), `archive/byteorder` (`little`);
* `archive/data/<n>`: the raw little-endian float32 bytes of storage n, one per tensor;
* `archive/version` (`3`).

Every record is *stored* (not deflated) and its data starts on a 64-byte boundary: torch pads
the local header with an extra field `FB` of `Z` bytes, which is what lets `torch.load(mmap=True)`
map the storages in place.  The pickle is written opcode by opcode: pickling stand-in classes
would make `pickle` import `torch` to check the global names.
"""

from __future__ import annotations

import os
import pickle
import secrets
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weights.errors import WeightsError

#: Record prefix inside the archive (torch takes the file's stem; any name loads).
ARCHIVE = "archive"
#: Storage records start on multiples of this many bytes, as torch's writer aligns them.
ALIGNMENT = 64
_PADDING_FIELD = b"FB"  # torch's extra-field id for header padding


# --------------------------------------------------------------------------------------
# The pickle, opcode by opcode (protocol 2)
# --------------------------------------------------------------------------------------


def _int(value: int) -> bytes:
    if 0 <= value < 1 << 8:
        return pickle.BININT1 + bytes([value])
    if 0 <= value < 1 << 16:
        return pickle.BININT2 + struct.pack("<H", value)
    if -(1 << 31) <= value < 1 << 31:
        return pickle.BININT + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _tuple(items: list[bytes]) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii")


def _empty_ordered_dict() -> bytes:
    return _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE


def _tensor(storage_key: str, array: np.ndarray) -> bytes:
    """`_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` for a C-contiguous array."""
    strides = [s // array.itemsize for s in array.strides]
    storage = _tuple([_str("storage"), _global("torch", "FloatStorage"), _str(storage_key),
                      _str("cpu"), _int(array.size)]) + pickle.BINPERSID
    arguments = [storage, _int(0), _tuple([_int(n) for n in array.shape]), _tuple([_int(s) for s in strides]),
                 pickle.NEWFALSE, _empty_ordered_dict()]
    return _global("torch._utils", "_rebuild_tensor_v2") + _tuple(arguments) + pickle.REDUCE


def _state_dict_pickle(arrays: list[tuple[str, np.ndarray]]) -> bytes:
    items = b"".join(_str(key) + _tensor(str(n), array) for n, (key, array) in enumerate(arrays))
    return pickle.PROTO + bytes([2]) + _empty_ordered_dict() + pickle.MARK + items + pickle.SETITEMS + pickle.STOP


# --------------------------------------------------------------------------------------
# The zip archive
# --------------------------------------------------------------------------------------


def _as_float32(key: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise WeightsError(f"{key}: dtype {array.dtype} is not floating point; a weights file holds float32 tensors")
    return np.asarray(array, dtype="<f4", order="C")  # (ascontiguousarray would make a scalar 1-d)


def _write_record(archive: zipfile.ZipFile, file, name: str, data: bytes) -> None:
    """One stored record whose data starts on an `ALIGNMENT`-byte boundary of the file."""
    info = zipfile.ZipInfo(f"{ARCHIVE}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    header = 30 + len(info.filename.encode("utf-8")) + 4  # local header, name, padding field's id and size
    padding = -(file.tell() + header) % ALIGNMENT
    info.extra = _PADDING_FIELD + struct.pack("<H", padding) + b"Z" * padding
    archive.writestr(info, data)


def _write_archive(file, arrays: list[tuple[str, np.ndarray]]) -> None:
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        _write_record(archive, file, "data.pkl", _state_dict_pickle(arrays))
        _write_record(archive, file, ".format_version", b"1")
        _write_record(archive, file, ".storage_alignment", str(ALIGNMENT).encode())
        _write_record(archive, file, "byteorder", b"little")
        for n, (_, array) in enumerate(arrays):
            _write_record(archive, file, f"data/{n}", array.tobytes())
        _write_record(archive, file, "version", b"3\n")


def write_torch_pth(path: str | os.PathLike, state_dict: Mapping[str, np.ndarray]) -> Path:
    """Write `{key: array}` as `torch.save(OrderedDict of float32 tensors, path)` would, atomically.

    Keys keep their order; every array becomes a contiguous float32 tensor of its shape
    (torch layout is the caller's business: OIHW kernels for a PyTorch network).  The file is
    written beside `path` and renamed onto it, so a crash never leaves a half-written `.pth`.

    Raises:
      WeightsError: a non-float array, or the file cannot be written (one line).
    """
    path = Path(path)
    arrays = [(str(key), _as_float32(str(key), value)) for key, value in state_dict.items()]
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")  # "x" mode: permissions follow the umask
    try:
        with open(tmp, "xb") as file:
            _write_archive(file, arrays)
        os.replace(tmp, path)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
