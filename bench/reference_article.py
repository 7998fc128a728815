"""Seed 003, the SSD-backbone article's eager loop, re-implemented for measurement only.

As the article writes it: no `tf.function`, one Python iteration per step with a
`GradientTape`, the image held in 0..255 and clipped to [0, 255] after each step, style =
the *first five layers'* raw features (`block1_conv1, block1_conv2, block1_pool,
block2_conv1, block2_conv2`, no Gram matrix) with `reduce_mean(square(features - targets))`,
content = layer -2 (`block5_conv2`) with `0.5 * reduce_sum(square(...))`, weights 1 and
0.001, initialised with the content.

Not in the article, so chosen here and stated: caffe preprocessing of `image / 255` (our
backbone's profile; the article's later repository divides by 255 only), and the optimiser,
which the article passes in without showing: the tutorial's Keras Adam (beta_1 0.99,
epsilon 0.1) with the learning rate scaled to the 0..255 range, 0.02 * 255.  The per-step
cost, the point of this reference, does not depend on that choice.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bench.probe import Probe
from transfer.backbones.load import Backbone
from transfer.core.features import LAYER_PRESETS, feature_model
from transfer.core.preprocessing import preprocess

LEARNING_RATE = 0.02 * 255.0


class ArticleStyleTransfer:
    """The article's model: six outputs (five style layers, one content layer)."""

    def __init__(self, backbone: Backbone):
        self.model = feature_model(backbone.model, LAYER_PRESETS["article"])

    def get_features(self, data):
        outputs = self.model(preprocess(data / 255.0, "caffe"))
        return outputs[:-1], outputs[-1]

    def get_loss(self, style_target, style_feature, content_target, content_feature):
        style_loss = tf.add_n([tf.reduce_mean(tf.square(features - targets))
                               for features, targets in zip(style_feature, style_target)])
        content_loss = tf.add_n([0.5 * tf.reduce_sum(tf.square(content_feature - content_target))])
        return 1 * style_loss + 0.001 * content_loss


def run(content: np.ndarray, style: np.ndarray, backbone: Backbone, probe: Probe) -> None:
    """Optimise until the probe stops the loop; the probe sees the image scaled back to [0, 1]."""
    article = ArticleStyleTransfer(backbone)
    optimizer = keras.optimizers.Adam(learning_rate=LEARNING_RATE, beta_1=0.99, epsilon=1e-1)
    style_image = tf.constant(style[None] * 255.0)
    content_image = tf.constant(content[None] * 255.0)

    style_targets, _ = article.get_features(style_image)
    _, content_targets = article.get_features(content_image)
    generated_image = tf.Variable(tf.cast(content_image, dtype=tf.float32))

    while True:
        with tf.GradientTape() as tape:
            style_features, content_features = article.get_features(generated_image)
            loss = article.get_loss(style_targets, style_features, content_targets, content_features)
        gradients = tape.gradient(loss, generated_image)
        optimizer.apply_gradients([(gradients, generated_image)])
        generated_image.assign(tf.clip_by_value(generated_image, clip_value_min=0.0, clip_value_max=255.0))
        probe.step(lambda: generated_image.numpy()[0] / 255.0, loss=float(loss))
