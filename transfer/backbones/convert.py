"""Turn a `weights.Checkpoint` (file naming) into `{Keras layer name: [kernel, bias]}`.

This is where file formats meet networks, and the only place that knows ssd.pytorch's key
names.  They are not written down as a table: :func:`ssd_pytorch_keys` walks the Keras SSD300
of `models.ssd300.build_ssd300` and numbers its layers the way ssd.pytorch's builders fill
their ModuleLists (`vgg`: a conv and its ReLU module take one index each, a pool one;
`extras`: one index per conv; `loc.k` / `conf.k`: the head of the k-th source; `L2Norm`).
Every file tensor's shape is then checked against the Keras weight it goes to, PyTorch OIHW
kernels become Keras HWIO, and every tensor becomes float32.  Which file holds how many
classes is read from its `conf` heads, so a COCO-shaped (81-class) SSD300 converts as is.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import keras
import numpy as np

from models.ssd300 import L2Normalization, build_ssd300
from models.vgg16 import VGG16_CONV_LAYERS
from transfer.errors import DetstyleError
from weights.checkpoint import Checkpoint
from weights.errors import WeightsError
from weights.torch_pth import REDUCEDFC_LAYOUT, SSD_LAYOUT

#: Layouts whose tensors are already named `<keras layer>/kernel` and `/bias` (HWIO).
KERAS_NAMED_LAYOUTS = ("keras-h5-legacy", "keras3-weights-h5", "onnx-vgg16", "keras-archive")

#: PyTorch's parameter name for each Keras weight name.
_TORCH_PARAM = {"kernel": "weight", "bias": "bias", "weight": "weight"}


class CheckpointMismatchError(DetstyleError, WeightsError):
    """The file's tensors do not fit the network (key set or shape); nothing was converted.

    Both a DetstyleError (the converter's failure) and a WeightsError (the file is not the
    network it claims to be, which the reader used to say), so either `except` catches it.
    """


class TorchSlot(NamedTuple):
    """Where one state-dict tensor goes: `layer.weights[position]`, with its PyTorch shape."""

    layer: str
    position: int
    shape: tuple[int, ...]


# ---------------------------------------------------------------------------------------
# Deriving ssd.pytorch's key names from the Keras graph
# ---------------------------------------------------------------------------------------


def _producers(model: keras.Model) -> dict[int, keras.layers.Layer]:
    """`{id(output tensor): layer}`, to walk the graph backwards through public attributes."""
    return {id(layer.output): layer for layer in model.layers}


def _chain(producers: dict[int, keras.layers.Layer], last: keras.layers.Layer, stop) -> list:
    """The single-input layers from just after `stop` (None: the input) up to `last`, in order."""
    chain = []
    layer = last
    while layer is not stop and not isinstance(layer, keras.layers.InputLayer):
        chain.append(layer)
        layer = producers[id(layer.input)]
    return chain[::-1]


def _head_convs(producers: dict[int, keras.layers.Layer], output: keras.layers.Layer) -> list:
    """The convs feeding the k-th input of the `loc` / `conf` concatenation: ssd.pytorch's `.k`."""
    convs = []
    for tensor in output.input:
        layer = producers[id(tensor)]
        while not isinstance(layer, keras.layers.Conv2D):  # the NHWC flattening in between
            layer = producers[id(layer.input)]
        convs.append(layer)
    return convs


def _modules_spent(layer: keras.layers.Layer, relu_is_module: bool) -> int:
    """How many ModuleList indices ssd.pytorch spends on this Keras layer.

    Padding is a `Conv2d` argument in PyTorch (no module); a fused Keras ReLU is a separate
    `nn.ReLU` in `vgg` but a plain function call after each `extras` conv.
    """
    if isinstance(layer, keras.layers.Conv2D):
        return 1 + (relu_is_module and layer.get_config()["activation"] == "relu")
    return int(isinstance(layer, keras.layers.MaxPooling2D))


def _numbered(list_name: str, layers: Iterable, relu_is_module: bool) -> list[tuple[str, keras.layers.Layer]]:
    """`(list_name.index, layer)` for every layer with weights, indices as the builders assign."""
    numbered, index = [], 0
    for layer in layers:
        if layer.weights:
            numbered.append((f"{list_name}.{index}", layer))
        index += _modules_spent(layer, relu_is_module)
    return numbered


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A Keras weight's shape as PyTorch stores it (HWIO kernels are OIHW there)."""
    return (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else tuple(shape)


def _slots(prefix: str, layer: keras.layers.Layer) -> dict[str, TorchSlot]:
    return {
        f"{prefix}.{_TORCH_PARAM[w.name]}": TorchSlot(layer.name, i, _torch_shape(tuple(w.shape)))
        for i, w in enumerate(layer.weights)
    }


def ssd_pytorch_keys(model: keras.Model) -> dict[str, TorchSlot]:
    """ssd.pytorch's state-dict key -> slot for every weight of a Keras SSD300, in its order.

    Sources are read from the heads (the k-th input of the `loc` concatenation is source k):
    source 0 is the L2Norm of conv4_3, source 1 ends `vgg` (conv7), the last ends `extras`.
    """
    producers = _producers(model)
    loc, conf = (_head_convs(producers, model.get_layer(name)) for name in model.output_names)
    sources = [producers[id(head.input)] for head in loc]
    l2norm, vgg_end, last = sources[0], sources[1], sources[-1]
    if not isinstance(l2norm, L2Normalization):
        raise DetstyleError(f"{model.name}: the first source is {l2norm.name}, not an L2Normalization")
    named = [
        *_numbered("vgg", _chain(producers, vgg_end, None), relu_is_module=True),
        ("L2Norm", l2norm),
        *_numbered("extras", _chain(producers, last, vgg_end), relu_is_module=False),
        *((f"loc.{k}", head) for k, head in enumerate(loc)),
        *((f"conf.{k}", head) for k, head in enumerate(conf)),
    ]
    return {key: slot for prefix, layer in named for key, slot in _slots(prefix, layer).items()}


@functools.lru_cache(maxsize=4)
def ssd300_torch_keys(num_classes: int = 21) -> Mapping[str, TorchSlot]:
    """:func:`ssd_pytorch_keys` of `build_ssd300(num_classes)`, read-only (cached: a build takes ~0.4 s)."""
    return MappingProxyType(ssd_pytorch_keys(build_ssd300(num_classes=num_classes)))


def ssd300_torch_shapes(num_classes: int = 21) -> dict[str, tuple[int, ...]]:
    """`{key: OIHW shape}` an ssd.pytorch SSD300 state dict with `num_classes` classes holds."""
    return {key: slot.shape for key, slot in ssd300_torch_keys(num_classes).items()}


# ---------------------------------------------------------------------------------------
# Matching a checkpoint against the derived keys
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TorchKeyReport:
    """What converting a state dict did, key by key (copied into the Keras layout or not)."""

    copied: list[str] = dataclasses.field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple, tuple]] = dataclasses.field(default_factory=list)  # key, file, expected
    missing: list[str] = dataclasses.field(default_factory=list)  # the network needs it, the file lacks it
    unexpected: list[str] = dataclasses.field(default_factory=list)  # in the file, not in the network

    @property
    def ok(self) -> bool:
        return not (self.shape_mismatch or self.missing or self.unexpected)

    def error_line(self, source, layout: str) -> str:
        """The first problem as one line (key set before shapes): what the CLI prints."""
        if self.missing or self.unexpected:
            parts = []
            if self.missing:
                parts.append(f"{len(self.missing)} missing key(s) {_short_list(self.missing)}")
            if self.unexpected:
                parts.append(f"{len(self.unexpected)} unexpected key(s) {_short_list(self.unexpected)}")
            return f"{source}: wrong key set for {layout}: " + "; ".join(parts)
        key, got, want = self.shape_mismatch[0]
        more = f" ({len(self.shape_mismatch) - 1} more wrong)" if len(self.shape_mismatch) > 1 else ""
        return f"{source}: {key} has shape {got}, expected {want} for {layout}{more}"


def _short_list(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def ssd300_num_classes(checkpoint: Checkpoint) -> int:
    """Classes (background included) of an ssd.pytorch file, from its `conf` heads' shapes.

    Each head has `boxes x classes` output channels; boxes per location come from our own
    one-class network, so no table is restated here.
    """
    found = {}
    for key, slot in ssd300_torch_keys(1).items():
        tensor = checkpoint.tensors.get(key)
        if not (key.startswith("conf.") and key.endswith(".weight")) or tensor is None or tensor.ndim != 4:
            continue  # absent or malformed heads are reported by the key/shape check
        boxes, out = slot.shape[0], int(tensor.shape[0])
        if out % boxes:
            raise CheckpointMismatchError(
                f"{checkpoint.source}: {key} has {out} output channels, not a multiple of {boxes} boxes per location"
            )
        found[key] = out // boxes
    if not found:
        raise CheckpointMismatchError(f"{checkpoint.source}: no conf heads, so the number of classes is unknown")
    if len(set(found.values())) != 1:
        raise CheckpointMismatchError(f"{checkpoint.source}: conf heads disagree on the number of classes: {list(found.values())}")
    return next(iter(found.values()))


def _expected_keys(checkpoint: Checkpoint) -> Mapping[str, TorchSlot]:
    """The derived keys a torch checkpoint of this layout must hold."""
    if checkpoint.layout == SSD_LAYOUT:
        return ssd300_torch_keys(ssd300_num_classes(checkpoint))
    if checkpoint.layout == REDUCEDFC_LAYOUT:  # the base-net file: the `vgg` list without its prefix
        return {k.removeprefix("vgg."): slot for k, slot in ssd300_torch_keys().items() if k.startswith("vgg.")}
    raise DetstyleError(f"{checkpoint.source}: layout {checkpoint.layout!r} is not an ssd.pytorch state dict")


def _to_keras(tensor: np.ndarray) -> np.ndarray:
    array = np.asarray(tensor, np.float32)
    return np.ascontiguousarray(array.transpose(2, 3, 1, 0)) if array.ndim == 4 else array.copy()


def _match(tensors: dict[str, np.ndarray], expected: Mapping[str, TorchSlot]) -> TorchKeyReport:
    report = TorchKeyReport(unexpected=[k for k in tensors if k not in expected])
    for key, slot in expected.items():
        if key not in tensors:
            report.missing.append(key)
        elif tuple(tensors[key].shape) != slot.shape:
            report.shape_mismatch.append((key, tuple(tensors[key].shape), slot.shape))
        else:
            report.copied.append(key)
    return report


def convert_torch_checkpoint(
    checkpoint: Checkpoint, layers: Iterable[str] | None = None
) -> tuple[dict[str, list[np.ndarray]], TorchKeyReport]:
    """An ssd.pytorch checkpoint (`ssd300-pth` or `vgg16-reducedfc-pth`) in Keras layout.

    Every key is checked; only layers whose every tensor fits are converted, and of those only
    `layers` when given.  Returns `({layer: weights in Keras order}, report)`.  A key or shape
    mismatch is left in the report (see :func:`_checked`) so callers can show it; only conf
    heads that give no class count raise CheckpointMismatchError.
    """
    expected = _expected_keys(checkpoint)
    report = _match(checkpoint.tensors, expected)
    wanted = None if layers is None else set(layers)
    broken = {expected[k].layer for k in report.missing} | {expected[k].layer for k, _, _ in report.shape_mismatch}
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key in report.copied:
        slot = expected[key]
        if slot.layer not in broken and (wanted is None or slot.layer in wanted):
            by_layer.setdefault(slot.layer, {})[slot.position] = _to_keras(checkpoint.tensors[key])
    return {layer: [w[i] for i in sorted(w)] for layer, w in by_layer.items()}, report


def _checked(checkpoint: Checkpoint, layers: Iterable[str] | None = None) -> dict[str, list[np.ndarray]]:
    """:func:`convert_torch_checkpoint`, refusing any mismatch with one line."""
    weights, report = convert_torch_checkpoint(checkpoint, layers)
    if not report.ok:
        raise CheckpointMismatchError(report.error_line(checkpoint.source, checkpoint.layout))
    return weights


# ---------------------------------------------------------------------------------------
# What the rest of the toolkit calls
# ---------------------------------------------------------------------------------------


def keras_weights_by_layer(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    """`{layer: [kernel, bias]}` of a checkpoint already named `<layer>/kernel`, `<layer>/bias`."""
    layers: dict[str, list[np.ndarray]] = {}
    for key in checkpoint.tensors:
        layer, _, _ = key.rpartition("/")
        if layer and f"{layer}/kernel" in checkpoint.tensors and f"{layer}/bias" in checkpoint.tensors:
            layers[layer] = [np.asarray(checkpoint.tensors[f"{layer}/{w}"], np.float32) for w in ("kernel", "bias")]
    return layers


def keras_weights_for_model(checkpoint: Checkpoint, model: keras.Model) -> dict[str, list[np.ndarray]]:
    """`{layer: [weights in the model's order]}` of a Keras-named checkpoint, matched by weight name.

    For networks whose layers hold more than a kernel and a bias (BatchNorm's gamma, beta,
    moving_mean, moving_variance all have shape (C,), so shapes alone cannot catch a swap):
    a layer's tensors are put in the order of the same-named layer's Keras weights by their
    names (legacy HDF5: `conv1_bn/gamma:0` -> `gamma`), or by index where the file numbers
    them (Keras 3 `.weights.h5`: `vars/0..3`, Keras's own variable order).  A layer of the
    model whose file tensors are named otherwise is a CheckpointMismatchError; layers absent
    from the model are returned in file order (the copy reports them as unused).
    """
    if checkpoint.layout not in KERAS_NAMED_LAYOUTS:
        raise CheckpointMismatchError(f"{checkpoint.source}: layout {checkpoint.layout!r} is not named by Keras layer; "
                                      f"only Keras/ONNX-named weights ({', '.join(KERAS_NAMED_LAYOUTS)}) fill this network")
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in checkpoint.tensors.items():
        layer, _, label = key.rpartition("/")
        by_layer.setdefault(layer, {})[label] = np.asarray(tensor, np.float32)
    targets = {layer.name: [w.name for w in layer.weights] for layer in model.layers if layer.weights}
    return {layer: _in_model_order(checkpoint.source, layer, tensors, targets.get(layer))
            for layer, tensors in by_layer.items()}


def _in_model_order(source, layer: str, tensors: dict[str, np.ndarray], names: list[str] | None) -> list[np.ndarray]:
    if names is None:
        return list(tensors.values())
    if sorted(tensors) == sorted(names):
        return [tensors[n] for n in names]
    if all(label.isdigit() for label in tensors) and len(tensors) == len(names):
        return [tensors[label] for label in sorted(tensors, key=int)]
    raise CheckpointMismatchError(f"{source}: layer {layer} holds weights {', '.join(tensors)}; "
                                  f"the network's {layer} needs {', '.join(names)}")


def backbone_weights_from_checkpoint(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    """The 13 VGG16 conv layers of any supported checkpoint (the profile is the registry's business).

    An ssd.pytorch file is checked whole (a broken head still means the file is not what it
    claims), but only the backbone is converted.
    """
    if checkpoint.layout in (SSD_LAYOUT, REDUCEDFC_LAYOUT):
        weights = _checked(checkpoint, VGG16_CONV_LAYERS)
    elif checkpoint.layout in KERAS_NAMED_LAYOUTS:
        weights = {k: v for k, v in keras_weights_by_layer(checkpoint).items() if k in VGG16_CONV_LAYERS}
    else:
        raise DetstyleError(f"{checkpoint.source}: layout {checkpoint.layout!r} holds no VGG16 backbone")
    if not weights:
        raise DetstyleError(f"{checkpoint.source}: no VGG16 conv layers found (layout {checkpoint.layout})")
    return weights


def ssd300_weights_from_checkpoint(checkpoint: Checkpoint) -> dict[str, list[np.ndarray]]:
    """Every SSD300 layer (VGG, conv6/7, L2Norm, extras, heads) from an ssd.pytorch file.

    Load it into `build_ssd300(num_classes=ssd300_num_classes(checkpoint))`.
    """
    if checkpoint.layout != SSD_LAYOUT:
        raise DetstyleError(f"{checkpoint.source}: not a full SSD300 checkpoint (layout {checkpoint.layout})")
    return _checked(checkpoint)


def save_backbone(backbone, path: str | Path, *, source: str, sha256: str | None = None) -> Path:
    """Write the toolkit's own format: truncated-VGG16 `.weights.h5` plus a JSON sidecar."""
    from transfer.io.images import atomic_write

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise DetstyleError(f"{path}: the output name must end in .weights.h5 (Keras 3 weights format)")
    atomic_write(path, lambda tmp: backbone.model.save_weights(_renamed(tmp)) or Path(_renamed(tmp)).replace(tmp))
    sidecar = path.with_name(path.name.removesuffix(".weights.h5") + ".json")
    meta = {
        "name": backbone.name, "source": source, "sha256": sha256, "architecture": backbone.ref.architecture,
        "preprocessing_profile": backbone.profile, "description": backbone.description,
        "copy_report": backbone.report.to_dict() if backbone.report else None,
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return path


def _renamed(tmp: str) -> str:
    """Keras insists on the `.weights.h5` suffix; write beside the temp file, then move."""
    return str(tmp) + ".weights.h5"
