"""ssd.pytorch's detection output (`layers/functions/detection.py`, `layers/box_utils.py`), in NumPy.

Why NumPy and not TensorFlow's NMS: the boxes that survive must be ssd.pytorch's, and TF's
`non_max_suppression` breaks score ties the other way and a global top-k cut removes boxes
theirs keeps.  Their steps, for one image:

1. softmax over classes; decode every prior's offsets (`decode`, with their operation order,
   in float32: only `exp` may differ from torch's in the last bit);
2. for each class c >= 1: the boxes scoring `> conf_threshold` (0.01), a class with none is
   skipped; :func:`nms` on them, keeping at most `top_k` (200) per class;
3. no cut across classes: ssd.pytorch's final "top-k over all classes" line fills a *copy*
   (boolean-mask indexing) and so changes nothing; every class keeps its own 200.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def decode(loc: np.ndarray, priors: np.ndarray, variances: Sequence[float]) -> np.ndarray:
    """Offsets -> point-form boxes, in ssd.pytorch's operation order.

    Their `decode` computes `xmax` as `xmin + w` (not `cx + w / 2`); the two round differently
    in float32, and a last-bit difference can move an IoU across the NMS threshold.
    """
    loc, priors = np.asarray(loc, np.float32), np.asarray(priors, np.float32)
    v_center, v_size = np.float32(variances[0]), np.float32(variances[1])
    centers = priors[:, :2] + loc[:, :2] * v_center * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v_size)
    mins = centers - sizes / np.float32(2)
    return np.concatenate([mins, mins + sizes], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.45, top_k: int = 200) -> np.ndarray:
    """Indices of the boxes ssd.pytorch's `nms` keeps, in the order it keeps them.

    Its algorithm: sort the scores ascending and keep the last `top_k` (the best); repeatedly
    take the last one, drop every remaining box whose IoU with it is above `overlap` (so IoU
    exactly at the threshold is *kept*: `IoU.le(overlap)`), until none remain.  IoU is
    `inter / ((area_j - inter) + area_i)` in float32, in that order.

    Ties: torch 2.13's CPU `sort` is stable for up to 16 elements and not beyond (measured: 17
    equal scores come back as 8, 16, 15, ..., 9, 0, 7, ..., 1, an introsort's order, which
    depends on all the other values), and CUDA sorts with other algorithms.  We use the stable
    order throughout, so among equal scores the *highest* index is taken first and survives a
    top-k cut: what torch does for up to 16 candidates, and deterministic everywhere.
    """
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(scores, kind="stable")[-top_k:]  # their `idx[-top_k:]`
    keep = []
    threshold = np.float32(overlap)
    while order.size:
        best, order = order[-1], order[:-1]
        keep.append(best)
        width = np.maximum(np.minimum(x2[order], x2[best]) - np.maximum(x1[order], x1[best]), np.float32(0))
        height = np.maximum(np.minimum(y2[order], y2[best]) - np.maximum(y1[order], y1[best]), np.float32(0))
        inter = width * height
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 for empty boxes is NaN: dropped, as in torch
            iou = inter / ((area[order] - inter) + area[best])
        order = order[iou <= threshold]
    return np.asarray(keep, np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities along the last axis, in float32 (max subtracted, as torch does)."""
    logits = np.asarray(logits, np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def postprocess(loc: np.ndarray, conf: np.ndarray, priors: np.ndarray, variances: Sequence[float] = (0.1, 0.2),
                conf_threshold: float = 0.01, nms_iou: float = 0.45, top_k: int = 200) -> list[tuple[int, float, np.ndarray]]:
    """ssd.pytorch's `Detect.forward` for one image: `(class, score, relative box)` per kept box.

    Args:
      loc: `(P, 4)` predicted offsets; conf: `(P, C)` logits; priors: `(P, 4)` center form.

    Returns:
      Class by class (1, 2, ...), each in the order NMS kept them (best first).
    """
    boxes, probs = decode(loc, priors, variances), softmax(conf)
    found = []
    for c in range(1, probs.shape[1]):
        mask = probs[:, c] > np.float32(conf_threshold)
        if not mask.any():
            continue
        scores, candidates = probs[mask, c], boxes[mask]
        found += [(c, float(scores[i]), candidates[i]) for i in nms(candidates, scores, nms_iou, top_k)]
    return found
