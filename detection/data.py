"""SSD batches from VOC records as a `tf.data` pipeline: decode, augment, preprocess, match.

Each element is `(images, targets)`:

* `images`: `(B, size, size, 3)` float32, preprocessed like ssd.pytorch: resized to
  `size x size` (bilinear, aspect not kept), then the weights' preprocessing profile
  (`weights.registry`): channel order, minus its mean, times its scale -- for `rgb_mean`,
  RGB 0..255 minus (123, 117, 104), what the VOC SSD300 was trained on;
* `targets["loc_t"]` `(B, P, 4)` float32 and `targets["conf_t"]` `(B, P)` int32: every
  image's boxes matched to the P priors at IoU `threshold` (`models.box_utils.match`), so a
  training step needs no per-image Python;
* `targets["boxes"]` `(B, G, 4)` float32 relative 0..1 and `targets["labels"]` `(B, G)`
  int32, padded to the batch's largest G with label 0 (background: "no object").

Difficult objects are left out of training targets, as ssd.pytorch does (`keep_difficult`).

Reproducibility: augmentation runs in `tf.numpy_function` with a NumPy Generator seeded by
`(seed, epoch, index)`, and the shuffle order of each epoch comes from a stateless RNG seeded
by `(seed, epoch)`.  Parallel map calls keep their order (`deterministic=True`), so the same
arguments give the same batches however many threads run them.

Speed: JPEG decoding, resizing, preprocessing and matching are TensorFlow ops (parallel, off
the GIL); only augmentation is Python (about 5 ms per 300x300 sample on one core, see
`detection.augment`); batches are prefetched (`tf.data.AUTOTUNE`).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from detection import augment as augmentation
from detection.voc import VOCDataset
from models import box_utils
from models.priors import VOC_300, PriorConfig, prior_boxes
from weights.registry import PreprocessingProfile, get_profile


def _annotations(voc: VOCDataset, keep_difficult: bool):
    """All records' pixel boxes and labels, concatenated, with each record's offsets."""
    boxes, labels, offsets = [], [], [0]
    for record in voc.records:
        keep = np.ones(len(record.labels), bool) if keep_difficult else ~record.difficult
        boxes.append(record.boxes[keep])
        labels.append(record.labels[keep])
        offsets.append(offsets[-1] + int(keep.sum()))
    return (
        tf.constant(np.concatenate(boxes).reshape(-1, 4), tf.float32),
        tf.constant(np.concatenate(labels).astype(np.int32), tf.int32),
        tf.constant(offsets, tf.int64),
    )


def _epoch_order(num_images: int, seed: int, epoch: tf.Tensor, shuffle: bool) -> tf.Tensor:
    """Image indices of one epoch: a permutation fixed by `(seed, epoch)`, or in order."""
    if not shuffle:
        return tf.range(num_images, dtype=tf.int64)
    keys = tf.random.stateless_uniform([num_images], seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
    return tf.cast(tf.argsort(keys, stable=True), tf.int64)


def _augment_sample(image, boxes, labels, epoch, index, *, seed: int, size: int, fill):
    """`detection.augment.augment` seeded by `(seed, epoch, index)` (runs in numpy_function)."""
    rng = np.random.default_rng([seed, int(epoch), int(index)])
    image, boxes, labels = augmentation.augment(image, boxes, labels, rng, size, fill)
    return image, boxes, labels.astype(np.int32)


def _resize(image: tf.Tensor, boxes: tf.Tensor, size: int):
    """The evaluation path: the whole image resized, boxes divided by the original size."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.stack([shape[1], shape[0], shape[1], shape[0]])
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear")
    return image, boxes / scale


def _preprocess(image: tf.Tensor, profile: PreprocessingProfile) -> tf.Tensor:
    """RGB 0..255 -> what the network sees: channel order, minus the mean, times the scale."""
    if profile.channel_order == "BGR":
        image = image[..., ::-1]
    return (image - tf.constant(profile.mean, tf.float32)) * profile.scale


def _fill_colour(profile: PreprocessingProfile) -> tuple[float, ...]:
    """The profile's mean in RGB order: expanded canvas pixels become exactly 0 after preprocessing."""
    return tuple(profile.mean[::-1]) if profile.channel_order == "BGR" else tuple(profile.mean)


def _match(boxes: tf.Tensor, labels: tf.Tensor, priors: tf.Tensor, threshold: float, variances):
    """`box_utils.match` inside the graph; an image without boxes is all background."""
    return tf.cond(
        tf.shape(boxes)[0] > 0,
        lambda: box_utils.match(boxes, labels, priors, threshold, variances),
        lambda: (tf.zeros_like(priors), tf.zeros(tf.shape(priors)[:1], tf.int32)),
    )


def dataset(
    voc: VOCDataset,
    size: int = 300,
    batch_size: int = 8,
    augment: bool = True,
    seed: int = 0,
    profile: str | PreprocessingProfile = "rgb_mean",
    *,
    epochs: int = 1,
    shuffle: bool | None = None,
    config: PriorConfig = VOC_300,
    threshold: float = 0.5,
    keep_difficult: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of preprocessed images and matched SSD targets (see the module docstring).

    Args:
      voc: the records (`detection.voc.read_voc`).
      size: network input side.
      batch_size: images per batch.
      augment: ssd.pytorch's training augmentation (`detection.augment`); off for evaluation.
      seed: fixes augmentation and shuffling (non-negative).
      profile: a `weights.registry` preprocessing profile or its name (default `rgb_mean`).
      epochs: passes over the records; epoch numbers (0, 1, ...) enter the seeds.
      shuffle: reorder each epoch; default: when augmenting.
      config: the priors the network predicts against.
      threshold: IoU above which a prior is matched to a box.
      keep_difficult: also train on VOC's difficult objects.
      drop_remainder: drop a last, smaller batch (epochs run on as one stream of images).
    """
    if size < 1 or batch_size < 1 or epochs < 1 or seed < 0 or len(voc) == 0:
        raise ValueError(
            f"dataset needs size, batch_size, epochs >= 1, seed >= 0 and records; got size={size}, "
            f"batch_size={batch_size}, epochs={epochs}, seed={seed}, {len(voc)} records"
        )
    profile = get_profile(profile) if isinstance(profile, str) else profile
    shuffle = augment if shuffle is None else shuffle
    paths = tf.constant([str(record.path) for record in voc.records])
    all_boxes, all_labels, offsets = _annotations(voc, keep_difficult)
    priors = tf.constant(prior_boxes(config))
    augment_sample = functools.partial(_augment_sample, seed=seed, size=size, fill=_fill_colour(profile))

    def load(epoch, index):
        image = tf.io.decode_jpeg(tf.io.read_file(paths[index]), channels=3)
        boxes = all_boxes[offsets[index] : offsets[index + 1]]
        labels = all_labels[offsets[index] : offsets[index + 1]]
        if augment:
            image, boxes, labels = tf.numpy_function(
                augment_sample, [image, boxes, labels, epoch, index], [tf.float32, tf.float32, tf.int32],
                stateful=False,
            )
            image.set_shape([size, size, 3])
            boxes.set_shape([None, 4])
            labels.set_shape([None])
        else:
            image, boxes = _resize(image, boxes, size)
        loc_t, conf_t = _match(boxes, labels, priors, threshold, config.variances)
        targets = {"loc_t": loc_t, "conf_t": conf_t, "boxes": boxes, "labels": labels}
        return _preprocess(image, profile), targets

    num_images = len(voc)
    indices = tf.data.Dataset.range(epochs).flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(
            (tf.fill([num_images], epoch), _epoch_order(num_images, seed, epoch, shuffle))
        )
    )
    batches = (
        indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .padded_batch(batch_size, drop_remainder=drop_remainder)
        .prefetch(tf.data.AUTOTUNE)
    )
    total = epochs * num_images
    return batches.apply(tf.data.experimental.assert_cardinality(
        total // batch_size if drop_remainder else -(-total // batch_size)
    ))
