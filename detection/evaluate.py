"""PASCAL VOC detection metrics: per-class average precision (VOC07 11-point and area) and mAP.

This follows ssd.pytorch's `eval.py` (`voc_eval`, `voc_ap`, themselves py-faster-rcnn's):

* Detections of one class are taken over all images by descending score (a stable sort: ties
  keep image order, then detection order).  Each is compared with the ground truths of that
  class in its image and takes the one it overlaps most.  IoU > 0.5 (strictly): if that
  ground truth is difficult the detection is ignored (neither true nor false positive);
  else the first such detection is a true positive and any later one a false positive (a
  duplicate).  IoU <= 0.5, or no ground truth of the class in the image: false positive.
* Recall = TP / npos with npos the non-difficult ground truths; precision =
  TP / max(TP + FP, eps), both cumulative over the ranked detections (ignored ones included,
  as in ssd.pytorch).
* VOC07 11-point AP: the mean over t = 0, 0.1, ..., 1 of the largest precision at recall >= t
  (0 when none).  Area AP (VOC2010+): the precision envelope (made non-increasing from the
  right) summed over the recall steps.

Coordinates: detection boxes are relative (0..1, what `models.ssd300.detect` returns) and are
scaled by each record's width and height into the reader's 0-based pixel frame, the frame of
the ground truth.  IoU uses those continuous coordinates with no "+1" on widths and heights,
as ssd.pytorch's `voc_eval` computes it (py-faster-rcnn and the official VOCdevkit add 1
pixel to each width and height, which raises the IoU of small boxes).  ssd.pytorch also
writes its detections 1-based but reads ground truth 0-based, a one-pixel shift not copied.

Differences from ssd.pytorch, on purpose:

* a class without non-difficult ground truth gets AP = nan and is left out of the mean
  (ssd.pytorch divides by zero there); a class with ground truth but no detection gets AP 0
  (ssd.pytorch reports -1 and averages it in);
* the 11 recall thresholds are exactly k/10; ssd.pytorch's `np.arange(0., 1.1, 0.1)` holds
  0.30000000000000004 and the like, so a recall of exactly 0.3 missed its threshold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from detection.voc import VOCRecord

#: ssd.pytorch's and VOC's overlap criterion: IoU strictly above this is a match.
IOU_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True, eq=False)
class ClassAP:
    """One class's ranked precision/recall curve and both APs (nan without ground truth)."""

    name: str
    label: int
    npos: int
    recall: np.ndarray
    precision: np.ndarray
    ap_voc07: float
    ap_area: float


@dataclasses.dataclass(frozen=True)
class VOCEvaluation:
    """Per-class results; the means skip classes whose AP is nan (no ground truth)."""

    classes: tuple[ClassAP, ...]

    @property
    def map_voc07(self) -> float:
        return _mean_of_defined([c.ap_voc07 for c in self.classes])

    @property
    def map_area(self) -> float:
        return _mean_of_defined([c.ap_area for c in self.classes])


def _mean_of_defined(values: Sequence[float]) -> float:
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP of a ranked precision/recall curve: VOC07 11-point, or the area (all points)."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if use_07_metric:
        points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.arange(11) / 10]
        return float(np.sum(points) / 11)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the envelope: best precision at this recall or more
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with `(G, 4)` boxes, continuous coordinates (no +1)."""
    low = np.maximum(boxes[:, :2], box[:2])
    high = np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def _ranked_detections(detections, records, label: int):
    """This class's detections over all images, best first: `(image indices, pixel boxes)`."""
    images, boxes, scores = [], [], []
    for i, (found, record) in enumerate(zip(detections, records)):
        mine = np.asarray(found["labels"]).reshape(-1) == label
        scale = np.array([record.width, record.height] * 2, np.float64)
        boxes.append(np.asarray(found["boxes"], np.float64).reshape(-1, 4)[mine] * scale)
        scores.append(np.asarray(found["scores"], np.float64).reshape(-1)[mine])
        images.append(np.full(int(mine.sum()), i))
    order = np.argsort(-np.concatenate(scores), kind="stable")
    return np.concatenate(images)[order], np.concatenate(boxes)[order]


def _true_false_positives(images, boxes, records, label: int, iou_threshold: float):
    """Greedy matching in rank order; ignored (difficult) detections are 0 in both arrays."""
    truths = [(r.boxes[r.labels == label].astype(np.float64), r.difficult[r.labels == label]) for r in records]
    taken = [np.zeros(len(t[0]), bool) for t in truths]
    tp, fp = np.zeros(len(images)), np.zeros(len(images))
    for d, (image, box) in enumerate(zip(images, boxes)):
        gt_boxes, difficult = truths[image]
        overlaps = _iou(box, gt_boxes) if len(gt_boxes) else np.zeros(0)
        best = int(np.argmax(overlaps)) if len(overlaps) else -1
        if best < 0 or overlaps[best] <= iou_threshold:
            fp[d] = 1
        elif difficult[best]:
            continue
        elif taken[image][best]:
            fp[d] = 1
        else:
            tp[d], taken[image][best] = 1, True
    return tp, fp


def evaluate_class(
    detections: Sequence[Mapping[str, np.ndarray]],
    records: Sequence[VOCRecord],
    label: int,
    name: str = "",
    iou_threshold: float = IOU_THRESHOLD,
) -> ClassAP:
    """Precision/recall and both APs of class `label` (see the module docstring)."""
    npos = int(sum(np.sum((r.labels == label) & ~r.difficult) for r in records))
    images, boxes = _ranked_detections(detections, records, label)
    tp, fp = _true_false_positives(images, boxes, records, label, iou_threshold)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if npos == 0:
        nan_recall = np.full(len(tp), np.nan)
        return ClassAP(name, label, 0, nan_recall, precision, float("nan"), float("nan"))
    recall = tp / npos
    return ClassAP(name, label, npos, recall, precision, voc_ap(recall, precision, True),
                   voc_ap(recall, precision, False))


def evaluate(
    detections: Sequence[Mapping[str, np.ndarray]],
    records: Sequence[VOCRecord],
    classes: Sequence[str],
    iou_threshold: float = IOU_THRESHOLD,
) -> VOCEvaluation:
    """VOC AP of every class and the means.

    Args:
      detections: one `{"boxes": (K, 4) relative xmin, ymin, xmax, ymax, "scores": (K,),
        "labels": (K,) in 1..C}` per record, in the records' order (`detect()`'s output).
      records: the ground truth (`VOCDataset.records`), difficult flags included.
      classes: the names of labels 1..C.

    Raises:
      ValueError: when detections and records differ in number, or a label is not in 1..C.
    """
    if len(detections) != len(records):
        raise ValueError(f"{len(detections)} detection lists for {len(records)} images: one per image is needed")
    for found in detections:
        labels = np.asarray(found["labels"]).reshape(-1)
        if labels.size and (labels.min() < 1 or labels.max() > len(classes)):
            raise ValueError(
                f"detection labels must be 1..{len(classes)} ({len(classes)} classes); "
                f"got {sorted(set(labels.tolist()))}"
            )
    return VOCEvaluation(tuple(
        evaluate_class(detections, records, label, name, iou_threshold) for label, name in enumerate(classes, 1)
    ))
