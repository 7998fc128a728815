"""SSD300 (Liu et al. 2016) as a Keras 3 functional model, layer-for-layer ssd.pytorch.

Why this exists: detstyle reuses a *detector's* backbone for style transfer.  The network
has ssd.pytorch's layers in ssd.pytorch's order (same shapes, paddings and sources), so a
checkpoint converter can derive where each file tensor goes by walking this graph; this
module knows no file format.  Its VGG16 part carries the Keras VGG16 layer names
(`block1_conv1` ... `block5_conv3`): style code written for `keras.applications` VGG16 then
runs on the detector's backbone unchanged (:func:`backbone`).

Architecture (input 300x300, RGB, already preprocessed):
  VGG16 convs (ReLU) with pools; block3_pool in ceil mode (75 -> 38), block5_pool 3x3/1;
  conv6 (1024, 3x3, dilation 6) and conv7 (1024, 1x1), both ReLU;
  extras_0..7 (1x1 / 3x3 alternating, ReLU); sources: L2-normalised block4_conv3, conv7,
  extras_1, 3, 5, 7; 3x3 heads `loc_k` / `conf_k` on each source, flattened in NHWC order
  and concatenated to `loc (B, N, 4)` and `conf (B, N, num_classes)` logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from models.detection_output import postprocess
from models.multibox_loss import MultiBoxLoss, Target, match_batch, multibox_loss
from models.priors import VOC_300, PriorConfig, prior_boxes
from models.vgg16 import VGG16_BLOCKS, until_stage5

#: (name, filters, kernel, stride) of the extra layers; stride-2 convs pad 1 explicitly,
#: the stride-1 3x3 ones pad 0 (ssd.pytorch's `add_extras` for size 300).
EXTRAS: tuple[tuple[str, int, int, int], ...] = (
    ("extras_0", 256, 1, 1),
    ("extras_1", 512, 3, 2),
    ("extras_2", 128, 1, 1),
    ("extras_3", 256, 3, 2),
    ("extras_4", 128, 1, 1),
    ("extras_5", 256, 3, 1),
    ("extras_6", 128, 1, 1),
    ("extras_7", 256, 3, 1),
)


# ---------------------------------------------------------------------------------------
# L2 normalisation of conv4_3
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="detstyle")
class L2Normalization(layers.Layer):
    """Channel-wise L2 normalisation with a learned per-channel scale (ParseNet).

    Why: conv4_3 activations are far larger than those of deeper sources; normalising
    them (and learning the scale, initialised to 20) lets one head design serve all maps.
    Computes `x / (sqrt(sum(x**2, channels)) + eps) * weight`, eps added to the *norm*
    exactly as ssd.pytorch does, so a converted checkpoint gives identical outputs.
    """

    def __init__(self, scale: float = 20.0, epsilon: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.epsilon = epsilon

    def build(self, input_shape):
        self.weight = self.add_weight(
            name="weight",
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.scale),
        )

    def call(self, inputs):
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(inputs), axis=-1, keepdims=True))
        return inputs / (norm + self.epsilon) * self.weight

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "epsilon": self.epsilon}


# ---------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------


def feature_map_sizes(input_size: int) -> tuple[int, ...]:
    """Side of each of the six source maps for a square input of `input_size`.

    Mirrors the layers: floor pools except block3_pool (ceil); stride-2 extras with pad 1
    give `ceil(n / 2)`; the unpadded 3x3 extras lose 2.  300 -> (38, 19, 10, 5, 3, 1).
    The smallest input that keeps all six maps non-empty is 268.
    """
    n = input_size // 2 // 2  # block1_pool, block2_pool
    conv4_3 = -(-n // 2)  # block3_pool, ceil mode
    conv7 = conv4_3 // 2  # block4_pool; block5_pool, conv6, conv7 keep the size
    extras_1 = -(-conv7 // 2)
    extras_3 = -(-extras_1 // 2)
    extras_5 = extras_3 - 2
    extras_7 = extras_5 - 2
    return (conv4_3, conv7, extras_1, extras_3, extras_5, extras_7)


def _check_sizes(input_size: int, config: PriorConfig) -> None:
    sizes = feature_map_sizes(input_size)
    if min(sizes) < 1:
        raise ValueError(
            f"input size {input_size} is too small for SSD300: source maps would be {sizes}; "
            "the smallest usable input is 268"
        )
    if len(config.feature_maps) != len(sizes) or tuple(config.feature_maps) != sizes:
        raise ValueError(
            f"input size {input_size} gives source maps {sizes}, but the prior config "
            f"expects {tuple(config.feature_maps)}: pass a matching PriorConfig"
        )


# ---------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------


def _vgg16_base(x):
    """VGG16 convs 1_1..5_3 with SSD's pools; returns `(conv4_3, block5_conv3)` outputs."""
    conv4_3 = None
    for block, n_convs, filters in VGG16_BLOCKS:
        for i in range(1, n_convs + 1):
            x = layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}"
            )(x)
        if block == 4:
            conv4_3 = x
        if block == 3:  # ceil mode (75 -> 38): "same" pads the odd edge, as ceil_mode does
            x = layers.MaxPooling2D(2, strides=2, padding="same", name="block3_pool")(x)
        elif block < 5:
            x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return conv4_3, x


def _extras(x) -> list:
    """The extra feature layers after conv7; returns the four source outputs (odd ones)."""
    sources = []
    for index, (name, filters, kernel, stride) in enumerate(EXTRAS):
        if stride == 2:  # PyTorch pads 1 on every side; Keras "same" would pad asymmetrically
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding="valid", activation="relu", name=name
        )(x)
        if index % 2 == 1:
            sources.append(x)
    return sources


def _heads(sources, config: PriorConfig, num_classes: int):
    """3x3 loc/conf convs on each source, flattened (NHWC order) and concatenated."""
    locs, confs = [], []
    for k, (source, boxes) in enumerate(zip(sources, config.boxes_per_location)):
        loc = layers.Conv2D(boxes * 4, 3, padding="same", name=f"loc_{k}")(source)
        conf = layers.Conv2D(boxes * num_classes, 3, padding="same", name=f"conf_{k}")(source)
        locs.append(layers.Reshape((-1, 4), name=f"loc_{k}_flat")(loc))
        confs.append(layers.Reshape((-1, num_classes), name=f"conf_{k}_flat")(conf))
    loc = layers.Concatenate(axis=1, name="loc")(locs)
    conf = layers.Concatenate(axis=1, name="conf")(confs)
    return loc, conf


def build_ssd300(
    num_classes: int = 21,
    config: PriorConfig = VOC_300,
    name: str = "ssd300",
    input_size: int | None = None,
) -> keras.Model:
    """Build an (untrained) SSD300.

    Args:
      num_classes: classes including background (21 for VOC).
      config: prior configuration; fixes the number of boxes per location and must agree
        with the feature-map sizes the input produces.
      name: model name.
      input_size: square input side; defaults to `config.image_size`.

    Returns:
      A model mapping `(B, size, size, 3)` preprocessed RGB to `[loc (B, N, 4),
      conf (B, N, num_classes)]` logits, N = `config.num_priors`.

    Raises:
      ValueError: if the input size's feature maps differ from `config.feature_maps`.
    """
    input_size = config.image_size if input_size is None else input_size
    _check_sizes(input_size, config)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="input_layer")
    conv4_3, x = _vgg16_base(inputs)
    x = layers.MaxPooling2D(3, strides=1, padding="same", name="block5_pool")(x)
    x = layers.Conv2D(1024, 3, dilation_rate=6, padding="same", activation="relu", name="conv6")(x)
    conv7 = layers.Conv2D(1024, 1, activation="relu", name="conv7")(x)
    sources = [L2Normalization(name="l2norm")(conv4_3), conv7, *_extras(conv7)]
    loc, conf = _heads(sources, config, num_classes)
    return keras.Model(inputs, [loc, conf], name=name)


def backbone(model: keras.Model) -> keras.Model:
    """The SSD's VGG16 part, input -> `block5_conv3`, sharing layers (and weights).

    Its layers carry the Keras VGG16 names, so style-transfer code picks feature layers
    (`block1_conv1`, `block5_conv2`, ...) exactly as on `keras.applications.VGG16`.
    """
    return until_stage5(model)


#: Alias used by the style-transfer article ("get the VGG16 of the SSD").
get_vgg16 = backbone


# ---------------------------------------------------------------------------------------
# Inference and training
# ---------------------------------------------------------------------------------------


def _priors_for(model: keras.Model, config: PriorConfig) -> tf.Tensor:
    priors = prior_boxes(config)
    n = model.outputs[0].shape[1]
    if n is not None and n != priors.shape[0]:
        raise ValueError(f"model predicts {n} boxes but the config has {priors.shape[0]} priors")
    return tf.constant(priors)


def detect(
    model: keras.Model,
    images,
    config: PriorConfig = VOC_300,
    conf_threshold: float = 0.01,
    nms_iou: float = 0.45,
    top_k: int = 200,
) -> list[dict[str, np.ndarray]]:
    """Run the detector and post-process exactly as ssd.pytorch's `Detect`.

    See :mod:`models.detection_output`: softmax over classes, decode with the config's
    variances, per-class NMS keeping at most `top_k` per class, no cut across classes.

    Args:
      images: `(B, size, size, 3)` already preprocessed.

    Returns:
      One dict per image: `boxes (K, 4)` xmin, ymin, xmax, ymax clipped to [0, 1],
      `scores (K,)`, `labels (K,)` int in 1..num_classes-1, best first.
    """
    priors = _priors_for(model, config).numpy()
    loc, conf = model(tf.convert_to_tensor(images, tf.float32), training=False)
    results = []
    for image_loc, image_conf in zip(np.asarray(loc), np.asarray(conf)):
        found = postprocess(image_loc, image_conf, priors, config.variances, conf_threshold, nms_iou, top_k)
        found.sort(key=lambda item: -item[1])  # stable: equal scores keep class, then NMS, order
        results.append({
            "boxes": np.clip(np.array([box for _, _, box in found], np.float32).reshape(-1, 4), 0.0, 1.0),
            "scores": np.array([score for _, score, _ in found], np.float32),
            "labels": np.array([c for c, _, _ in found], np.int64),
        })
    return results


def _loss_and_grads(model: keras.Model, images, loc_t, conf_t, negpos_ratio: float):
    """MultiBox loss of one forward pass and its gradients w.r.t. the trainable weights."""
    with tf.GradientTape() as tape:
        loc_pred, conf_pred = model(images, training=True)
        loc_loss, conf_loss = multibox_loss(loc_pred, conf_pred, loc_t, conf_t, negpos_ratio)
        loss = loc_loss + conf_loss
    return loc_loss, conf_loss, tape.gradient(loss, model.trainable_variables)


def _apply(model: keras.Model, optimizer, images, loc_t, conf_t, negpos_ratio: float):
    loc_loss, conf_loss, grads = _loss_and_grads(model, images, loc_t, conf_t, negpos_ratio)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loc_loss, conf_loss


def _as_results(loc_loss, conf_loss) -> dict[str, float]:
    return {
        "loss": float(loc_loss + conf_loss),
        "loc_loss": float(loc_loss),
        "conf_loss": float(conf_loss),
    }


def train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    images,
    targets: Sequence[Target],
    config: PriorConfig = VOC_300,
    loss_fn: MultiBoxLoss | None = None,
) -> dict[str, float]:
    """One eager gradient step on the MultiBox loss (for loops, :class:`SSDTrainer` is faster).

    Only `model.trainable_variables` are updated, so freezing the backbone
    (`layer.trainable = False`) trains the detector's heads alone.

    Args:
      images: `(B, size, size, 3)` preprocessed.
      targets: one `{"boxes": (G, 4) xmin,ymin,xmax,ymax in 0..1, "labels": (G,) in
        1..C-1}` (or a `(boxes, labels)` pair) per image.
      config: the priors the model predicts against.
      loss_fn: a :class:`MultiBoxLoss` to reuse (its config then wins over `config`).

    Returns:
      `{"loss", "loc_loss", "conf_loss"}` as Python floats, measured before the update.
    """
    loss_fn = loss_fn or MultiBoxLoss(config)
    _priors_for(model, loss_fn.config)
    # Matching needs no gradient (and has per-image shapes): do it eagerly, outside the tape.
    loc_t, conf_t = match_batch(
        targets, loss_fn.priors, loss_fn.threshold, loss_fn.config.variances
    )
    images = tf.convert_to_tensor(images, tf.float32)
    return _as_results(*_apply(model, optimizer, images, loc_t, conf_t, loss_fn.negpos_ratio))


class SSDTrainer:
    """MultiBox training for one model and optimizer, with the gradient step compiled.

    Why a class: `tf.function` must be traced once and reused; on CPU the compiled step is
    about 3x faster than the eager :func:`train_step`.  Matching stays eager (each image has
    its own number of objects), so the compiled part always sees `(B, N)` shapes.

    Example:
      trainer = SSDTrainer(model, keras.optimizers.Adam(1e-3))
      for images, targets in batches:
          losses = trainer(images, targets)  # {"loss", "loc_loss", "conf_loss"}
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        config: PriorConfig = VOC_300,
        threshold: float = 0.5,
        negpos_ratio: float = 3,
    ):
        _priors_for(model, config)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = MultiBoxLoss(config, threshold, negpos_ratio)
        self._step = tf.function(self._step_fn, reduce_retracing=True)

    def _step_fn(self, images, loc_t, conf_t):
        return _apply(self.model, self.optimizer, images, loc_t, conf_t, self.loss_fn.negpos_ratio)

    def __call__(self, images, targets: Sequence[Target]) -> dict[str, float]:
        """One step on a batch; returns the losses before the update as Python floats."""
        loss_fn = self.loss_fn
        loc_t, conf_t = match_batch(
            targets, loss_fn.priors, loss_fn.threshold, loss_fn.config.variances
        )
        return _as_results(*self._step(tf.convert_to_tensor(images, tf.float32), loc_t, conf_t))
