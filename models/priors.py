"""SSD prior (default) boxes, generated exactly as ssd.pytorch's `PriorBox` does.

Why exactness matters: a trained SSD300 checkpoint predicts offsets *relative to these
boxes, in this order*.  Row `n` of the network's `loc`/`conf` outputs belongs to row `n`
of `prior_boxes(config)`; any change of order or value silently ruins detection.

Order: for each source k (feature map f_k), rows i outer, columns j inner; per location
`(s_k, s_k)`, `(s'_k, s'_k)` with `s'_k = sqrt(s_k * max_k / image_size)`, then for each
aspect ratio r: `(s_k*sqrt(r), s_k/sqrt(r))`, `(s_k/sqrt(r), s_k*sqrt(r))`.  Centres are
`((j + 0.5) / (image_size / step_k), (i + 0.5) / (image_size / step_k))` -- note the
divisor is `image_size / step`, not the map size (37.5 rather than 38 for the first map).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    """Everything that defines an SSD's priors (and so its head sizes and input size).

    Frozen with tuple fields so a config is hashable: priors are cached per config.

    Attributes:
      image_size: side of the square input the priors are normalised by.
      feature_maps: side of each source feature map, shallow to deep.
      steps: stride (in input pixels) of each source; centres use `image_size / step`.
      min_sizes / max_sizes: prior scales in pixels per source.
      aspect_ratios: extra ratios per source; each r adds two boxes (r and 1/r).
      variances: encoding variances `(center, size)`.
      clip: clamp the priors to [0, 1].
    """

    image_size: int = 300
    feature_maps: tuple[int, ...] = (38, 19, 10, 5, 3, 1)
    steps: tuple[int, ...] = (8, 16, 32, 64, 100, 300)
    min_sizes: tuple[float, ...] = (30, 60, 111, 162, 213, 264)
    max_sizes: tuple[float, ...] = (60, 111, 162, 213, 264, 315)
    aspect_ratios: tuple[tuple[float, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    variances: tuple[float, float] = (0.1, 0.2)
    clip: bool = True

    def __post_init__(self) -> None:
        n = len(self.feature_maps)
        for field in ("steps", "min_sizes", "max_sizes", "aspect_ratios"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"PriorConfig.{field} has {len(getattr(self, field))} entries, "
                    f"feature_maps has {n}: one entry per source is required"
                )

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        """Priors per feature-map cell: 2 square boxes plus 2 per aspect ratio."""
        return tuple(2 + 2 * len(ratios) for ratios in self.aspect_ratios)

    @property
    def num_priors(self) -> int:
        """Total number of priors (8732 for the VOC and COCO SSD300 configs)."""
        return sum(f * f * b for f, b in zip(self.feature_maps, self.boxes_per_location))


#: ssd.pytorch's `voc` config (the published VOC0712 SSD300 checkpoint).
VOC_300 = PriorConfig()

#: ssd.pytorch's `coco` config: same maps and steps, smaller scales.
COCO_300 = PriorConfig(
    min_sizes=(21, 45, 99, 153, 207, 261),
    max_sizes=(45, 99, 153, 207, 261, 315),
)


def _boxes_for_source(config: PriorConfig, k: int) -> np.ndarray:
    """Priors of source `k` as `(f*f*boxes, 4)`, in ssd.pytorch's row-major order."""
    f = config.feature_maps[k]
    f_k = config.image_size / config.steps[k]
    s_k = config.min_sizes[k] / config.image_size
    s_k_prime = math.sqrt(s_k * (config.max_sizes[k] / config.image_size))
    sizes = [(s_k, s_k), (s_k_prime, s_k_prime)]
    for ratio in config.aspect_ratios[k]:
        root = math.sqrt(ratio)
        sizes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
    sizes = np.asarray(sizes, dtype=np.float64)  # (boxes, 2)

    i, j = np.meshgrid(np.arange(f), np.arange(f), indexing="ij")  # i (rows) outer
    centres = np.stack([(j + 0.5) / f_k, (i + 0.5) / f_k], axis=-1).reshape(-1, 1, 2)
    centres = np.broadcast_to(centres, (f * f, len(sizes), 2))
    wh = np.broadcast_to(sizes[None], (f * f, len(sizes), 2))
    return np.concatenate([centres, wh], axis=-1).reshape(-1, 4)


@functools.lru_cache(maxsize=16)
def _prior_boxes_cached(config: PriorConfig) -> np.ndarray:
    boxes = np.concatenate([_boxes_for_source(config, k) for k in range(len(config.feature_maps))])
    if config.clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    boxes = boxes.astype(np.float32)
    boxes.flags.writeable = False  # shared by the cache: nobody may modify it in place
    return boxes


def prior_boxes(config: PriorConfig = VOC_300) -> np.ndarray:
    """The priors of `config` as a float32 `(num_priors, 4)` array of `(cx, cy, w, h)`.

    Values are relative to the image (0..1).  The array is cached and read-only; copy it
    before modifying.
    """
    return _prior_boxes_cached(config)
