"""How far detection training moved each conv layer: relative L2 change of its weights, by layer name.

Why: the pipeline's figure shows what detection training does to style; this says where in
the network the change happened.  Per layer, `||W_after - W_before|| / ||W_before||` over all
its weights (kernel and bias together): 0 means untouched, 0.1 means a tenth of the layer's
norm moved.  Layers are matched by name and every shape is checked, so two networks that
differ anywhere are refused, never compared position by position.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from transfer.errors import DetstyleError


def _conv_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _weights(model: keras.Model, name: str, which: str) -> list[np.ndarray]:
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise DetstyleError(f"layer {name} is missing from the {which} network") from None
    return [np.asarray(w, np.float64) for w in layer.get_weights()]


def relative_l2(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> float:
    """`||after - before|| / ||before||` over all arrays together (inf when `before` is zero and `after` not)."""
    change = np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before)))
    norm = np.sqrt(sum(float(np.sum(b**2)) for b in before))
    if norm == 0:
        return 0.0 if change == 0 else float("inf")
    return float(change / norm)


def layer_movement(before_model: keras.Model, after_model: keras.Model,
                   layers: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """`(layer, relative L2 change)` for each conv layer of `before_model` (or `layers`), in its order.

    Raises DetstyleError when a layer is missing from either network or any weight's shape differs.
    """
    rows = []
    for name in layers if layers is not None else _conv_layers(before_model):
        before, after = _weights(before_model, name, "first"), _weights(after_model, name, "second")
        shapes = [b.shape for b in before], [a.shape for a in after]
        if shapes[0] != shapes[1]:
            raise DetstyleError(f"layer {name}: weight shapes {shapes[0]} before and {shapes[1]} after differ")
        rows.append((name, relative_l2(before, after)))
    return rows


def movement_markdown(rows: Sequence[tuple[str, float]], before: str, after: str) -> str:
    """The movement as a Markdown table, as the README quotes it."""
    lines = [f"Relative L2 change of each conv layer's weights, `{before}` -> `{after}`:", "",
             "| layer | ‖W_after − W_before‖ / ‖W_before‖ |", "|---|---:|"]
    lines += [f"| `{name}` | {value:.4g} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def write_movement(rows: Sequence[tuple[str, float]], out_dir: Path, before: str, after: str) -> list[Path]:
    """`layer_movement.md` and `layer_movement.json` in `out_dir` (each written whole or not at all)."""
    from transfer.io.images import atomic_write

    payload = {"before": before, "after": after, "measure": "||W_after - W_before|| / ||W_before||, kernel and bias",
               "layers": [{"layer": name, "relative_l2": value} for name, value in rows]}
    texts = {"layer_movement.md": movement_markdown(rows, before, after),
             "layer_movement.json": json.dumps(payload, indent=1)}
    return [atomic_write(out_dir / name, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
            for name, text in texts.items()]
