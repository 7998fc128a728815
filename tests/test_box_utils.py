"""Priors, box arithmetic, matching, NMS and the MultiBox loss (no network built here)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from models import box_utils
from models.multibox_loss import MultiBoxLoss, hard_negative_mask, match_batch, multibox_loss
from models.priors import COCO_300, VOC_300, PriorConfig, prior_boxes

# ---------------------------------------------------------------------------------------
# Priors
# ---------------------------------------------------------------------------------------


def _reference_priors(cfg: PriorConfig) -> np.ndarray:
    """ssd.pytorch's PriorBox.forward, transcribed loop for loop."""
    mean = []
    for k, f in enumerate(cfg.feature_maps):
        for i, j in itertools.product(range(f), repeat=2):
            f_k = cfg.image_size / cfg.steps[k]
            cx, cy = (j + 0.5) / f_k, (i + 0.5) / f_k
            s_k = cfg.min_sizes[k] / cfg.image_size
            mean += [cx, cy, s_k, s_k]
            s_k_prime = math.sqrt(s_k * (cfg.max_sizes[k] / cfg.image_size))
            mean += [cx, cy, s_k_prime, s_k_prime]
            for ar in cfg.aspect_ratios[k]:
                mean += [cx, cy, s_k * math.sqrt(ar), s_k / math.sqrt(ar)]
                mean += [cx, cy, s_k / math.sqrt(ar), s_k * math.sqrt(ar)]
    return np.clip(np.asarray(mean, np.float32).reshape(-1, 4), 0, 1)


def test_voc_priors_count_range_and_order():
    priors = prior_boxes(VOC_300)
    assert priors.shape == (8732, 4) == (VOC_300.num_priors, 4)
    assert VOC_300.boxes_per_location == (4, 6, 6, 6, 4, 4)
    assert priors.min() >= 0.0 and priors.max() <= 1.0
    np.testing.assert_allclose(priors, _reference_priors(VOC_300), atol=1e-6)


def test_voc_priors_hand_checked_values():
    p = prior_boxes(VOC_300)
    c0 = 0.5 / 37.5  # (j + 0.5) / (300 / 8): the divisor is image/step, not the map size 38
    r2 = math.sqrt(2)
    np.testing.assert_allclose(p[0], [c0, c0, 0.1, 0.1], atol=1e-6)  # s_k = 30/300
    s_prime = math.sqrt(0.1 * 60 / 300)  # sqrt(s_k * max_k / 300)
    np.testing.assert_allclose(p[1], [c0, c0, s_prime, s_prime], atol=1e-6)
    np.testing.assert_allclose(p[2], [c0, c0, 0.1 * r2, 0.1 / r2], atol=1e-6)
    np.testing.assert_allclose(p[3], [c0, c0, 0.1 / r2, 0.1 * r2], atol=1e-6)
    np.testing.assert_allclose(p[4, :2], [1.5 / 37.5, c0], atol=1e-6)  # next column j=1
    np.testing.assert_allclose(p[4 * 38, :2], [c0, 1.5 / 37.5], atol=1e-6)  # next row i=1
    second = 38 * 38 * 4  # first prior of the conv7 source (19x19, step 16, 6 boxes)
    np.testing.assert_allclose(p[second], [0.5 / 18.75, 0.5 / 18.75, 0.2, 0.2], atol=1e-6)
    r3 = math.sqrt(3)
    np.testing.assert_allclose(p[second + 4, 2:], [0.2 * r3, 0.2 / r3], atol=1e-6)
    # Last source: one 1x1 cell at the centre; the ratio-2 box is clipped to 1.
    np.testing.assert_allclose(p[-1], [0.5, 0.5, 0.88 / r2, 1.0], atol=1e-6)


def test_coco_config_priors():
    priors = prior_boxes(COCO_300)
    assert priors.shape == (8732, 4)
    np.testing.assert_allclose(priors[0, 2:], [0.07, 0.07], atol=1e-6)  # 21 / 300
    np.testing.assert_allclose(priors, _reference_priors(COCO_300), atol=1e-6)


def test_prior_config_rejects_inconsistent_lengths():
    with pytest.raises(ValueError, match="steps"):
        PriorConfig(steps=(8, 16))


# ---------------------------------------------------------------------------------------
# Box arithmetic
# ---------------------------------------------------------------------------------------


def test_point_form_center_size_round_trip_and_jaccard():
    center = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.3, 0.05, 0.1]], np.float32)
    point = box_utils.point_form(center)
    np.testing.assert_allclose(point[0], [0.4, 0.3, 0.6, 0.7], atol=1e-6)
    np.testing.assert_allclose(box_utils.center_size(point), center, atol=1e-6)
    iou = box_utils.jaccard([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0]], atol=1e-6)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    priors = prior_boxes(VOC_300)[::97]
    xy = rng.uniform(0.0, 0.6, (len(priors), 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.05, 0.4, (len(priors), 2))], 1).astype(
        np.float32
    )
    loc = box_utils.encode(boxes, priors, (0.1, 0.2))
    np.testing.assert_allclose(box_utils.decode(loc, priors, (0.1, 0.2)), boxes, atol=1e-5)
    # A box equal to its prior encodes to zero offsets.
    np.testing.assert_allclose(
        box_utils.encode(box_utils.point_form(priors), priors), 0.0, atol=1e-5
    )


def test_match_assigns_every_ground_truth_a_prior():
    priors = prior_boxes(VOC_300)
    truths = np.array(
        [
            [0.1, 0.1, 0.5, 0.6],
            [0.4, 0.3, 0.9, 0.8],
            [0.70, 0.70, 0.71, 0.72],
        ],  # last: tiny, IoU < 0.5
        np.float32,
    )
    labels = np.array([3, 7, 12])
    loc_t, conf_t = box_utils.match(truths, labels, priors)
    assert loc_t.shape == (8732, 4) and conf_t.shape == (8732,) and conf_t.dtype == tf.int32
    for label in labels:
        assert int(tf.reduce_sum(tf.cast(conf_t == label, tf.int32))) >= 1
    # The tiny box's best prior is forced onto it despite the low overlap.
    iou = box_utils.jaccard(truths, box_utils.point_form(priors)).numpy()
    best = iou[2].argmax()
    assert iou[2, best] < 0.5 and int(conf_t[best]) == 12
    # Positives decode back to their ground truth; negatives are background with zero targets.
    positives = conf_t.numpy() > 0
    decoded = box_utils.decode(loc_t, priors).numpy()[positives]
    owners = {3: 0, 7: 1, 12: 2}
    expected = truths[[owners[c] for c in conf_t.numpy()[positives]]]
    np.testing.assert_allclose(decoded, expected, atol=1e-5)
    assert np.all(loc_t.numpy()[~positives] == 0)


def test_match_shared_best_prior_goes_to_later_truth_and_empty_image():
    priors = np.array([[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]], np.float32)
    truths = np.array([[0.4, 0.4, 0.6, 0.6], [0.41, 0.41, 0.6, 0.6]], np.float32)
    _, conf_t = box_utils.match(truths, [1, 2], priors)
    assert conf_t.numpy().tolist() == [2, 0]  # ssd.pytorch's loop: the later truth wins
    loc_t, conf_t = box_utils.match(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), priors)
    assert conf_t.numpy().tolist() == [0, 0] and np.all(loc_t.numpy() == 0)


# ---------------------------------------------------------------------------------------
# MultiBox loss
# ---------------------------------------------------------------------------------------


def _toy_problem():
    """A 5x5 grid of priors (N=25), two images, one object each."""
    g = (np.arange(5) + 0.5) / 5
    cx, cy = np.meshgrid(g, g)
    priors = np.stack([cx.ravel(), cy.ravel(), np.full(25, 0.2), np.full(25, 0.2)], 1).astype(
        np.float32
    )
    targets = [
        {"boxes": np.array([[0.0, 0.0, 0.21, 0.2]], np.float32), "labels": np.array([2])},
        ([[0.38, 0.4, 0.62, 0.6]], [1]),  # a (boxes, labels) pair works too
    ]
    loc_t, conf_t = match_batch(targets, priors)
    return priors, loc_t, conf_t


def test_multibox_loss_prefers_the_right_prediction():
    _, loc_t, conf_t = _toy_problem()
    assert int(tf.reduce_sum(tf.cast(conf_t > 0, tf.int32))) == 2
    perfect_conf = 10.0 * tf.one_hot(conf_t, 3)
    loc_perfect, conf_perfect = multibox_loss(loc_t, perfect_conf, loc_t, conf_t)
    wrong_conf = 10.0 * tf.one_hot((conf_t + 1) % 3, 3)
    loc_wrong, conf_wrong = multibox_loss(loc_t + 0.7, wrong_conf, loc_t, conf_t)
    assert float(loc_perfect) == pytest.approx(0.0, abs=1e-6)
    assert float(conf_perfect) < 1e-3
    # loc: 4 coordinates x smooth-L1(0.7) = 4 * 0.245 per positive.
    assert float(loc_wrong) == pytest.approx(4 * 0.5 * 0.7**2, rel=1e-5)
    assert float(conf_wrong) > 10.0 > float(conf_perfect)


def test_hard_negative_count_is_three_per_positive():
    rng = np.random.default_rng(1)
    conf_loss = tf.constant(rng.uniform(0, 5, (3, 50)), tf.float32)
    positives = np.zeros((3, 50), bool)
    positives[0, [3, 7, 9]] = True  # 3 positives -> 9 negatives
    positives[1, :5] = True  # 5 -> 15
    positives[2, :20] = True  # 20 -> 60, clamped to the 30 negatives that exist
    neg = hard_negative_mask(conf_loss, tf.constant(positives)).numpy()
    assert neg.sum(axis=1).tolist() == [9, 15, 30]
    assert not np.any(neg & positives)
    # They are the hardest negatives: each chosen one has a loss >= every unchosen negative.
    losses = conf_loss.numpy()
    for b in range(2):
        chosen, rest = losses[b][neg[b]], losses[b][~neg[b] & ~positives[b]]
        assert chosen.min() >= rest.max()


def test_multibox_loss_class_checks_prior_count():
    loss_fn = MultiBoxLoss(VOC_300)
    with pytest.raises(ValueError, match="priors"):
        loss_fn((tf.zeros((1, 10, 4)), tf.zeros((1, 10, 21))), [([[0, 0, 1, 1]], [1])])
