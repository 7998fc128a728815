"""The cross-backbone matrix: every result scored by every backbone's own style loss.

A result made with backbone A naturally has a low style loss under A.  Scoring each result
under every backbone's normalised style loss (the toolkit's own, `transfer.core.losses`,
comparable across backbones because each layer is divided by the style Gram's norm) shows
whether a backbone wins everywhere or only on its own loss.  The judge (`judge.py`) gives
the neutral column.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, layer_spec
from transfer.core.objective import NormalisedObjective
from transfer.quality.inputs import checked_rgb, same_size


def cross_backbone_matrix(outputs: Mapping[str, np.ndarray], backbones: Mapping[str, Backbone],
                          content: np.ndarray, style: np.ndarray,
                          layers: LayerSpec | str = "gatys") -> dict[str, dict[str, float]]:
    """`{output name: {backbone name: normalised style loss}}` of each output against `style`.

    Outputs must have the content's size (the objective also holds content targets, with
    weight 0); the style may have any size.  Each backbone's style targets are computed once.
    """
    content = checked_rgb(content, "content")
    style = checked_rgb(style, "style")
    images = {name: checked_rgb(image, f"output {name!r}") for name, image in outputs.items()}
    for name, image in images.items():
        same_size(image, content, f"output {name!r} and content")
    spec = layer_spec(layers)
    matrix: dict[str, dict[str, float]] = {name: {} for name in images}
    for backbone_name, backbone in backbones.items():
        objective = NormalisedObjective(backbone, spec, content[None], [(style, 1.0)],
                                        style_weight=1.0, content_weight=0.0, tv_weight=0.0)
        for name, image in images.items():
            matrix[name][backbone_name] = float(objective.terms(tf.constant(image[None]))["style"][0])
    return matrix
