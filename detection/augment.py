"""SSD's training augmentation (ssd.pytorch's `SSDAugmentation`), in NumPy, seeded by the caller.

Every random choice comes from the `numpy.random.Generator` passed in, never from a global
RNG, so one seed per sample reproduces the sample exactly in any process or thread.

What happens, in ssd.pytorch's order (boxes are 0-based pixels, the image spans `[0, W]`):

1. photometric distortion: random brightness, then contrast before or after saturation and
   hue (in HSV), then a random channel permutation -- each step with probability 1/2;
2. expand (probability 1/2): zoom out by 1-4x onto a canvas filled with the mean colour;
3. IoU-constrained random crop of the canvas (ssd.pytorch's `RandomSampleCrop`): a mode is
   drawn from `CROP_MIN_IOUS`; up to 50 patches of 30-100% of each side, aspect 1/2..2; the
   boxes whose centre lies inside the patch are kept and clipped to it;
4. horizontal flip (probability 1/2);
5. resize to `size x size` (bilinear, no antialiasing, like ssd.pytorch's `cv2.resize`).

Cost: ssd.pytorch builds the expanded canvas (up to 16x the pixels), crops and resizes it.
Here expand and crop only move a *window* over the image (it may reach outside), and one
Pillow transform resamples the window straight to `size x size`, filling outside the image
with the mean.  Photometric distortion is per pixel, so it runs on those `size**2` output
pixels (not on the whole photo) and the filled area is then reset to the exact mean, as in
ssd.pytorch where expansion comes after distortion.  A sample costs O(size**2) whatever the
photo's size.

Deliberate differences from ssd.pytorch:

* its crop test `overlap.min() < min_iou and max_iou < overlap.max()` never rejects a patch
  (`max_iou` is infinite), so its IoU modes are unconstrained; here a patch is accepted when
  at least one box overlaps it by IoU >= the mode's minimum, the original Caffe SSD rule;
* pixel values are clipped to 0..255 after each photometric step (ssd.pytorch lets them run
  out of range, then converts to HSV);
* an image without boxes is never cropped (ssd.pytorch fails on it); the mode loop is bounded;
* boxes under one output pixel wide or high are dropped: no network sees them, and the SSD
  encoding takes the log of the box size.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from PIL import Image

#: ssd.pytorch's photometric ranges: brightness +-32, contrast and saturation x0.5-1.5, hue +-18 deg.
BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18.0
CHANNEL_ORDERS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(3)))

#: Expand: zoom out by up to this factor.
MAX_EXPAND = 4.0

#: Crop modes: None keeps the whole canvas; a number is the minimum IoU with some box (0: any patch).
CROP_MIN_IOUS: tuple[float | None, ...] = (None, 0.1, 0.3, 0.7, 0.9, 0.0)
CROP_TRIALS = 50
CROP_MIN_SCALE = 0.3
#: Modes drawn before giving up and keeping the whole canvas (None alone ends the loop, p = 1/6).
MAX_MODE_DRAWS = 100


# ---------------------------------------------------------------------------------------
# Photometric distortion
# ---------------------------------------------------------------------------------------


def rotate_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the HSV hue of float RGB 0..255 by `degrees`, keeping saturation and value.

    Exactly the HSV round trip (hue in sextants, then channel n = `V - C clip(min(k, 4 - k),
    0, 1)` with `k = (n + H) mod 6`, C the chroma), written on contiguous planes without
    `np.mod`/`np.where`: this is the costliest photometric step, run for every other sample.
    """
    r, g, b = np.ascontiguousarray(np.moveaxis(image, -1, 0), np.float32)
    value = np.maximum(np.maximum(r, g), b)
    chroma = np.maximum(value - np.minimum(np.minimum(r, g), b), np.float32(1e-6))  # grey: any hue
    sextant = (r - g) / chroma + 4  # blue largest
    np.copyto(sextant, (b - r) / chroma + 2, where=value == g)
    np.copyto(sextant, (g - b) / chroma, where=value == r)
    sextant += np.float32(degrees / 60)
    out = np.empty((3,) + value.shape, np.float32)
    for channel, n in enumerate((5, 3, 1)):  # R, G, B
        k = sextant + n
        k -= 6 * np.floor(k * np.float32(1 / 6))
        out[channel] = value - chroma * np.clip(np.minimum(k, 4 - k), 0, 1)
    return np.moveaxis(out, 0, -1)


def _random_contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.integers(2):
        image = np.clip(image * rng.uniform(*CONTRAST_RANGE), 0, 255)
    return image


def _random_saturation(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale HSV saturation (p = 1/2), computed in RGB.

    With hue and value fixed, scaling S by f moves every channel linearly: `c' = V - f (V - c)`.
    That is what the HSV round trip computes (cv2, like ssd.pytorch, does not clip S), at a
    fraction of the cost; the result is clipped to 0..255.
    """
    if rng.integers(2):
        value = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])[..., None]
        image = np.clip(value - rng.uniform(*SATURATION_RANGE) * (value - image), 0, 255)
    return image


def _random_hue(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate the HSV hue by up to +-18 degrees (p = 1/2)."""
    if rng.integers(2):
        image = np.clip(rotate_hue(image, rng.uniform(-HUE_DELTA, HUE_DELTA)), 0, 255)
    return image


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ssd.pytorch's `PhotometricDistort` on float RGB 0..255; returns a new float32 array."""
    image = np.clip(np.asarray(image, np.float32), 0, 255)
    if rng.integers(2):
        image = np.clip(image + rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA), 0, 255)
    contrast_first = bool(rng.integers(2))
    if contrast_first:
        image = _random_contrast(image, rng)
    image = _random_hue(_random_saturation(image, rng), rng)
    if not contrast_first:
        image = _random_contrast(image, rng)
    if rng.integers(2):
        image = image[..., list(CHANNEL_ORDERS[rng.integers(len(CHANNEL_ORDERS))])]
    return np.ascontiguousarray(image, np.float32)


# ---------------------------------------------------------------------------------------
# Geometry: windows over the image, boxes
# ---------------------------------------------------------------------------------------


def sample_expand(rng: np.random.Generator, width: float, height: float) -> np.ndarray:
    """The canvas `[x0, y0, x1, y1]` in image coordinates: the image, or (p = 1/2) a 1-4x zoom-out."""
    if rng.integers(2):
        return np.array([0.0, 0.0, width, height])
    ratio = rng.uniform(1, MAX_EXPAND)
    left = rng.uniform(0, width * ratio - width)
    top = rng.uniform(0, height * ratio - height)
    return np.array([-left, -top, width * ratio - left, height * ratio - top])


def _iou(boxes: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """IoU `(N, T)` of boxes `(N, 4)` with rectangles `(T, 4)`."""
    low = np.maximum(boxes[:, None, :2], rects[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], rects[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area_boxes = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    area_rects = np.prod(rects[:, 2:] - rects[:, :2], axis=-1)
    return inter / np.maximum(area_boxes[:, None] + area_rects[None, :] - inter, 1e-12)


def _try_crops(rng: np.random.Generator, canvas: np.ndarray, boxes: np.ndarray, min_iou: float):
    """The first of `CROP_TRIALS` random patches that passes, as `(window, keep)`, or None.

    Drawn all at once; taking the first that passes is the same as ssd.pytorch's loop.
    """
    span = canvas[2:] - canvas[:2]
    sizes = rng.uniform(CROP_MIN_SCALE, 1, (CROP_TRIALS, 2)) * span
    origins = canvas[:2] + rng.uniform(0, 1, (CROP_TRIALS, 2)) * (span - sizes)
    rects = np.concatenate([origins, origins + sizes], axis=1)
    aspect = sizes[:, 1] / sizes[:, 0]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.all((rects[None, :, :2] < centres[:, None]) & (centres[:, None] < rects[None, :, 2:]), axis=-1)
    passes = (aspect >= 0.5) & (aspect <= 2) & (_iou(boxes, rects).max(axis=0) >= min_iou) & inside.any(axis=0)
    if not passes.any():
        return None
    trial = int(np.argmax(passes))
    return rects[trial], inside[:, trial]


def sample_crop(rng: np.random.Generator, canvas: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(window, keep)`: the patch of `canvas` to keep and which boxes (centre inside) survive."""
    keep_all = np.ones(len(boxes), bool)
    if len(boxes) == 0:
        return canvas, keep_all
    for _ in range(MAX_MODE_DRAWS):
        min_iou = CROP_MIN_IOUS[rng.integers(len(CROP_MIN_IOUS))]
        if min_iou is None:
            return canvas, keep_all
        found = _try_crops(rng, canvas, boxes, min_iou)
        if found is not None:
            return found
    return canvas, keep_all


def _boxes_in_window(boxes: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Boxes clipped to `window` and made relative to it (0..1)."""
    span = np.tile(window[2:] - window[:2], 2)
    clipped = np.clip(boxes, np.tile(window[:2], 2), np.tile(window[2:], 2))
    return np.clip((clipped - np.tile(window[:2], 2)) / span, 0, 1)


def _large_enough(boxes: np.ndarray, size: int) -> np.ndarray:
    """Boxes at least one output pixel wide and high (smaller ones would be invisible)."""
    return np.all((boxes[:, 2:] - boxes[:, :2]) * size >= 1, axis=1)


# ---------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------


def render(image: np.ndarray, window: np.ndarray, size: int, fill: Sequence[float]) -> np.ndarray:
    """Resample `window` of a uint8 RGB image to `size x size` float32; `fill` outside the image."""
    fill_uint8 = tuple(int(np.clip(round(c), 0, 255)) for c in fill)
    out = Image.fromarray(image).transform(
        (size, size),
        Image.Transform.EXTENT,
        data=tuple(float(v) for v in window),
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill_uint8,
    )
    return np.asarray(out, np.float32)


def outside_image(window: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """`(size, size)` bool: output pixels whose centre samples outside the image."""
    centres = (np.arange(size) + 0.5) / size
    xs = window[0] + centres * (window[2] - window[0])
    ys = window[1] + centres * (window[3] - window[1])
    return ((ys < 0) | (ys >= height))[:, None] | ((xs < 0) | (xs >= width))[None, :]


def augment(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    size: int,
    fill: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training sample.

    Args:
      image: `(H, W, 3)` uint8 RGB.
      boxes: `(N, 4)` 0-based pixel `xmin, ymin, xmax, ymax` (the image spans `[0, W]`).
      labels: `(N,)` class labels, kept in step with the boxes.
      rng: the only source of randomness.
      size: output side.
      fill: RGB 0..255 colour of the expanded canvas (the network's mean: it becomes 0).

    Returns:
      `(image (size, size, 3) float32 RGB 0..255, boxes (K, 4) float32 relative 0..1 with
      xmax > xmin and ymax > ymin, labels (K,))`, K <= N.
    """
    image = np.asarray(image, np.uint8)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels)
    height, width = image.shape[:2]
    canvas = sample_expand(rng, width, height)
    window, keep = sample_crop(rng, canvas, boxes)
    boxes, labels = _boxes_in_window(boxes[keep], window), labels[keep]
    out = photometric_distort(render(image, window, size, fill), rng)
    out[outside_image(window, width, height, size)] = np.asarray(fill, np.float32)
    if rng.integers(2):
        out = out[:, ::-1]
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    large = _large_enough(boxes, size)
    return np.ascontiguousarray(out), boxes[large].astype(np.float32), labels[large]
