"""The optimisation loop: update the pixels of an image to match content and style.

One compiled `tf.function` step: forward through the frozen feature model, the three
losses, the gradient with respect to the image, an Adam update, and clipping to [0, 1].
The targets (content features, style Gram matrices) are computed once per run.

The API is functional and batch-aware: images are `(B, H, W, 3)` and losses are per
image, so grids and video frames can reuse it; `callback` sees every step (progress bars,
snapshots, a web page) and nothing here prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from transfer.backbones import Backbone
from transfer.config import StyleConfig
from transfer.errors import DetstyleError, DivergenceError
from transfer.features import LayerSpec, feature_model, layer_spec
from transfer.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from transfer.preprocessing import preprocess

@dataclasses.dataclass
class StepInfo:
    """What a callback sees after each step (losses are per-run means, as floats)."""

    step: int
    steps: int
    losses: dict[str, float]
    seconds: float
    image: Callable[[], np.ndarray]  # call to fetch the current image(s); costs a copy


@dataclasses.dataclass
class StyleResult:
    image: np.ndarray  # (H, W, 3) for a single run, (B, H, W, 3) for a batch
    history: list[dict[str, float]]
    seconds: float
    config: StyleConfig


class StyleLoss:
    """The feature model plus loss definition for one backbone and layer choice."""

    def __init__(self, backbone: Backbone, spec: LayerSpec):
        self.backbone = backbone
        self.spec = spec
        self.model = feature_model(backbone.model, spec)
        self.n_style = len(spec.style)

    def features(self, images: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        outputs = self.model(preprocess(images, self.backbone.profile), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return list(outputs[: self.n_style]), list(outputs[self.n_style :])

    def style_targets(self, styles: Sequence[tuple[np.ndarray, float]]) -> list[tf.Tensor]:
        """Blend Gram matrices of several style images by weight (weights sum to 1)."""
        total = sum(w for _, w in styles)
        if total <= 0:
            raise DetstyleError("style weights must add up to a positive number")
        blended = None
        for image, weight in styles:
            feats, _ = self.features(tf.constant(image[None], tf.float32))
            grams = [gram_matrix(f) * (weight / total) for f in feats]
            blended = grams if blended is None else [a + b for a, b in zip(blended, grams)]
        return blended

    def content_targets(self, contents: np.ndarray) -> list[tf.Tensor]:
        _, feats = self.features(tf.constant(contents, tf.float32))
        return [tf.cast(f, tf.float32) for f in feats]

    def terms(self, images, style_grams, content_feats) -> dict[str, tf.Tensor]:
        style_feats, content_now = self.features(images)
        return {
            "style": style_loss(style_feats, style_grams),
            "content": content_loss(content_now, content_feats),
            "tv": total_variation_loss(images),
        }


def _as_styles(style) -> list[tuple[np.ndarray, float]]:
    if isinstance(style, np.ndarray):
        return [(style, 1.0)]
    return [(np.asarray(img, np.float32), float(w)) for img, w in style]


def initial_image(contents: np.ndarray, init: str, seed: int) -> np.ndarray:
    """`content`: start from the photo; `noise`: uniform noise around mid-grey."""
    if init == "content":
        return contents.copy()
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, contents.shape).astype(np.float32)


def stylize(
    content: np.ndarray,
    style,
    backbone: Backbone,
    config: StyleConfig | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> StyleResult:
    """Optimise an image so its features match `content` and its Grams match `style`.

    Args:
      content: float RGB in [0, 1], `(H, W, 3)`, or a batch `(B, H, W, 3)` of same-size
        contents sharing one style.
      style: `(h, w, 3)` array, or a list of `(array, weight)` pairs to blend styles.
      backbone: from `transfer.backbones.load_backbone`.
      config: a `StyleConfig`; defaults are the toolkit's recommendation.
      callback: called after every step with a `StepInfo`.
    Raises:
      DivergenceError: the loss became NaN/inf; `.last_good_image` holds the last finite image.
    """
    config = config or StyleConfig()
    config.validate()
    single = content.ndim == 3
    contents = np.asarray(content[None] if single else content, np.float32)
    spec = layer_spec(config.layers, config.style_layers, config.content_layers)
    loss = StyleLoss(backbone, spec)
    style_grams = loss.style_targets(_as_styles(style))
    content_feats = loss.content_targets(contents)
    tf.random.set_seed(config.seed)

    image = tf.Variable(initial_image(contents, config.init, config.seed), name="image")
    m = tf.Variable(tf.zeros_like(image))
    v = tf.Variable(tf.zeros_like(image))
    t = tf.Variable(0.0)
    weights = tf.constant([config.style_weight, config.content_weight, config.tv_weight], tf.float32)
    b1, b2, eps, lr = config.beta_1, config.beta_2, config.epsilon, config.learning_rate

    @tf.function(reduce_retracing=True)
    def step(style_grams, content_feats, weights):
        with tf.GradientTape() as tape:
            terms = loss.terms(image, style_grams, content_feats)
            total = weights[0] * terms["style"] + weights[1] * terms["content"] + weights[2] * terms["tv"]
            objective = tf.reduce_sum(total)
        grad = tape.gradient(objective, image)
        finite = tf.logical_and(tf.math.is_finite(objective), tf.reduce_all(tf.math.is_finite(grad)))
        if finite:  # a non-finite step changes nothing, so the image stays the last good one
            t.assign_add(1.0)
            m.assign(b1 * m + (1.0 - b1) * grad)
            v.assign(b2 * v + (1.0 - b2) * tf.square(grad))
            m_hat = m / (1.0 - tf.pow(b1, t))
            v_hat = v / (1.0 - tf.pow(b2, t))
            image.assign(tf.clip_by_value(image - lr * m_hat / (tf.sqrt(v_hat) + eps), 0.0, 1.0))
        terms["total"] = total
        losses = {k: tf.reduce_mean(x) for k, x in terms.items()}
        losses["finite"] = tf.cast(finite, tf.float32)
        return losses

    history: list[dict[str, float]] = []
    start = time.perf_counter()
    current = lambda: image.numpy()[0] if single else image.numpy()  # noqa: E731
    for i in range(1, config.steps + 1):
        losses = {k: float(x) for k, x in step(style_grams, content_feats, weights).items()}
        if not losses.pop("finite") or not all(np.isfinite(x) for x in losses.values()):
            raise DivergenceError(
                f"loss or gradient became non-finite at step {i} (loss {losses['total']:.4g}); lower "
                "--learning-rate or the loss weights. The last good image was kept.",
                last_good_image=current(), step=i,
            )
        history.append(losses)
        if callback is not None:
            callback(StepInfo(i, config.steps, losses, time.perf_counter() - start, current))
    final = current()
    return StyleResult(final, history, time.perf_counter() - start, config)
