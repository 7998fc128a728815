"""Checkpoint files in, :class:`Checkpoint` out.  This package knows no networks.

`read_checkpoint(path)` picks the reader from the file's first bytes (zip `PK`, legacy
torch pickle `80 02 8a 0a`, HDF5 `89 48 44 46`) or, for ONNX, the `.onnx` extension.
`resolve(name_or_path)` finds a registered checkpoint (env dir, cache, installed package,
download) and verifies it.  Every failure is a :class:`WeightsError` with a one-line message.

Checkpoint files are untrusted input: only regular files are opened, every allocation a file
asks for is checked against `weights.limits` first, and NaN/inf weights are refused at load.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from weights.checkpoint import Checkpoint, check_finite
from weights.checksum import VerifyResult, file_digest, verify
from weights.errors import UnsafeCheckpointError, WeightsError, one_line_errors
from weights.files import regular_file_size
from weights.inspect import describe
from weights.keras_h5 import HDF5_SIGNATURE, read_keras_h5, read_keras_h5_as
from weights.limits import Budget
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
from weights.zips import copy_record, open_zip

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


@one_line_errors("checkpoint file")
def detect_format(path: str | Path) -> str:
    """`"torch-zip"`, `"torch-legacy"`, `"hdf5"`, `"keras-zip"`, `"onnx"`, or `"torch-other"` (a
    pickle or `.pth` without torch's magic, for the torch reader to refuse); WeightsError otherwise,
    also for anything that is not a regular file (a FIFO would block the open, a device never end)."""
    path = Path(path)
    regular_file_size(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
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


@one_line_errors("checkpoint file")
def read_checkpoint(path: str | Path, *, strict: bool = True) -> Checkpoint:
    """Read any supported checkpoint file; the format comes from its magic bytes.

    Every tensor is checked for NaN/inf: `strict` refuses such a file, otherwise the problem is
    listed in `meta["problems"]` (for `weights inspect`).  Sizes are bounded by
    `weights.limits.current()`; every failure is one WeightsError line.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind in ("torch-zip", "torch-legacy", "torch-other"):
        checkpoint = read_torch_pth(path, strict=strict)
    elif kind == "hdf5":
        checkpoint = read_keras_h5(path)
    elif kind == "keras-zip":
        checkpoint = _read_keras_archive(path)
    else:
        checkpoint = read_onnx_vgg16(path)
    check_finite(checkpoint, strict=strict)
    return checkpoint


#: Name of the weights inside a Keras 3 `.keras` archive.
KERAS_WEIGHTS_MEMBER = "model.weights.h5"


def _read_keras_archive(path: Path) -> Checkpoint:
    """A Keras 3 `.keras` file: a zip whose `model.weights.h5` is copied out (size-checked, in
    chunks) and read with h5py; every message names the archive, never the temporary copy."""
    archive_size = regular_file_size(path)
    label = f"{path} ({KERAS_WEIGHTS_MEMBER})"
    with open_zip(path) as archive, tempfile.TemporaryDirectory() as tmp:
        try:
            info = archive.getinfo(KERAS_WEIGHTS_MEMBER)
        except KeyError:
            raise WeightsError(f"{path}: .keras archive has no {KERAS_WEIGHTS_MEMBER}") from None
        inner = Path(tmp) / "weights.h5"
        with open(inner, "wb") as out:  # on disk, not in memory, but a bomb could fill the disk
            copy_record(path, archive, info, out, Budget(path), archive_size)
        checkpoint = read_keras_h5_as(label, inner)
    checkpoint.source = path
    checkpoint.meta["serialisation"] = "hdf5"
    checkpoint.meta["container"] = ".keras zip"
    return checkpoint
