"""Turn a `weights.Checkpoint` (file naming) into `{Keras layer name: [kernel, bias]}`.

This is where file formats meet networks: the ssd.pytorch key of every layer comes from
the one table in `models.ssd300` (never index arithmetic), PyTorch OIHW kernels become
Keras HWIO, and every tensor becomes float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.ssd300 import TORCH_KEY_BY_LAYER, VGG16_TORCH_KEYS
from models.vgg16 import VGG16_CONV_LAYERS
from transfer.errors import DetstyleError
from weights.checkpoint import Checkpoint

#: Layouts whose tensors are already named `<keras layer>/kernel` and `/bias` (HWIO).
KERAS_NAMED_LAYOUTS = ("keras-h5-legacy", "keras3-weights-h5", "onnx-vgg16", "keras-archive")
#: Preprocessing each layout's network was trained with, when the file does not say.
LAYOUT_PROFILES = {"ssd300-pth": "rgb_mean", "vgg16-reducedfc-pth": "rgb_mean"}


def _oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(2, 3, 1, 0))


def _torch_layer(tensors: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    weight = tensors[f"{prefix}.weight"]
    if weight.ndim == 1:  # L2Norm's scale: no bias
        return [np.asarray(weight, np.float32)]
    return [_oihw_to_hwio(weight), np.asarray(tensors[f"{prefix}.bias"], np.float32)]


def torch_weights_by_layer(checkpoint: Checkpoint, table: dict[str, str]) -> dict[str, list[np.ndarray]]:
    """Keras layer -> weights for every row of `table` whose keys the checkpoint has."""
    strip = checkpoint.layout == "vgg16-reducedfc-pth"  # base-net file: `0.weight`, no `vgg.`
    layers = {}
    for layer, prefix in table.items():
        key = prefix.removeprefix("vgg.") if strip else prefix
        if f"{key}.weight" in checkpoint.tensors:
            layers[layer] = _torch_layer(checkpoint.tensors, key)
    return layers


def keras_weights_by_layer(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    layers: dict[str, list[np.ndarray]] = {}
    for key in checkpoint.tensors:
        layer, _, _ = key.rpartition("/")
        if layer and f"{layer}/kernel" in checkpoint.tensors and f"{layer}/bias" in checkpoint.tensors:
            layers[layer] = [np.asarray(checkpoint.tensors[f"{layer}/{w}"], np.float32) for w in ("kernel", "bias")]
    return layers


def backbone_weights_from_checkpoint(checkpoint: Checkpoint) -> tuple[dict[str, list[np.ndarray]], str]:
    """The 13 VGG16 conv layers of any supported checkpoint, and its training profile."""
    if checkpoint.layout in LAYOUT_PROFILES:
        weights = torch_weights_by_layer(checkpoint, VGG16_TORCH_KEYS)
    elif checkpoint.layout in KERAS_NAMED_LAYOUTS:
        weights = {k: v for k, v in keras_weights_by_layer(checkpoint).items() if k in VGG16_CONV_LAYERS}
    else:
        raise DetstyleError(f"{checkpoint.source}: layout {checkpoint.layout!r} holds no VGG16 backbone")
    if not weights:
        raise DetstyleError(f"{checkpoint.source}: no VGG16 conv layers found (layout {checkpoint.layout})")
    return weights, LAYOUT_PROFILES.get(checkpoint.layout, "caffe")


def ssd300_weights_from_checkpoint(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    """Every SSD300 layer (VGG, conv6/7, L2Norm, extras, heads) from an ssd.pytorch file."""
    if checkpoint.layout != "ssd300-pth":
        raise DetstyleError(f"{checkpoint.source}: not a full SSD300 checkpoint (layout {checkpoint.layout})")
    return torch_weights_by_layer(checkpoint, TORCH_KEY_BY_LAYER)


def save_backbone(backbone, path: str | Path, *, source: str, sha256: str | None = None) -> Path:
    """Write the toolkit's own format: truncated-VGG16 `.weights.h5` plus a JSON sidecar."""
    from transfer.images import atomic_write

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise DetstyleError(f"{path}: the output name must end in .weights.h5 (Keras 3 weights format)")
    atomic_write(path, lambda tmp: backbone.model.save_weights(_renamed(tmp)) or Path(_renamed(tmp)).replace(tmp))
    sidecar = path.with_name(path.name.removesuffix(".weights.h5") + ".json")
    meta = {
        "name": backbone.name, "source": source, "sha256": sha256,
        "preprocessing_profile": backbone.profile, "description": backbone.description,
        "copy_report": backbone.report.to_dict() if backbone.report else None,
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return path


def _renamed(tmp: str) -> str:
    """Keras insists on the `.weights.h5` suffix; write beside the temp file, then move."""
    return str(tmp) + ".weights.h5"
