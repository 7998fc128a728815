"""The common yardstick: the seed-000 (TF tutorial) loss as a pure function of an image.

Every method optimises its own objective (ours is normalised, the article matches raw
features, the Keras example sums unnormalised Grams), so their own loss values cannot be
compared.  To compare "how good is the picture after t seconds", each method's image is
scored with one fixed function: the tutorial's loss, term for term:

* style: Gatys taps `block1_conv1` ... `block5_conv1`, Gram = F^T F / (H*W) (the tutorial's
  `gram_matrix` divides by `num_locations`), `reduce_mean` of the squared Gram error per
  layer, summed, times 1e-2 / 5;
* content: `block5_conv2`, `reduce_mean` of the squared feature error, times 1e4 / 1;
* total variation: `30 * tf.image.total_variation(image)`, an L1 sum over the [0, 1] image.

Images are float RGB in [0, 1] and go through caffe preprocessing, as `vgg19.preprocess_input
(image * 255)` does in the tutorial.  `tests/test_bench.py` checks that this function returns
the same number as the tutorial loop's own loss on the same image, so the two cannot drift.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, feature_model
from transfer.core.preprocessing import preprocess

TUTORIAL_LAYERS = LayerSpec(
    style=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    content=("block5_conv2",),
)
STYLE_WEIGHT = 1e-2
CONTENT_WEIGHT = 1e4
TV_WEIGHT = 30.0


def _batch(image: np.ndarray) -> tf.Tensor:
    image = np.asarray(image, np.float32)
    return tf.constant(image[None] if image.ndim == 3 else image)


def _gram(features: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(features)
    flat = tf.reshape(features, (shape[0], -1, shape[3]))
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(shape[1] * shape[2], tf.float32)


class Yardstick:
    """The tutorial loss for one (content, style) pair; targets are computed once.

    Calling it on an image returns the total as a float; `terms` gives the three weighted
    terms too.  The forward pass is a `tf.function` so scoring costs what a forward costs.
    """

    def __init__(self, content: np.ndarray, style: np.ndarray, backbone: Backbone):
        self.model = feature_model(backbone.model, TUTORIAL_LAYERS)
        self.n_style = len(TUTORIAL_LAYERS.style)
        self.n_content = len(TUTORIAL_LAYERS.content)
        self.shape = tuple(np.shape(content)[-3:-1])
        style_feats, _ = self._features(_batch(style))
        _, content_feats = self._features(_batch(content))
        self.style_targets = [_gram(f) for f in style_feats]
        self.content_targets = content_feats
        self._terms = tf.function(self._terms_graph, reduce_retracing=True)

    def _features(self, images: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        outputs = self.model(preprocess(images, "caffe"), training=False)
        return list(outputs[: self.n_style]), list(outputs[self.n_style :])

    def _terms_graph(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        style_feats, content_feats = self._features(images)
        style = tf.add_n([tf.reduce_mean(tf.square(_gram(f) - t)) for f, t in zip(style_feats, self.style_targets)])
        content = tf.add_n([tf.reduce_mean(tf.square(f - t)) for f, t in zip(content_feats, self.content_targets)])
        terms = {
            "style": style * STYLE_WEIGHT / self.n_style,
            "content": content * CONTENT_WEIGHT / self.n_content,
            "tv": TV_WEIGHT * tf.reduce_sum(tf.image.total_variation(images)),
        }
        terms["total"] = terms["style"] + terms["content"] + terms["tv"]
        return terms

    def terms(self, image: np.ndarray) -> dict[str, float]:
        """The weighted style, content and TV terms and their total, for one `(H, W, 3)` image."""
        return {k: float(v) for k, v in self._terms(_batch(image)).items()}

    def __call__(self, image: np.ndarray) -> float:
        return self.terms(image)["total"]


def tutorial_loss(image: np.ndarray, content: np.ndarray, style: np.ndarray, backbone: Backbone) -> dict[str, float]:
    """The seed-000 loss of `image` for this pair: a pure function (builds its targets each call)."""
    return Yardstick(content, style, backbone).terms(image)


class ObjectiveYardstick:
    """A run spec's own objective in float32 as a scorer (the `Scorer` protocol of bench.probe).

    Issue 21 times the default against the loss *of the default objective* that today's
    default reaches; every method is scored by this one fp32 objective, whatever precision or
    schedule it ran with, so a bf16 run is not credited with its own rounding.  The targets
    are built exactly as `stylize` builds them (`style_at`, `build_objective`), from the same
    arrays, so the scorer and the runs see identical pixels.
    """

    def __init__(self, content: np.ndarray, style: np.ndarray, backbone: Backbone, spec) -> None:
        from transfer.core.objective import build_objective
        from transfer.core.stylizer import style_at

        self.shape = tuple(np.shape(content)[:2])
        styles = [(style_at(np.asarray(style, np.float32), self.shape, spec.style_scale), 1.0)]
        self.objective = build_objective(backbone, spec, np.asarray(content, np.float32)[None], styles)
        self._terms = tf.function(self.objective.terms, reduce_retracing=True)

    def terms(self, image: np.ndarray) -> dict[str, float]:
        param = tf.constant(self.objective.to_param(np.asarray(image, np.float32)[None]))
        return {k: float(v[0]) for k, v in self._terms(param).items()}

    def __call__(self, image: np.ndarray) -> float:
        return self.terms(image)["total"]
