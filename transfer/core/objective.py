"""Objectives: what the optimiser minimises, as a function of the image parameters.

An objective is built with its targets (content features and blended style statistics,
computed once in `__init__`) and never changes after; `with_tv_eps` returns a copy that
shares the targets but smooths the total variation differently (a schedule's stage).
It knows the space its parameters live in (this toolkit's default: RGB in [0, 1]; the
seed recipes use 0-255 pixels or mean-subtracted space) and returns per-image loss terms
including `"total"`.  Optimisers only see `terms()`, `lower`/`upper` and the param
conversions, so the same Adam and L-BFGS code drives every recipe.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, feature_model
from transfer.core.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from transfer.core.preprocessing import preprocess
from transfer.core.style_transforms import STYLE_TRANSFORMS
from transfer.core.targets import TargetCache
from transfer.errors import DetstyleError

#: `[(image (h, w, 3) in [0, 1], blend weight), ...]`
Styles = Sequence[tuple[np.ndarray, float]]


class Objective:
    """Base: parameters are RGB pixels in [0, 1]; subclasses define the loss terms.

    Args:
      backbone: the feature network and its preprocessing profile.
      layers: which layers are style and content taps.
      contents: `(B, H, W, 3)` content images at the size this objective optimises.
      styles: style images (already at the size wanted) with blend weights.
    """

    #: Valid parameter range (clip for Adam, box bounds for L-BFGS); None = unbounded.
    lower: float | None = 0.0
    upper: float | None = 1.0
    #: Whether `with_tv_eps` means anything (objectives with an L1 total variation).
    has_l1_tv: bool = False
    #: The weight of the exact L1 total variation (`tf.image.total_variation` of the
    #: parameters) inside `terms()["total"]`, for solvers that treat it exactly
    #: (`transfer.core.proximal`); None when the objective has no such term.
    l1_tv_weight: float | None = None

    def __init__(self, backbone: Backbone, layers: LayerSpec, contents: np.ndarray, styles: Styles, *,
                 targets: TargetCache | None = None):
        self.backbone = backbone
        self.layers = layers
        self.model = feature_model(backbone.model, layers)
        self.n_style = len(layers.style)
        self.tv_eps: float | None = None
        styles = self.prepare_styles(contents, styles)
        style_targets = functools.partial(self._blended_style_statistics, styles)
        content_targets = lambda: self.features(tf.constant(self.to_param(contents)))[1]  # noqa: E731
        if targets is None:  # `targets`: a TargetCache that computes each target once (transfer.core.targets)
            self.style_targets, self.content_targets = style_targets(), content_targets()
        else:
            self.style_targets = targets.style(self, styles, style_targets)
            self.content_targets = targets.content(self, contents, content_targets)

    def with_tv_eps(self, eps: float | None) -> Objective:
        """A copy sharing the targets whose L1 total variation is Charbonnier-smoothed by `eps`."""
        if eps == self.tv_eps or not self.has_l1_tv:
            return self
        other = copy.copy(self)
        other.tv_eps = eps
        return other

    # -- parameter space --------------------------------------------------------------
    def to_param(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(pixels, np.float32)

    def to_pixels(self, param: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(param, np.float32), 0.0, 1.0)

    def network_input(self, param: tf.Tensor) -> tf.Tensor:
        return preprocess(param, self.backbone.profile)

    # -- features and targets ---------------------------------------------------------
    def features(self, param: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """`(style taps, content taps)` in float32; style taps already through `layers.style_transform`."""
        outputs = self.model(self.network_input(param), training=False)
        outputs = [tf.cast(o, tf.float32) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        return self.transform_style(outputs[: self.n_style]), outputs[self.n_style :]

    def transform_style(self, features: list[tf.Tensor]) -> list[tf.Tensor]:
        """The style taps as the style statistic sees them: raw, or e.g. SWAG's softmax.

        Applied here, once per forward pass, so the targets and the image being optimised
        go through the same transform whichever loss compares their Grams.
        """
        name = self.layers.style_transform
        if name is None:
            return features
        transform = STYLE_TRANSFORMS[name]
        return [transform(f) for f in features]

    def style_statistic(self, feature: tf.Tensor) -> tf.Tensor:
        return gram_matrix(feature)

    def prepare_styles(self, contents: np.ndarray, styles: Styles) -> Styles:
        """Hook for objectives that need the style at a particular size (the article's)."""
        return styles

    def _blended_style_statistics(self, styles: Styles) -> list[tf.Tensor]:
        total = sum(w for _, w in styles)
        if not styles or total <= 0:
            raise DetstyleError("style weights must add up to a positive number")
        blended = None
        for image, weight in styles:
            feats, _ = self.features(tf.constant(self.to_param(image[None])))
            stats = [self.style_statistic(f) * (weight / total) for f in feats]
            blended = stats if blended is None else [a + b for a, b in zip(blended, stats)]
        return blended

    # -- the loss -----------------------------------------------------------------------
    def terms(self, param: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def smooth_terms(self, param: tf.Tensor) -> dict[str, tf.Tensor]:
        """The terms without the exact L1 total variation; `"total"` is their sum.

        Only objectives with an `l1_tv_weight` define it.  A proximal solver differentiates
        this part and handles `l1_tv_weight * tf.image.total_variation(param)` exactly, so
        `terms(param)["total"] == smooth_terms(param)["total"] + that` (up to rounding).
        """
        raise NotImplementedError(f"{type(self).__name__} has no exact L1 total variation to split off")


class NormalisedObjective(Objective):
    """This toolkit's default: relative Gram and feature errors, smooth TV (see losses.py)."""

    def __init__(self, backbone: Backbone, layers: LayerSpec, contents: np.ndarray, styles: Styles, *,
                 style_weight: float, content_weight: float, tv_weight: float, targets: TargetCache | None = None):
        super().__init__(backbone, layers, contents, styles, targets=targets)
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


def build_objective(backbone: Backbone, spec, contents: np.ndarray, styles: Styles, *,
                    targets: TargetCache | None = None) -> Objective:
    """The objective a `RunSpec` asks for, with its targets: the toolkit's default or a seed recipe's.

    `targets`: a `TargetCache` shared by several objectives (a grid), so each target is computed once.
    """
    if spec.recipe:
        from transfer.seeds.recipes import RECIPE_OBJECTIVES

        return RECIPE_OBJECTIVES[spec.recipe](backbone, spec.layers, contents, styles, targets=targets)
    return NormalisedObjective(backbone, spec.layers, contents, styles, style_weight=spec.style_weight,
                               content_weight=spec.content_weight, tv_weight=spec.tv_weight, targets=targets)
