"""Detection post-processing as ssd.pytorch's `Detect` + `nms`, by hand cases; files in, pixel
boxes, JSON and drawn boxes out.

The NMS expectations are worked out by hand from ssd.pytorch's algorithm (layers/box_utils.py:
ascending sort, keep the last `top_k`, pop the last, keep IoU <= overlap); the tie order's
premise (torch's CPU sort is stable for short inputs) is checked against torch itself.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from detection.detect import Detection, detect_images, network_input, save_detections
from models.detection_output import decode, nms, postprocess
from detection.draw import class_colour, draw_detections, line_width
from models.box_utils import point_form
from models.priors import VOC_300, prior_boxes
from models.ssd300 import build_ssd300

# ----------------------------------------------------------------------------- NMS by hand


def test_a_suppressed_box_suppresses_nothing():
    """A (0.9) overlaps B (0.8), B overlaps C (0.7), A and C are apart: B goes, so C stays."""
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)  # IoU(A,B) = IoU(B,C) = 1/3
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), overlap=0.3).tolist() == [0, 2]
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), overlap=0.4).tolist() == [0, 1, 2]


def test_iou_exactly_at_the_threshold_is_kept():
    """IoU 9/20 rounds to float32(0.45) exactly: `IoU.le(0.45)` keeps it; 10/20 is suppressed."""
    first = np.array([0, 0, 1, 15], np.float32)  # area 15
    at = np.array([first, [0, 6, 1, 20]], np.float32)  # area 14, overlap 9: (14 - 9) + 15 = 20
    above = np.array([first, [0, 5, 1, 20]], np.float32)  # area 15, overlap 10: (15 - 10) + 15 = 20
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(at, scores).tolist() == [0, 1]
    assert nms(above, scores).tolist() == [0]


def test_equal_scores_take_the_higher_index_first():
    """Stable ascending sort, then pop from the end: among ties the last candidate wins."""
    same_place = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert nms(same_place, np.array([0.5, 0.5], np.float32)).tolist() == [1]
    apart = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], np.float32)
    assert nms(apart, np.array([0.5, 0.7, 0.5], np.float32)).tolist() == [1, 2, 0]


def test_top_k_cuts_before_suppression_and_keeps_the_later_tie():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [40, 0, 50, 10]], np.float32)
    # A (0.9) and its overlapping B (0.8) fill top_k = 2; C (0.7) would have survived NMS but is cut
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), top_k=2).tolist() == [0]
    apart = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(4)], np.float32)
    assert nms(apart, np.array([0.9, 0.5, 0.5, 0.3], np.float32), top_k=2).tolist() == [0, 2]


def test_tie_order_premise_torch_sorts_short_inputs_stably():
    torch = pytest.importorskip("torch", reason="torch==2.13.0 is the oracle of torch.sort (make test installs it)")
    rng = np.random.default_rng(0)
    for n in range(1, 17):
        scores = rng.integers(0, 3, n).astype(np.float32) / 4
        _, order = torch.from_numpy(scores).sort(0)
        assert order.tolist() == np.argsort(scores, kind="stable").tolist()


# ----------------------------------------------------------------------------- decode and Detect


def test_decode_by_hand():
    prior = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    loc = np.array([[1.0, -1.0, np.log(2.0) / 0.2, 0.0]], np.float32)
    # cx = 0.5 + 1 * 0.1 * 0.2, cy = 0.5 - 0.1 * 0.4, w = 0.2 * 2, h = 0.4
    np.testing.assert_allclose(decode(loc, prior, (0.1, 0.2)), [[0.32, 0.26, 0.72, 0.66]], atol=1e-6)


def test_postprocess_per_class_with_an_empty_class():
    priors = np.array([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]], np.float32)
    logits = np.log(np.array([  # probabilities (softmax of logs): background, class 1, 2, 3
        [0.1, 0.6, 0.3, 0.0],
        [0.1, 0.7, 0.2, 0.0],  # beats prior 0 in class 1 (IoU 0.9): prior 0 is suppressed there
        [0.5, 0.4, 0.1, 0.0],  # class 3 has no box above 0.01 anywhere
    ], np.float32) + 1e-30)
    found = postprocess(np.zeros((3, 4), np.float32), logits, priors)
    assert [(c, round(s, 4)) for c, s, _ in found] == [(1, 0.7), (1, 0.4), (2, 0.3), (2, 0.1)]
    np.testing.assert_allclose(found[0][2], [0.21, 0.2, 0.41, 0.4], atol=1e-6)
    # `> conf_threshold`, strictly: a threshold equal to class 2's best leaves only above it
    strict = postprocess(np.zeros((3, 4), np.float32), logits, priors, conf_threshold=found[2][1])
    assert [c for c, _, _ in strict] == [1, 1]


# ----------------------------------------------------------------------------- files in, pixels out


def _fixed_model(loc: np.ndarray, conf: np.ndarray) -> keras.Model:
    """Ignores its 300x300 input and returns `(loc, conf)` for each image of the batch."""
    image = keras.Input((300, 300, 3))
    zeros = keras.layers.Lambda(lambda x: tf.zeros_like(x[:, :1, :1, 0]))(image)  # (B, 1, 1)
    return keras.Model(image, [keras.layers.Lambda(lambda z, c=c: z + c)(zeros) for c in (loc, conf)])


def test_network_input_resizes_and_applies_the_profile():
    image = np.ones((40, 70, 3), np.float32) * np.array([128, 64, 255], np.float32) / 255
    np.testing.assert_allclose(network_input(image, 300, "rgb_mean")[150, 10], [5, -53, 151], atol=1e-4)
    np.testing.assert_allclose(network_input(image, 300, "caffe")[0, 299], [151.061, -52.779, 4.32], atol=1e-3)
    assert network_input(image, 300, "rgb_mean").shape == (300, 300, 3)


def test_detections_json_is_in_pixels_of_the_original_image(tmp_path):
    priors = prior_boxes(VOC_300)
    target = int(np.argmin(np.abs(priors - [0.45, 0.55, 0.37, 0.37]).sum(1)))  # a 10x10-map prior, inside
    conf = np.zeros((len(priors), 4), np.float32)
    conf[:, 0] = 10.0
    conf[target, 2] = 20.0
    model = _fixed_model(np.zeros((len(priors), 4), np.float32), conf)
    path = tmp_path / "wide.png"
    Image.new("RGB", (400, 200), (90, 90, 90)).save(path)

    (result,) = detect_images(model, [path], "rgb_mean", 0.5, ["cat", "dog", "bird"])
    written = save_detections([result], tmp_path / "out")
    record = json.loads((tmp_path / "out" / "wide.json").read_text())
    assert (record["width"], record["height"], record["profile"]) == (400, 200, "rgb_mean")
    (det,) = record["detections"]
    expected = point_form(priors[target:target + 1]).numpy()[0] * [400, 200, 400, 200]
    assert det["label"] == "dog" and det["class_id"] == 2 and det["score"] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(det["box"], expected, atol=1e-3)

    drawn = np.asarray(Image.open(tmp_path / "out" / "wide_detections.png"))
    x0, y0, x1, y1 = np.round(expected).astype(int)
    is_box = (drawn == class_colour(2)).all(axis=-1)
    assert is_box[(y0 + y1) // 2, x0 - 1:x0 + 2].any() and is_box[y1 - 1:y1 + 2, (x0 + x1) // 2].any()  # edges
    assert tuple(drawn[(y0 + y1) // 2, (x0 + x1) // 2]) == (90, 90, 90)  # inside stays as it was
    assert sorted(p.name for p in written) == ["wide.json", "wide_detections.png"]


def test_detect_images_on_a_real_ssd_is_well_formed(tmp_path):
    model = build_ssd300(num_classes=3)
    paths = []
    for i, size in enumerate([(320, 240), (200, 300)]):
        pixels = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    results = detect_images(model, paths, "rgb_mean", 0.0, ["a", "b"], batch_size=1)
    for result, (width, height) in zip(results, [(320, 240), (200, 300)]):
        boxes = np.array([d.box for d in result.detections])
        scores = [d.score for d in result.detections]
        assert (result.width, result.height) == (width, height)
        assert 0 < len(scores) <= 2 * 200 and scores == sorted(scores, reverse=True) and min(scores) > 0.01
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= width and boxes[:, [1, 3]].max() <= height


def test_drawn_box_and_label_sit_where_the_detection_says():
    image = np.full((80, 100, 3), 0.5, np.float32)
    drawn = np.asarray(draw_detections(image, [Detection("dog", 1, 0.87, (10.0, 30.0, 60.0, 70.0))]))
    colour, grey = class_colour(1), tuple(drawn[0, 99])
    width = line_width(100, 80)
    assert all(tuple(drawn[y, 10 + dx]) == colour for y in range(35, 70) for dx in range(width))  # left edge
    assert all(tuple(drawn[50, 60 - dx]) == colour for dx in range(width))  # right edge
    assert tuple(drawn[50, 35]) == grey and tuple(drawn[75, 35]) == grey  # inside, below
    assert (drawn[:30, 10:60] == colour).all(axis=-1).sum() > 50  # the label band above the box
