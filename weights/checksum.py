"""Streaming checksums and verification of a file against a registry entry."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from weights.errors import WeightsError
from weights.files import regular_file_size
from weights.registry import RegistryEntry

_CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256", chunk_size: int = _CHUNK) -> str:
    """Hex digest of a file, read in chunks (constant memory); a FIFO or device is refused, not read."""
    path = Path(path)
    regular_file_size(path)
    digest = hashlib.new(algorithm)
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read for {algorithm} ({exc.strerror or exc})") from None
    return digest.hexdigest()


def sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")


def md5(path: str | Path) -> str:
    return file_digest(path, "md5")


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.  `ok` is False on a size or checksum mismatch."""

    ok: bool
    path: Path
    entry_name: str
    expected_size: int | None
    actual_size: int
    algorithm: str | None  # None: size mismatch (not hashed) or nothing to compare
    expected_digest: str | None
    actual_digest: str | None
    message: str


def verify(path: str | Path, entry: RegistryEntry) -> VerifyResult:
    """Check `path` against `entry`: the size first (cheap), then sha256 (or md5)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(f"{path}: cannot stat ({exc.strerror or exc})") from None
    common = dict(path=path, entry_name=entry.name, expected_size=entry.size, actual_size=size)
    if entry.size is not None and size != entry.size:
        return VerifyResult(
            ok=False, algorithm=None, expected_digest=None, actual_digest=None,
            message=f"{path}: size {size:,} bytes, expected {entry.size:,} for {entry.name} ({entry.filename})",
            **common,
        )
    checksum = entry.checksum
    if checksum is None:
        return VerifyResult(
            ok=True, algorithm=None, expected_digest=None, actual_digest=None,
            message=f"{path}: size matches {entry.name}; no checksum recorded", **common,
        )
    algorithm, expected = checksum
    actual = file_digest(path, algorithm)
    ok = actual == expected.lower()
    message = (
        f"{path}: {algorithm} matches {entry.name}"
        if ok
        else f"{path}: {algorithm} {actual} does not match {expected} expected for {entry.name} ({entry.filename})"
    )
    return VerifyResult(
        ok=ok, algorithm=algorithm, expected_digest=expected, actual_digest=actual, message=message, **common
    )
