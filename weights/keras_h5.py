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

import math
import re
from pathlib import Path

import numpy as np

from weights.checkpoint import Checkpoint
from weights.errors import WeightsError, first_line, one_line_errors
from weights.files import regular_file_size
from weights.limits import Budget

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
    return read_keras_h5_as(path, path)


@one_line_errors("HDF5 file")
def read_keras_h5_as(label: str | Path, path: Path) -> Checkpoint:
    """`read_keras_h5(path)`, with every message naming `label` instead of `path`.

    Why: a `.keras` archive's weights are read from a temporary copy, and an error must name
    the user's archive, not a file that no longer exists when the message is printed.
    """
    h5py = _h5py(path)
    regular_file_size(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{label}: not a readable HDF5 file ({first_line(exc)})") from None
    reader = _Reader(label, f, h5py, Budget(label))
    with f:
        if "layer_names" in f.attrs:
            return reader.legacy(f, None)
        group = reader.child(f, "model_weights")
        if isinstance(group, h5py.Group) and "layer_names" in group.attrs:
            return reader.legacy(group, "model_weights")
        if isinstance(reader.child(f, "layers"), h5py.Group) or isinstance(reader.child(f, "vars"), h5py.Group):
            return reader.keras3()
        raise WeightsError(
            f"{label}: HDF5 file has no 'layer_names' attribute (root or model_weights) and no "
            "Keras 3 'layers' group: not a Keras weights file"
        )


class _Reader:
    """One open HDF5 file: every object it reaches and every array it reads is checked first.

    HDF5 can point outside the file (external and soft links, datasets with external storage,
    virtual datasets): Keras never writes those, and following one could open a FIFO or read
    another file's bytes into the weights, so they are refused.  Every dataset's and string
    list's size is counted against the read limits before it is read (gzip-compressed chunks
    expand).
    """

    def __init__(self, label: str | Path, f, h5py, budget: Budget) -> None:
        self.label, self.f, self.h5py, self.budget = label, f, h5py, budget

    def child(self, group, relpath: str):
        """`group[relpath]` through hard links only, or None when a component is missing."""
        node = group
        for part in (p for p in relpath.split("/") if p):
            link = node.get(part, getlink=True) if isinstance(node, self.h5py.Group) else None
            if link is None:
                return None
            if not isinstance(link, self.h5py.HardLink):
                kind = "an external" if isinstance(link, self.h5py.ExternalLink) else "a soft"
                raise WeightsError(f"{self.label}: {relpath!r:.120} goes through {kind} link; "
                                   "Keras weight files hold plain groups and datasets")
            node = node[part]
        return node

    def array(self, dataset, what: str) -> np.ndarray:
        """The dataset's values, after checking where they live, their type and their size."""
        if not isinstance(dataset, self.h5py.Dataset):
            raise WeightsError(f"{self.label}: {what} is not a dataset")
        if dataset.is_virtual or dataset.external:
            raise WeightsError(f"{self.label}: {what} keeps its data outside the file (virtual or external "
                               "storage); Keras weight files hold their data inside")
        if dataset.dtype.kind not in "biufc":
            raise WeightsError(f"{self.label}: {what} has dtype {dataset.dtype}, not numbers")
        numel = math.prod(dataset.shape or ())
        self.budget.check_elements(numel, f"dataset {what}")
        self.budget.charge(numel * dataset.dtype.itemsize, f"dataset {what}")
        return np.asarray(dataset[()])

    def names(self, obj, attribute: str) -> list[str]:
        """A string-list attribute (bytes array, object array, or empty float array), size-checked."""
        if attribute not in obj.attrs:
            return []
        attr_id = obj.attrs.get_id(attribute)
        numel = math.prod(attr_id.shape or ())
        self.budget.charge(numel * max(attr_id.dtype.itemsize, 1), f"attribute {attribute}")
        array = np.atleast_1d(np.asarray(obj.attrs[attribute]))
        return [_text(v) for v in array.tolist()] if array.size else []

    def legacy(self, root, under: str | None) -> Checkpoint:
        label, f = self.label, self.f
        layer_names = self.names(root, "layer_names")
        tensors: dict[str, np.ndarray] = {}
        weighted: list[str] = []
        for layer in layer_names:
            group = self.child(root, layer)
            if group is None:
                raise WeightsError(f"{label}: layer {layer!r} is in layer_names but has no group")
            if "weight_names" not in group.attrs:
                raise WeightsError(f"{label}: layer group {layer!r} has no 'weight_names' attribute")
            weight_names = self.names(group, "weight_names")
            for weight_label, weight_name in zip(_label_weights(layer, weight_names), weight_names):
                dataset = self.child(group, weight_name)
                if dataset is None or not hasattr(dataset, "shape"):
                    raise WeightsError(f"{label}: layer {layer!r} lists weight {weight_name!r} but has no such dataset")
                tensors[f"{layer}/{weight_label}"] = self.array(dataset, f"{layer}/{weight_name}")
            if weight_names:
                weighted.append(layer)
        if not tensors:
            raise WeightsError(f"{label}: Keras HDF5 file lists {len(layer_names)} layers but no weights")
        meta = {
            "serialisation": "hdf5",
            "weights_group": under,
            "layer_names": weighted,
            "keras_version": _text(f.attrs.get("keras_version", root.attrs.get("keras_version", ""))),
            "backend": _text(f.attrs.get("backend", root.attrs.get("backend", ""))),
        }
        return Checkpoint(tensors=tensors, layout=LEGACY_LAYOUT, source=Path(label), meta=meta)

    def keras3(self) -> Checkpoint:
        label, h5py = self.label, self.h5py
        found: list[tuple[str, object]] = []

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj):
                if not name.startswith("optimizer"):
                    found.append((name, obj))

        self.f.visititems(visit)
        # Group names are class-based with creation counters (conv2d, conv2d_1, ..., conv2d_10):
        # a natural sort restores creation order within each layer type.
        found.sort(key=lambda item: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])])
        tensors: dict[str, np.ndarray] = {}
        layers: list[str] = []
        for group_path, group in found:
            indices = sorted(group.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
            if not all(k.isdigit() for k in indices):
                raise WeightsError(f"{label}: Keras 3 group {group_path} has non-numeric variables {indices[:4]}")
            layer = _text(group.attrs.get("name", group_path.rsplit("/", 2)[-2] if "/" in group_path else "model"))
            if any(key.startswith(layer + "/") for key in tensors):
                layer = group_path[: -len("/vars")] if group_path.endswith("/vars") else group_path
            labels = list(_POSITIONAL[: len(indices)]) if len(indices) <= 2 else indices
            for weight_label, index in zip(labels, indices):
                tensors[f"{layer}/{weight_label}"] = self.array(self.child(group, index), f"{group_path}/{index}")
            layers.append(layer)
        if not tensors:
            raise WeightsError(f"{label}: Keras 3 weights file holds no variables")
        meta = {"serialisation": "hdf5", "weights_group": "layers", "layer_names": layers}
        return Checkpoint(tensors=tensors, layout=KERAS3_LAYOUT, source=Path(label), meta=meta)
