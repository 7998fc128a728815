"""VOC mAP against values worked out by hand (no TensorFlow, no reference implementation)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from detection.evaluate import evaluate, evaluate_class, voc_ap
from detection.voc import VOCRecord

CLASSES = ("cat", "dog", "bird")  # labels 1, 2, 3


def _record(image_id: str, objects, size: int = 100) -> VOCRecord:
    """objects: (label, (xmin, ymin, xmax, ymax) 0-based pixels, difficult)."""
    return VOCRecord(
        id=image_id,
        path=Path(f"{image_id}.jpg"),
        width=size,
        height=size,
        boxes=[o[1] for o in objects],
        labels=[o[0] for o in objects],
        difficult=[o[2] for o in objects],
    )


def _detections(rows, size: int = 100):
    """rows: (label, score, pixel box) -> detect()-style dict with relative boxes."""
    return {
        "boxes": np.array([r[2] for r in rows], np.float64).reshape(-1, 4) / size,
        "scores": np.array([r[1] for r in rows], np.float64),
        "labels": np.array([r[0] for r in rows], np.int64),
    }


# Image A: cat a1 (0,0,10,10); cat a2 (50,50,60,60) DIFFICULT; dog (20,20,40,40).
# Image B: cat b1 (0,0,20,20); cat b2 (40,40,50,50).  No bird anywhere.
RECORDS = (
    _record("A", [(1, (0, 0, 10, 10), False), (1, (50, 50, 60, 60), True), (2, (20, 20, 40, 40), False)]),
    _record("B", [(1, (0, 0, 20, 20), False), (1, (40, 40, 50, 50), False)]),
)
DETECTIONS = (
    _detections([
        (1, 0.9, (0, 0, 10, 10)),    # cat: a1 exactly -> TP
        (1, 0.8, (1, 0, 11, 10)),    # cat: IoU with a1 = 90/110 = 0.82 but a1 is taken -> FP (duplicate)
        (1, 0.7, (50, 50, 60, 60)),  # cat: the difficult a2 -> ignored (neither TP nor FP)
        (2, 0.3, (20, 20, 40, 40)),  # dog: exact -> TP
        (3, 0.5, (0, 0, 10, 10)),    # bird: no bird ground truth anywhere
    ]),
    _detections([
        (1, 0.6, (0, 0, 20, 20)),    # cat: b1 -> TP
        (1, 0.5, (70, 70, 80, 80)),  # cat: overlaps nothing -> FP
        (1, 0.4, (40, 40, 50, 50)),  # cat: b2 -> TP
        (2, 0.95, (20, 20, 40, 40)), # dog: no dog in B -> FP
    ]),
)

# cat, npos = 3 (a1, b1, b2; a2 is difficult).  Ranked: 0.9 TP, 0.8 FP, 0.7 ignored, 0.6 TP, 0.5 FP, 0.4 TP
#   cumulative TP 1 1 1 2 2 3, FP 0 1 1 1 2 2
#   recall    1/3 1/3 1/3 2/3 2/3 1
#   precision 1   1/2 1/2 2/3 1/2 3/5
# 11-point: t = 0, .1, .2, .3 -> max precision at recall >= t is 1; t = .4, .5, .6 -> 2/3 (recall 2/3 and 1);
#   t = .7 .. 1 -> 3/5 (recall 1 only).  AP = (4 * 1 + 3 * 2/3 + 4 * 3/5) / 11 = 8.4 / 11
# area: envelope over recall 1/3 -> 1, 2/3 -> 2/3, 1 -> 3/5:  AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45
CAT_RECALL = [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1]
CAT_PRECISION = [1, 1 / 2, 1 / 2, 2 / 3, 1 / 2, 3 / 5]
CAT_AP07, CAT_AREA = 8.4 / 11, 34 / 45
# dog, npos = 1.  Ranked: 0.95 FP (image B), 0.3 TP.  recall 0, 1; precision 0, 1/2.
# 11-point: every t has recall 1 available with precision 1/2 -> AP 1/2.  area: 1 * 1/2 = 1/2.
DOG_AP07 = DOG_AREA = 0.5
# bird: no ground truth -> AP nan, left out of the means.


def test_hand_computed_map_with_difficult_duplicate_and_class_without_ground_truth():
    result = evaluate(DETECTIONS, RECORDS, CLASSES)
    cat, dog, bird = result.classes
    assert (cat.name, cat.label, cat.npos, dog.npos, bird.npos) == ("cat", 1, 3, 1, 0)
    np.testing.assert_allclose(cat.recall, CAT_RECALL)
    np.testing.assert_allclose(cat.precision, CAT_PRECISION)
    assert cat.ap_voc07 == pytest.approx(CAT_AP07) and cat.ap_area == pytest.approx(CAT_AREA)
    np.testing.assert_allclose(dog.recall, [0, 1])
    np.testing.assert_allclose(dog.precision, [0, 0.5])
    assert dog.ap_voc07 == pytest.approx(DOG_AP07) and dog.ap_area == pytest.approx(DOG_AREA)
    assert math.isnan(bird.ap_voc07) and math.isnan(bird.ap_area)
    assert result.map_voc07 == pytest.approx((CAT_AP07 + DOG_AP07) / 2)  # 0.6318...
    assert result.map_area == pytest.approx((CAT_AREA + DOG_AREA) / 2)  # 113/180 = 0.6278


def test_class_with_ground_truth_but_no_detection_scores_zero():
    no_dogs = tuple({key: value[found["labels"] != 2] for key, value in found.items()} for found in DETECTIONS)
    dog = evaluate(no_dogs, RECORDS, CLASSES).classes[1]
    assert dog.npos == 1 and dog.ap_voc07 == 0.0 and dog.ap_area == 0.0


def test_iou_has_no_plus_one_pixel():
    # GT (0,0,2,2) vs detection (0,0,3,3): IoU 4/9 = 0.44 here -> FP.  With the VOCdevkit's +1
    # it would be 9/16 = 0.56 -> TP.  ssd.pytorch's eval.py, followed here, has no +1.
    records = [_record("C", [(1, (0, 0, 2, 2), False)])]
    cat = evaluate_class([_detections([(1, 0.9, (0, 0, 3, 3))])], records, label=1)
    assert cat.ap_voc07 == 0.0 and cat.ap_area == 0.0


def test_iou_threshold_is_strict():
    # GT (0,0,10,10), detection (0,0,10,20): IoU exactly 100/200 = 0.5 -> not a match (> 0.5 needed).
    records = [_record("D", [(1, (0, 0, 10, 10), False)])]
    cat = evaluate_class([_detections([(1, 0.9, (0, 0, 10, 20))])], records, label=1)
    assert cat.ap_area == 0.0


def test_eleven_point_thresholds_are_exact_tenths():
    # recall exactly 0.3 at precision 1: t = 0, .1, .2, .3 count -> 4/11 (ssd.pytorch's
    # np.arange threshold 0.30000000000000004 would give 3/11).  Area: 0.3 * 1.
    assert voc_ap(np.array([0.3]), np.array([1.0]), use_07_metric=True) == pytest.approx(4 / 11)
    assert voc_ap(np.array([0.3]), np.array([1.0]), use_07_metric=False) == pytest.approx(0.3)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="one per image"):
        evaluate(DETECTIONS[:1], RECORDS, CLASSES)
    with pytest.raises(ValueError, match="1..3"):
        evaluate([_detections([(4, 0.9, (0, 0, 1, 1))]), _detections([])], RECORDS, CLASSES)
