"""SSD's MultiBox loss (Liu et al. 2016), following ssd.pytorch's `MultiBoxLoss`.

    L = (L_loc + L_conf) / N_pos

* L_loc: smooth-L1 (beta 1) between predicted and encoded offsets, positives only.
* L_conf: softmax cross-entropy over the positives and the hardest negatives, at most
  `negpos_ratio` (3) negatives per positive.  Why mining: ~8700 priors per image and a
  handful of objects -- without it the background class swamps the gradient.
* Both are summed over the batch and divided by the number of positives.

One deliberate difference from ssd.pytorch: positives are ranked *last* when mining (not
given loss 0), and the negative count is clamped to the negatives that exist, so exactly
`min(3 * positives, negatives)` negatives are chosen even when the net is already sure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from models import box_utils
from models.priors import VOC_300, PriorConfig, prior_boxes


def smooth_l1(x: tf.Tensor) -> tf.Tensor:
    """Element-wise smooth-L1 (Huber, delta 1), as `torch.nn.functional.smooth_l1_loss`."""
    ax = tf.abs(x)
    return tf.where(ax < 1.0, 0.5 * x * x, ax - 0.5)


def hard_negative_mask(
    conf_loss: tf.Tensor, positives: tf.Tensor, negpos_ratio: float = 3
) -> tf.Tensor:
    """The hardest negatives per image: `(B, N)` bool, disjoint from `positives`.

    Args:
      conf_loss: `(B, N)` per-prior cross-entropy against the target class.
      positives: `(B, N)` bool, priors matched to an object.
    """
    conf_loss = tf.stop_gradient(conf_loss)
    ranking_loss = tf.where(positives, -np.inf, conf_loss)  # positives rank last
    order = tf.argsort(ranking_loss, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)  # rank of each prior by loss
    num_pos = tf.reduce_sum(tf.cast(positives, tf.int32), axis=1, keepdims=True)
    num_negatives_available = tf.shape(positives)[1] - num_pos
    num_neg = tf.minimum(
        tf.cast(negpos_ratio * tf.cast(num_pos, tf.float32), tf.int32), num_negatives_available
    )
    return (rank < num_neg) & ~positives


def multibox_loss(
    loc_pred: tf.Tensor,
    conf_pred: tf.Tensor,
    loc_t: tf.Tensor,
    conf_t: tf.Tensor,
    negpos_ratio: float = 3,
) -> tuple[tf.Tensor, tf.Tensor]:
    """MultiBox loss from already matched targets.

    Args:
      loc_pred: `(B, N, 4)` predicted offsets; conf_pred: `(B, N, C)` logits.
      loc_t: `(B, N, 4)` encoded targets; conf_t: `(B, N)` int class targets (0 background).

    Returns:
      `(loc_loss, conf_loss)`, each summed over the batch and divided by the number of
      positives (at least 1, so an empty batch gives a finite, pure-background loss).
    """
    conf_t = tf.cast(conf_t, tf.int32)
    positives = conf_t > 0
    num_pos = tf.maximum(tf.reduce_sum(tf.cast(positives, tf.float32)), 1.0)

    loc_error = tf.reduce_sum(smooth_l1(loc_pred - loc_t), axis=-1)
    loc_loss = tf.reduce_sum(tf.where(positives, loc_error, 0.0))

    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=conf_t, logits=conf_pred)  # (B, N)
    selected = positives | hard_negative_mask(ce, positives, negpos_ratio)
    conf_loss = tf.reduce_sum(tf.where(selected, ce, 0.0))
    return loc_loss / num_pos, conf_loss / num_pos


Target = Mapping[str, object] | Sequence[object]


def _boxes_and_labels(target: Target):
    """A target is `{"boxes", "labels"}` (like `detect()` output) or a `(boxes, labels)` pair."""
    if isinstance(target, Mapping):
        return target["boxes"], target["labels"]
    boxes, labels = target
    return boxes, labels


def match_batch(
    targets: Sequence[Target],
    priors,
    threshold: float = 0.5,
    variances: Sequence[float] = box_utils.VARIANCES,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Match every image's targets to the priors: `loc_t (B, N, 4)`, `conf_t (B, N)`."""
    matched = [
        box_utils.match(*_boxes_and_labels(t), priors, threshold, variances) for t in targets
    ]
    return tf.stack([m[0] for m in matched]), tf.stack([m[1] for m in matched])


class MultiBoxLoss:
    """Matching plus :func:`multibox_loss`, for one prior configuration.

    Args:
      config: the priors the network predicts against.
      threshold: IoU above which a prior is a positive (0.5).
      negpos_ratio: hard negatives per positive (3).

    Call with `(loc_pred, conf_pred), targets` where `targets` holds one
    `{"boxes": (G, 4) xmin,ymin,xmax,ymax in 0..1, "labels": (G,) in 1..C-1}` per image;
    returns `(loc_loss, conf_loss)`.
    """

    def __init__(
        self, config: PriorConfig = VOC_300, threshold: float = 0.5, negpos_ratio: float = 3
    ):
        self.config = config
        self.priors = tf.constant(prior_boxes(config))
        self.threshold = threshold
        self.negpos_ratio = negpos_ratio

    def __call__(self, predictions, targets: Sequence[Target]) -> tuple[tf.Tensor, tf.Tensor]:
        loc_pred, conf_pred = predictions
        if loc_pred.shape[1] is not None and loc_pred.shape[1] != self.priors.shape[0]:
            raise ValueError(
                f"the network predicts {loc_pred.shape[1]} boxes but the config has "
                f"{self.priors.shape[0]} priors"
            )
        loc_t, conf_t = match_batch(targets, self.priors, self.threshold, self.config.variances)
        return multibox_loss(loc_pred, conf_pred, loc_t, conf_t, self.negpos_ratio)
