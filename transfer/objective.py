"""Objectives: what the optimiser minimises, as a function of the image parameters.

An objective owns its targets (content features, style Grams, computed once), knows the
space its parameters live in (this toolkit's default: RGB in [0, 1]; the seed recipes use
0-255 pixels or mean-subtracted space) and returns per-image loss terms including
`"total"`.  Optimisers only see `terms()`, `lower`/`upper` and the param conversions,
so the same Adam and L-BFGS code drives every recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from transfer.backbones import Backbone
from transfer.errors import DetstyleError
from transfer.features import LayerSpec, feature_model
from transfer.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from transfer.preprocessing import preprocess


class Objective:
    """Base: parameters are RGB pixels in [0, 1]; subclasses override the loss terms."""

    #: Valid parameter range (clip for Adam, box bounds for L-BFGS); None = unbounded.
    lower: float | None = 0.0
    upper: float | None = 1.0
    #: Whether `tv_smoothing` (a Charbonnier eps variable, or None = exact) is honoured;
    #: objectives with an L1 total variation set it (schedules.py smooths TV early).
    supports_tv_smoothing: bool = False

    def __init__(self, backbone: Backbone, spec: LayerSpec):
        self.backbone = backbone
        self.spec = spec
        self.model = feature_model(backbone.model, spec)
        self.n_style = len(spec.style)

    # -- parameter space --------------------------------------------------------------
    def to_param(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(pixels, np.float32)

    def to_pixels(self, param: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(param, np.float32), 0.0, 1.0)

    def network_input(self, param: tf.Tensor) -> tf.Tensor:
        return preprocess(param, self.backbone.profile)

    # -- features and targets ---------------------------------------------------------
    def features(self, param: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        outputs = self.model(self.network_input(param), training=False)
        outputs = [tf.cast(o, tf.float32) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        return outputs[: self.n_style], outputs[self.n_style :]

    def style_statistic(self, feature: tf.Tensor) -> tf.Tensor:
        return gram_matrix(feature)

    def set_targets(self, contents: np.ndarray, styles: Sequence[tuple[np.ndarray, float]]) -> None:
        """Content features of each content image; style statistics blended by weight."""
        total = sum(w for _, w in styles)
        if not styles or total <= 0:
            raise DetstyleError("style weights must add up to a positive number")
        blended = None
        for image, weight in styles:
            feats, _ = self.features(tf.constant(self.to_param(image[None])))
            stats = [self.style_statistic(f) * (weight / total) for f in feats]
            blended = stats if blended is None else [a + b for a, b in zip(blended, stats)]
        self.style_targets = blended
        self.content_targets = self.features(tf.constant(self.to_param(contents)))[1]

    # -- the loss -----------------------------------------------------------------------
    def terms(self, param: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError


class NormalisedObjective(Objective):
    """This toolkit's default: relative Gram and feature errors, smooth TV (see losses.py)."""

    def __init__(self, backbone: Backbone, spec: LayerSpec, style_weight: float, content_weight: float,
                 tv_weight: float):
        super().__init__(backbone, spec)
        self.weights = (style_weight, content_weight, tv_weight)

    def terms(self, param: tf.Tensor) -> dict[str, tf.Tensor]:
        style_feats, content_feats = self.features(param)
        terms = {
            "style": style_loss(style_feats, self.style_targets),
            "content": content_loss(content_feats, self.content_targets),
            "tv": total_variation_loss(param),
        }
        sw, cw, tw = self.weights
        terms["total"] = sw * terms["style"] + cw * terms["content"] + tw * terms["tv"]
        return terms
