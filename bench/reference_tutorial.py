"""Seed 000, the TensorFlow tutorial's loop, re-implemented for measurement only.

Kept as the tutorial writes it: a `StyleContentModel` returning Gram matrices (einsum /
`num_locations`) and content features, `style_content_loss` with weights 1e-2 and 1e4 split
over the layers, `30 * tf.image.total_variation`, a `tf.function` `train_step` with Keras
Adam(0.02, beta_1=0.99, epsilon=0.1), the image in [0, 1] clipped after every step,
initialised with the content.  What differs is only what the comparison needs: VGG16 (our
network and weights, through `feature_model`) instead of Keras VGG19, caffe preprocessing
from `transfer.core.preprocessing`, the targets passed to `style_content_loss` instead of read
from globals, and `train_step` returns its loss so the probe can record it.

The bf16 baseline (issue 21: "a fair baseline for bf16") is this same loop on a backbone in
Keras `mixed_bfloat16` (`with_precision(backbone, "bf16")`): the one added line casts the
features to float32, so the Grams and losses stay fp32 (a no-op for an fp32 backbone).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bench.probe import Probe
from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, feature_model
from transfer.core.preprocessing import preprocess

content_layers = ["block5_conv2"]
style_layers = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
num_content_layers = len(content_layers)
num_style_layers = len(style_layers)
style_weight = 1e-2
content_weight = 1e4
total_variation_weight = 30


def gram_matrix(input_tensor):
    result = tf.linalg.einsum("bijc,bijd->bcd", input_tensor, input_tensor)
    input_shape = tf.shape(input_tensor)
    num_locations = tf.cast(input_shape[1] * input_shape[2], tf.float32)
    return result / num_locations


class StyleContentModel(keras.models.Model):
    """The tutorial's extractor: `{"style": {name: gram}, "content": {name: features}}`."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.vgg = feature_model(backbone.model, LayerSpec(tuple(style_layers), tuple(content_layers)))
        self.vgg.trainable = False

    def call(self, inputs):
        "Expects float input in [0,1]"
        preprocessed_input = preprocess(inputs, "caffe")
        outputs = self.vgg(preprocessed_input)
        outputs = [tf.cast(output, tf.float32) for output in outputs]  # added: a bf16 backbone's Grams in fp32
        style_outputs, content_outputs = outputs[:num_style_layers], outputs[num_style_layers:]
        style_outputs = [gram_matrix(style_output) for style_output in style_outputs]
        content_dict = {name: value for name, value in zip(content_layers, content_outputs)}
        style_dict = {name: value for name, value in zip(style_layers, style_outputs)}
        return {"content": content_dict, "style": style_dict}


def style_content_loss(outputs, style_targets, content_targets):
    """The tutorial's loss; it reads the targets from globals, here they are passed in."""
    style_outputs = outputs["style"]
    content_outputs = outputs["content"]
    style_loss = tf.add_n([tf.reduce_mean((style_outputs[name] - style_targets[name]) ** 2)
                           for name in style_outputs.keys()])
    style_loss *= style_weight / num_style_layers

    content_loss = tf.add_n([tf.reduce_mean((content_outputs[name] - content_targets[name]) ** 2)
                             for name in content_outputs.keys()])
    content_loss *= content_weight / num_content_layers
    loss = style_loss + content_loss
    return loss


def clip_0_1(image):
    return tf.clip_by_value(image, clip_value_min=0.0, clip_value_max=1.0)


def run(content: np.ndarray, style: np.ndarray, backbone: Backbone, probe: Probe) -> None:
    """Optimise until the probe stops the loop; reports the tutorial's own loss every step."""
    extractor = StyleContentModel(backbone)
    style_targets = extractor(tf.constant(style[None]))["style"]
    content_targets = extractor(tf.constant(content[None]))["content"]

    opt = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)
    image = tf.Variable(content[None])

    @tf.function()
    def train_step(image):
        with tf.GradientTape() as tape:
            outputs = extractor(image)
            loss = style_content_loss(outputs, style_targets, content_targets)
            loss += total_variation_weight * tf.image.total_variation(image)
        grad = tape.gradient(loss, image)
        opt.apply_gradients([(grad, image)])
        image.assign(clip_0_1(image))
        return loss  # added for measurement: the loss of the image *before* this step's update

    while True:
        loss = train_step(image)
        probe.step(lambda: image.numpy()[0], loss=float(loss[0]))
