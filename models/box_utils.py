"""Box arithmetic for SSD: conversions, IoU, offset encoding and matching (NMS: `models.detection_output`).

These follow ssd.pytorch's `layers/box_utils.py` so that a converted checkpoint decodes
exactly as it did in PyTorch.  Everything accepts NumPy arrays or tensors and returns
tensors (float32 boxes, int32 labels/indices).

Conventions:
  * "center" form is `(cx, cy, w, h)` (priors); "point" form is `(xmin, ymin, xmax, ymax)`
    (ground truth and detections); both relative to the image (0..1).
  * Class labels are 1-based, `0` is background -- the same numbering that `detect()`
    returns, so detections can be fed back as training targets unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

#: ssd.pytorch's encoding variances: (center offsets, log sizes).
VARIANCES: tuple[float, float] = (0.1, 0.2)


def _as_boxes(boxes) -> tf.Tensor:
    return tf.convert_to_tensor(boxes, dtype=tf.float32)


def point_form(boxes) -> tf.Tensor:
    """`(cx, cy, w, h)` -> `(xmin, ymin, xmax, ymax)`."""
    boxes = _as_boxes(boxes)
    return tf.concat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)


def center_size(boxes) -> tf.Tensor:
    """`(xmin, ymin, xmax, ymax)` -> `(cx, cy, w, h)`."""
    boxes = _as_boxes(boxes)
    return tf.concat([(boxes[..., 2:] + boxes[..., :2]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)


def intersect(box_a, box_b) -> tf.Tensor:
    """Intersection areas `(A, B)` of two sets of point-form boxes."""
    box_a, box_b = _as_boxes(box_a), _as_boxes(box_b)
    max_xy = tf.minimum(box_a[:, None, 2:], box_b[None, :, 2:])
    min_xy = tf.maximum(box_a[:, None, :2], box_b[None, :, :2])
    inter = tf.maximum(max_xy - min_xy, 0.0)
    return inter[..., 0] * inter[..., 1]


def jaccard(box_a, box_b) -> tf.Tensor:
    """IoU `(A, B)` of two sets of point-form boxes (areas without ssd's "+1" pixel)."""
    box_a, box_b = _as_boxes(box_a), _as_boxes(box_b)
    inter = intersect(box_a, box_b)
    area_a = (box_a[:, 2] - box_a[:, 0]) * (box_a[:, 3] - box_a[:, 1])
    area_b = (box_b[:, 2] - box_b[:, 0]) * (box_b[:, 3] - box_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / tf.maximum(union, 1e-12)


def encode(matched, priors, variances: Sequence[float] = VARIANCES) -> tf.Tensor:
    """Regression targets of point-form `matched` boxes relative to center-form `priors`.

    `(g_cx - p_cx) / (v0 * p_w)`, `log(g_w / p_w) / v1` (and likewise for y, h): the
    variances whiten the targets so centre and size errors weigh alike in the loss.
    """
    matched, priors = _as_boxes(matched), _as_boxes(priors)
    g_cxcy = ((matched[..., :2] + matched[..., 2:]) / 2 - priors[..., :2]) / (
        variances[0] * priors[..., 2:]
    )
    g_wh = tf.math.log((matched[..., 2:] - matched[..., :2]) / priors[..., 2:]) / variances[1]
    return tf.concat([g_cxcy, g_wh], -1)


def decode(loc, priors, variances: Sequence[float] = VARIANCES) -> tf.Tensor:
    """Inverse of :func:`encode`: predicted offsets `loc` -> point-form boxes."""
    loc, priors = _as_boxes(loc), _as_boxes(priors)
    cxcy = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    wh = priors[..., 2:] * tf.exp(loc[..., 2:] * variances[1])
    return tf.concat([cxcy - wh / 2, cxcy + wh / 2], -1)


def match(
    truths,
    labels,
    priors,
    threshold: float = 0.5,
    variances: Sequence[float] = VARIANCES,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Assign ground truths to priors, as ssd.pytorch's `match`.

    Each prior takes the ground truth it overlaps most; below `threshold` IoU it is
    background.  Then every ground truth is *forced* onto its best prior (even below the
    threshold) so that no object goes unlearned; if two ground truths share a best prior,
    the later one wins (as in ssd.pytorch's loop).

    Args:
      truths: `(G, 4)` point-form ground-truth boxes (G may be 0).
      labels: `(G,)` class labels, 1-based (0 is background).
      priors: `(N, 4)` center-form priors.

    Returns:
      `loc_t (N, 4)` encoded regression targets (zeros where unmatched) and
      `conf_t (N,)` int32 class targets (0 = background).
    """
    truths, priors = _as_boxes(truths), _as_boxes(priors)
    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    num_priors = tf.shape(priors)[0]
    if truths.shape[0] == 0:  # an image without objects: everything is background
        return tf.zeros_like(priors), tf.zeros([num_priors], tf.int32)

    overlaps = jaccard(truths, point_form(priors))  # (G, N)
    best_prior_idx = tf.argmax(overlaps, axis=1, output_type=tf.int32)  # (G,)
    best_truth_overlap = tf.reduce_max(overlaps, axis=0)  # (N,)
    best_truth_idx = tf.argmax(overlaps, axis=0, output_type=tf.int32)  # (N,)

    # Force each truth onto its best prior; the highest truth index wins ties (deterministic,
    # unlike a scatter with duplicate indices).
    forced = tf.one_hot(best_prior_idx, num_priors, on_value=True, off_value=False)  # (G, N)
    truth_ids = tf.range(tf.shape(truths)[0], dtype=tf.int32)[:, None]
    forced_truth = tf.reduce_max(tf.where(forced, truth_ids, -1), axis=0)  # (N,)
    is_forced = forced_truth >= 0
    best_truth_idx = tf.where(is_forced, forced_truth, best_truth_idx)
    best_truth_overlap = tf.where(is_forced, 2.0, best_truth_overlap)

    conf = tf.gather(labels, best_truth_idx)
    conf = tf.where(best_truth_overlap < threshold, 0, conf)
    loc = encode(tf.gather(truths, best_truth_idx), priors, variances)
    loc = tf.where(conf[:, None] > 0, loc, 0.0)  # no (possibly inf) targets on background
    return loc, conf
