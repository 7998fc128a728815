"""Copy conv weights between networks by layer name, checking every shape.

The SSD-backbone article copied weights by walking two layer lists with index
arithmetic; one off-by-one there silently scrambles a network.  Here every tensor is
matched by name, every shape is compared, and the result says exactly what happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from transfer.errors import DetstyleError

WeightsByLayer = Mapping[str, Sequence[np.ndarray]]


class BackboneMismatchError(DetstyleError):
    """Shapes differ between source and target; nothing was copied."""


@dataclasses.dataclass
class CopyReport:
    """What `copy_backbone` did, layer by layer."""

    copied: list[str] = dataclasses.field(default_factory=list)
    shape_mismatch: list[tuple[str, list[tuple], list[tuple]]] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)  # in target, not in source
    unused: list[str] = dataclasses.field(default_factory=list)  # in source, not in target

    @property
    def ok(self) -> bool:
        return not self.shape_mismatch and not self.missing

    def summary(self) -> str:
        lines = [f"copied {len(self.copied)} layers: {', '.join(self.copied) or '-'}"]
        for name, src, dst in self.shape_mismatch:
            lines.append(f"shape mismatch {name}: source {src} vs target {dst}")
        if self.missing:
            lines.append(f"missing in source (left as initialised): {', '.join(self.missing)}")
        if self.unused:
            lines.append(f"unused source layers: {', '.join(self.unused)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """`{layer name: [kernel, bias, ...]}` for every layer of `model` that has weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def copy_backbone(
    source: keras.Model | WeightsByLayer,
    target: keras.Model,
    *,
    layers: Sequence[str] | None = None,
    allow_partial: bool = False,
) -> CopyReport:
    """Copy weights from `source` into the same-named layers of `target`.

    Args:
      source: a Keras model (e.g. an SSD300 whose VGG layers carry VGG16 names) or a
        mapping `{layer name: [kernel (HWIO), bias]}` produced by a checkpoint converter.
      target: the model to fill, e.g. the truncated VGG16.
      layers: restrict to these target layer names (default: every target layer with weights).
      allow_partial: copy what matches even if some layers mismatch or are missing.
        Without it, any mismatch or missing layer raises and *nothing* is copied.

    Returns:
      A `CopyReport` listing copied, shape-mismatched, missing and unused layers.
    """
    source_weights = layer_weights(source) if isinstance(source, keras.Model) else dict(source)
    wanted = list(layers) if layers is not None else [l.name for l in target.layers if l.weights]
    report = CopyReport()
    plan: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    for name in wanted:
        target_layer = target.get_layer(name)
        if name not in source_weights:
            report.missing.append(name)
            continue
        values = [np.asarray(v) for v in source_weights[name]]
        src_shapes = [tuple(v.shape) for v in values]
        dst_shapes = [tuple(w.shape) for w in target_layer.weights]
        if src_shapes != dst_shapes:
            report.shape_mismatch.append((name, src_shapes, dst_shapes))
            continue
        plan.append((target_layer, values))
    report.unused = sorted(set(source_weights) - set(wanted))
    if not report.ok and not allow_partial:
        raise BackboneMismatchError(
            "backbone copy refused (nothing copied): " + report.summary().replace("\n", "; ")
        )
    for target_layer, values in plan:
        target_layer.set_weights(values)
        report.copied.append(target_layer.name)
    return report
