"""Read Keras weight files with h5py: the legacy HDF5 layout and Keras 3 `.weights.h5`.

Legacy (Keras 1/2, and `model.save("x.h5")` in Keras 3): the root (or the `model_weights`
group of a full-model file) has an attribute `layer_names`; each layer group has an
attribute `weight_names` listing its datasets *in order* as paths relative to the group:
`block1_conv1_W_1:0` (flat, the published ImageNet file) or `block1_conv1/kernel:0`
(nested, later Keras 2).  The order comes from the attribute; no spelling is hard-coded.

Keras 3 `.weights.h5` (`model.save_weights`): groups `layers/<auto name>/vars/<i>`, nested
models under `layers/<model>/layers/...`; the real layer name is the `name` attribute of
each `vars` group (the group path uses class-based names such as `conv2d_1`).

Both return tensors named `<layer>/kernel`, `<layer>/bias` (Keras HWIO kernels): a layer
with one or two weights names them kernel, bias by position; a layer with more (batch
norm) keeps the names from `weight_names` (legacy) or its indices (Keras 3).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from weights.checkpoint import Checkpoint
from weights.errors import WeightsError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LEGACY_LAYOUT = "keras-h5-legacy"
KERAS3_LAYOUT = "keras3-weights-h5"
_POSITIONAL = ("kernel", "bias")


def _h5py(path: Path):
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WeightsError(f"{path}: reading HDF5 needs the 'h5py' package (pip install h5py)") from exc
    return h5py


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _names(attr) -> list[str]:
    """An h5 string-list attribute (bytes array, object array, or empty float array)."""
    if attr is None:
        return []
    array = np.atleast_1d(np.asarray(attr))
    if array.size == 0:
        return []
    return [_text(v) for v in array.tolist()]


def _weight_label(layer: str, weight_name: str) -> str:
    """`bn/gamma:0` -> `gamma`; `bn_gamma_1:0` -> `gamma` (for layers with > 2 weights)."""
    base = weight_name.rsplit("/", 1)[-1]
    base = re.sub(r":\d+$", "", base)
    if base.startswith(layer + "_"):
        base = base[len(layer) + 1 :]
    return re.sub(r"_\d+$", "", base) or base


def _label_weights(layer: str, weight_names: list[str]) -> list[str]:
    if len(weight_names) <= len(_POSITIONAL):
        return list(_POSITIONAL[: len(weight_names)])
    labels: list[str] = []
    for i, name in enumerate(weight_names):
        label = _weight_label(layer, name)
        labels.append(label if label not in labels else f"{label}_{i}")
    return labels


def read_keras_h5(path: str | Path) -> Checkpoint:
    """Read a Keras HDF5 weights file (legacy layout or Keras 3 `.weights.h5`)."""
    path = Path(path)
    h5py = _h5py(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: not a readable HDF5 file ({first[:160]})") from None
    try:
        with f:
            if "layer_names" in f.attrs:
                return _read_legacy(path, f, f, None)
            group = f.get("model_weights")
            if isinstance(group, h5py.Group) and "layer_names" in group.attrs:
                return _read_legacy(path, f, group, "model_weights")
            if isinstance(f.get("layers"), h5py.Group) or isinstance(f.get("vars"), h5py.Group):
                return _read_keras3(path, f, h5py)
            raise WeightsError(
                f"{path}: HDF5 file has no 'layer_names' attribute (root or model_weights) and no "
                "Keras 3 'layers' group: not a Keras weights file"
            )
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:  # truncated datasets and friends
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsError(f"{path}: corrupt or truncated HDF5 file ({type(exc).__name__}: {first[:160]})") from None


def _read_legacy(path: Path, f, root, under: str | None) -> Checkpoint:
    layer_names = _names(root.attrs.get("layer_names"))
    tensors: dict[str, np.ndarray] = {}
    weighted: list[str] = []
    for layer in layer_names:
        group = root.get(layer)
        if group is None:
            raise WeightsError(f"{path}: layer {layer!r} is in layer_names but has no group")
        if "weight_names" not in group.attrs:
            raise WeightsError(f"{path}: layer group {layer!r} has no 'weight_names' attribute")
        weight_names = _names(group.attrs["weight_names"])
        for label, weight_name in zip(_label_weights(layer, weight_names), weight_names):
            dataset = group.get(weight_name)
            if dataset is None or not hasattr(dataset, "shape"):
                raise WeightsError(f"{path}: layer {layer!r} lists weight {weight_name!r} but has no such dataset")
            tensors[f"{layer}/{label}"] = np.asarray(dataset[()])
        if weight_names:
            weighted.append(layer)
    if not tensors:
        raise WeightsError(f"{path}: Keras HDF5 file lists {len(layer_names)} layers but no weights")
    meta = {
        "serialisation": "hdf5",
        "weights_group": under,
        "layer_names": weighted,
        "keras_version": _text(f.attrs.get("keras_version", root.attrs.get("keras_version", ""))),
        "backend": _text(f.attrs.get("backend", root.attrs.get("backend", ""))),
    }
    return Checkpoint(tensors=tensors, layout=LEGACY_LAYOUT, source=path, meta=meta)


def _read_keras3(path: Path, f, h5py) -> Checkpoint:
    found: list[tuple[str, object]] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj):
            if not name.startswith("optimizer"):
                found.append((name, obj))

    f.visititems(visit)
    # Group names are class-based with creation counters (conv2d, conv2d_1, ..., conv2d_10):
    # a natural sort restores creation order within each layer type.
    found.sort(key=lambda item: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])])
    tensors: dict[str, np.ndarray] = {}
    layers: list[str] = []
    for group_path, group in found:
        indices = sorted(group.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        if not all(k.isdigit() for k in indices):
            raise WeightsError(f"{path}: Keras 3 group {group_path} has non-numeric variables {indices[:4]}")
        layer = _text(group.attrs.get("name", group_path.rsplit("/", 2)[-2] if "/" in group_path else "model"))
        if any(key.startswith(layer + "/") for key in tensors):
            layer = group_path[: -len("/vars")] if group_path.endswith("/vars") else group_path
        labels = list(_POSITIONAL[: len(indices)]) if len(indices) <= 2 else indices
        for label, index in zip(labels, indices):
            tensors[f"{layer}/{label}"] = np.asarray(group[index][()])
        layers.append(layer)
    if not tensors:
        raise WeightsError(f"{path}: Keras 3 weights file holds no variables")
    meta = {"serialisation": "hdf5", "weights_group": "layers", "layer_names": layers}
    return Checkpoint(tensors=tensors, layout=KERAS3_LAYOUT, source=path, meta=meta)
