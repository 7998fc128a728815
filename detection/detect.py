"""Find objects in image files with an SSD300, post-processed as ssd.pytorch's `Detect` does
(`models.detection_output`: softmax, decode, per-class NMS, their tie order, no global cut).

Then, as ssd.pytorch's demo does, boxes are scaled by the image's width and height and those
scoring `>= threshold` are reported (clipped to the image, which NMS never saw).

Input: each image is resized to the model's square input with bilinear interpolation and
rounded to 8 bits (as `cv2.resize(..., INTER_LINEAR)` on a uint8 image in ssd.pytorch's
`BaseTransform`, up to cv2's fixed-point rounding), then the checkpoint's preprocessing
profile is applied (`weights.registry.PREPROCESSING_PROFILES`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from detection.draw import draw_detections
from detection.export import num_classes_of
from models.detection_output import postprocess
from models.priors import VOC_300, PriorConfig, prior_boxes
from transfer.core.preprocessing import preprocess
from transfer.errors import UsageError
from transfer.io.images import atomic_write, load_image
from weights.registry import get_profile


@dataclasses.dataclass(frozen=True)
class Detection:
    label: str
    class_id: int  # 1..C-1; `label` is `class_names[class_id - 1]`
    score: float
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in pixels of the original image


@dataclasses.dataclass(frozen=True)
class ImageDetections:
    """One image's detections, best first, with what produced them."""

    path: Path
    width: int
    height: int
    profile: str
    threshold: float
    detections: tuple[Detection, ...]

    def to_dict(self) -> dict:
        return {"image": str(self.path), "width": self.width, "height": self.height, "profile": self.profile,
                "threshold": self.threshold, "detections": [dataclasses.asdict(d) for d in self.detections]}


# --------------------------------------------------------------------------------------
# Images in, detections out
# --------------------------------------------------------------------------------------


def network_input(image: np.ndarray, size: int, profile: str) -> np.ndarray:
    """An RGB [0, 1] image as the network's `(size, size, 3)` input (see the module docstring)."""
    pixels = np.round(np.asarray(image, np.float32) * 255)
    resized = tf.image.resize(pixels, (size, size), method="bilinear", antialias=False).numpy()
    return np.asarray(preprocess(np.clip(np.round(resized), 0, 255) / np.float32(255), profile))


def _in_pixels(found, width: int, height: int, threshold: float, class_names: Sequence[str]) -> tuple[Detection, ...]:
    scale = np.array([width, height, width, height], np.float32)
    kept = [(c, s, np.clip(box * scale, 0, scale)) for c, s, box in found if s >= threshold]
    kept.sort(key=lambda item: -item[1])  # stable: equal scores stay in class, then NMS, order
    return tuple(Detection(class_names[c - 1], c, s, tuple(float(v) for v in box)) for c, s, box in kept)


def detect_images(
    model: keras.Model,
    paths: Sequence[str | os.PathLike],
    profile: str,
    threshold: float,
    class_names: Sequence[str],
    config: PriorConfig = VOC_300,
    batch_size: int = 8,
) -> list[ImageDetections]:
    """Detect objects in each image file; boxes in the original image's pixels.

    Args:
      model: a `build_ssd300` model (its input size is the resize target).
      profile: the checkpoint's preprocessing profile name (ssd.pytorch's VOC model: `rgb_mean`).
      threshold: report detections scoring at least this (ssd.pytorch's demo uses 0.6).
      class_names: the foreground classes; label c is `class_names[c - 1]`.
      config: the priors the model was trained against.
    """
    get_profile(profile)  # an unknown name is a one-line WeightsError before any work
    if len(class_names) != num_classes_of(model) - 1:
        raise UsageError(f"{len(class_names)} class names for a model with {num_classes_of(model) - 1} "
                         "foreground classes")
    size, priors = model.input_shape[1], prior_boxes(config)
    results = []
    for start in range(0, len(paths), batch_size):
        images = [load_image(p) for p in paths[start:start + batch_size]]
        # predict_on_batch: Keras's compiled forward, reused across calls (eager is ~1.4x slower here)
        loc, conf = model.predict_on_batch(np.stack([network_input(img, size, profile) for img in images]))
        loc, conf = np.asarray(loc, np.float32), np.asarray(conf, np.float32)
        for path, image, image_loc, image_conf in zip(paths[start:], images, loc, conf):
            height, width = image.shape[:2]
            found = postprocess(image_loc, image_conf, priors, config.variances)
            results.append(ImageDetections(Path(path), width, height, profile, threshold,
                                           _in_pixels(found, width, height, threshold, class_names)))
    return results


def output_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique (`photo`, `photo-2`, ...) when inputs from two folders share a name."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}")
    return stems


def save_detections(results: Sequence[ImageDetections], out_dir: str | os.PathLike, draw: bool = True) -> list[Path]:
    """Write `<stem>.json` (and, with `draw`, `<stem>_detections.png`) per image into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for result, stem in zip(results, output_stems([r.path for r in results])):
        text = json.dumps(result.to_dict(), indent=1)
        written.append(atomic_write(out_dir / f"{stem}.json", lambda tmp, text=text: Path(tmp).write_text(text)))
        if draw:
            drawn = draw_detections(load_image(result.path), result.detections)
            written.append(atomic_write(out_dir / f"{stem}_detections.png",
                                        lambda tmp, drawn=drawn: drawn.save(tmp, format="PNG")))
    return written
