"""Checkpoint files in, :class:`Checkpoint` out.  This package knows no networks.

`read_checkpoint(path)` picks the reader from the file's first bytes (zip `PK`, legacy
torch pickle `80 02 8a 0a`, HDF5 `89 48 44 46`) or, for ONNX, the `.onnx` extension.
`resolve(name_or_path)` finds a registered checkpoint (env dir, cache, installed package,
download) and verifies it.  Every failure is a :class:`WeightsError` with a one-line message.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from weights.checkpoint import Checkpoint
from weights.checksum import VerifyResult, file_digest, verify
from weights.errors import UnsafeCheckpointError, WeightsError
from weights.inspect import describe
from weights.keras_h5 import HDF5_SIGNATURE, read_keras_h5
from weights.onnx_vgg16 import read_onnx_vgg16
from weights.registry import (
    PREPROCESSING_PROFILES,
    REGISTRY,
    PreprocessingProfile,
    RegistryEntry,
    get_entry,
    get_profile,
)
from weights.resolver import ResolvedWeights, resolve
from weights.torch_pth import LEGACY_PREFIX, read_torch_pth

__all__ = [
    "Checkpoint",
    "PREPROCESSING_PROFILES",
    "PreprocessingProfile",
    "REGISTRY",
    "RegistryEntry",
    "ResolvedWeights",
    "UnsafeCheckpointError",
    "VerifyResult",
    "WeightsError",
    "describe",
    "file_digest",
    "get_entry",
    "get_profile",
    "read_checkpoint",
    "read_keras_h5",
    "read_onnx_vgg16",
    "read_torch_pth",
    "resolve",
    "verify",
]


def detect_format(path: str | Path) -> str:
    """`"torch-zip"`, `"torch-legacy"`, `"hdf5"`, `"keras-zip"`, `"onnx"`, or `"torch-other"` (a
    pickle or `.pth` without torch's magic, for the torch reader to refuse); WeightsError otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(b"PK"):
        if path.suffix == ".keras":
            return "keras-zip"
        return "torch-zip"
    if head.startswith(LEGACY_PREFIX):
        return "torch-legacy"
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head[:1] == b"\x80" or path.suffix.lower() in (".pth", ".pt"):
        return "torch-other"  # a pickle or a .pth without torch's magic: the torch reader explains
    # ONNX ModelProto: field 1 (ir_version, varint) comes first, tag byte 0x08.
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":
        return "onnx"
    if not head:
        raise WeightsError(f"{path}: empty file")
    raise WeightsError(
        f"{path}: unrecognised checkpoint format (first bytes {head.hex(' ')}); expected a torch .pth "
        "(zip or legacy pickle), a Keras HDF5 file or an ONNX model"
    )


def read_checkpoint(path: str | Path, *, strict: bool = True) -> Checkpoint:
    """Read any supported checkpoint file; the format comes from its magic bytes."""
    path = Path(path)
    kind = detect_format(path)
    if kind in ("torch-zip", "torch-legacy", "torch-other"):
        return read_torch_pth(path, strict=strict)
    if kind == "hdf5":
        return read_keras_h5(path)
    if kind == "keras-zip":
        return _read_keras_archive(path)
    return read_onnx_vgg16(path)


def _read_keras_archive(path: Path) -> Checkpoint:
    """A Keras 3 `.keras` file: a zip whose `model.weights.h5` is read with h5py."""
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            if "model.weights.h5" not in archive.namelist():
                raise WeightsError(f"{path}: .keras archive has no model.weights.h5")
            inner = Path(archive.extract("model.weights.h5", tmp))
            checkpoint = read_keras_h5(inner)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{path}: truncated or corrupt zip archive ({exc})") from None
    checkpoint.source = path
    checkpoint.meta["serialisation"] = "hdf5"
    checkpoint.meta["container"] = ".keras zip"
    return checkpoint
