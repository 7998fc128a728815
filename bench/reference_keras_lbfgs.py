"""Seed 001, the Keras L-BFGS example, re-implemented for measurement only.

As the Keras example (`neural_style_transfer.py`, which the seed's article walks through)
writes it: the content, style and combination images go through the network *as one batch
of three* at every evaluation; Gram = F F^T unnormalised; style loss
`sum(square(S - C)) / (4 * 3**2 * (H*W)**2)` on `block1_conv1` ... `block5_conv1` with weight
1.0 / 5 each; content loss `sum(square(combination - base))` on `block5_conv2`, weight 0.025;
total variation `sum(pow(a + b, 1.25))`, weight 1.0; the variable is the *preprocessed*
image (caffe space, unbounded), initialised with the content; scipy `fmin_l_bfgs_b` with
an `Evaluator` whose `loss` computes loss and gradients together and whose `grads` returns
the cached gradients, restarted every `maxfun=20` evaluations as the example's loop does.

Differences, all for the comparison: VGG16 (our network and weights) instead of VGG19,
`tf.function` in place of `K.function` (both run one graph), a callback on each L-BFGS
iteration for the probe, and the image shown to the probe deprocessed to [0, 1] (clipped, as
the example's `deprocess_image` does, but not rounded to uint8).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy.optimize import fmin_l_bfgs_b

from bench.probe import Probe
from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, feature_model
from transfer.core.preprocessing import CAFFE_BGR_MEAN, preprocess

content_layer = "block5_conv2"
feature_layers = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
total_variation_weight = 1.0
style_weight = 1.0
content_weight = 0.025
MAXFUN = 20


def deprocess_image(x: np.ndarray) -> np.ndarray:
    """Caffe space (BGR, mean removed) -> RGB in [0, 1], as the example's `deprocess_image`."""
    x = x + np.asarray(CAFFE_BGR_MEAN)
    return (np.clip(x[..., ::-1], 0.0, 255.0) / 255.0).astype(np.float32)


def gram_matrix(x):
    features = tf.reshape(tf.transpose(x, (2, 0, 1)), (tf.shape(x)[2], -1))  # batch_flatten(permute)
    return tf.matmul(features, features, transpose_b=True)


def make_loss_and_grads(content: np.ndarray, style: np.ndarray, backbone: Backbone):
    """The example's `f_outputs = K.function([combination_image], [loss, grads])`."""
    img_nrows, img_ncols = content.shape[:2]
    model = feature_model(backbone.model, LayerSpec(tuple(feature_layers), (content_layer,)))
    base_image = preprocess(tf.constant(content[None]), "caffe")
    style_reference_image = preprocess(tf.constant(style[None]), "caffe")

    def style_loss(style, combination):
        S = gram_matrix(style)
        C = gram_matrix(combination)
        channels = 3
        size = img_nrows * img_ncols
        return tf.reduce_sum(tf.square(S - C)) / (4.0 * (channels**2) * (size**2))

    def content_loss(base, combination):
        return tf.reduce_sum(tf.square(combination - base))

    def total_variation_loss(x):
        a = tf.square(x[:, : img_nrows - 1, : img_ncols - 1, :] - x[:, 1:, : img_ncols - 1, :])
        b = tf.square(x[:, : img_nrows - 1, : img_ncols - 1, :] - x[:, : img_nrows - 1, 1:, :])
        return tf.reduce_sum(tf.pow(a + b, 1.25))

    @tf.function
    def f_outputs(combination_image):
        with tf.GradientTape() as tape:
            tape.watch(combination_image)
            input_tensor = tf.concat([base_image, style_reference_image, combination_image], axis=0)
            outputs = model(input_tensor)
            layer_features = outputs[-1]
            loss = content_weight * content_loss(layer_features[0], layer_features[2])
            for layer_features in outputs[:-1]:
                sl = style_loss(layer_features[1], layer_features[2])
                loss += (style_weight / len(feature_layers)) * sl
            loss += total_variation_weight * total_variation_loss(combination_image)
        return loss, tape.gradient(loss, combination_image)

    return f_outputs, base_image.numpy()


class Evaluator:
    """Computes loss and gradients in one pass; `grads` hands back the cached gradients."""

    def __init__(self, f_outputs, shape):
        self.f_outputs, self.shape = f_outputs, shape
        self.loss_value = None
        self.grad_values = None
        self.calls = 0

    def loss(self, x):
        assert self.loss_value is None
        self.calls += 1
        x = tf.constant(x.reshape(self.shape), tf.float32)
        loss_value, grad_values = self.f_outputs(x)
        self.loss_value = float(loss_value)
        self.grad_values = grad_values.numpy().flatten().astype("float64")
        return self.loss_value

    def grads(self, x):
        assert self.loss_value is not None
        grad_values = np.copy(self.grad_values)
        self.loss_value = None
        self.grad_values = None
        return grad_values


def run(content: np.ndarray, style: np.ndarray, backbone: Backbone, probe: Probe) -> None:
    """Restart `fmin_l_bfgs_b(maxfun=20)` until the probe stops; one probe step per iteration."""
    f_outputs, x = make_loss_and_grads(content, style, backbone)
    shape = x.shape
    evaluator = Evaluator(f_outputs, shape)
    seen = 0

    def on_iteration(xk):
        nonlocal seen
        calls, seen = evaluator.calls - seen, evaluator.calls
        probe.step(lambda: deprocess_image(xk.reshape(shape)[0]), evaluations=calls)

    while True:
        x, min_val, info = fmin_l_bfgs_b(evaluator.loss, x.flatten(), fprime=evaluator.grads,
                                         maxfun=MAXFUN, callback=on_iteration)
