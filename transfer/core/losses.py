"""Losses for image optimisation, normalised so one set of weights works everywhere.

* Style: Gram matrices divided by the number of positions (H*W), so a texture has the
  same Gram at any image size; each layer's error is divided by the squared norm of the
  style target's Gram, so a backbone whose activations are 100x larger (or a random
  one) gives the same loss scale.  Layers are averaged.
* Content: squared feature error divided by the target's squared norm (relative error).
* Total variation: mean squared difference of neighbouring pixels of the [0, 1] image;
  smooth (unlike the TF tutorial's L1 `tf.image.total_variation`), so L-BFGS and Adam
  both handle it well, and independent of the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) -> (B, C, C), divided by H*W."""
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], features.dtype)
    flat = tf.reshape(features, (shape[0], -1, shape[3]))
    return tf.matmul(flat, flat, transpose_a=True) / positions


def style_loss(features: Sequence[tf.Tensor], target_grams: Sequence[tf.Tensor]) -> tf.Tensor:
    """Mean over layers of ||G(x) - G(style)||^2 / ||G(style)||^2 (per image in the batch)."""
    per_layer = []
    for feature, target in zip(features, target_grams):
        gram = gram_matrix(tf.cast(feature, tf.float32))
        error = tf.reduce_sum(tf.square(gram - target), axis=(1, 2))
        per_layer.append(error / (tf.reduce_sum(tf.square(target), axis=(1, 2)) + 1e-12))
    return tf.add_n(per_layer) / len(per_layer)


def content_loss(features: Sequence[tf.Tensor], targets: Sequence[tf.Tensor]) -> tf.Tensor:
    """Mean over layers of ||F(x) - F(content)||^2 / ||F(content)||^2."""
    per_layer = []
    for feature, target in zip(features, targets):
        feature = tf.cast(feature, tf.float32)
        error = tf.reduce_sum(tf.square(feature - target), axis=(1, 2, 3))
        per_layer.append(error / (tf.reduce_sum(tf.square(target), axis=(1, 2, 3)) + 1e-12))
    return tf.add_n(per_layer) / len(per_layer)


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Mean squared neighbour difference of (B, H, W, 3) images in [0, 1]."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy), axis=(1, 2, 3)) + tf.reduce_mean(tf.square(dx), axis=(1, 2, 3))
