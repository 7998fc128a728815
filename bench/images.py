"""The one image pair every method runs on, at any square size.

Content: matplotlib's bundled `grace_hopper.jpg` (always present), centre-cropped to a square.
Style: `../shared/images/starry_night.jpg` when that folder is present, else the toolkit's
generated style (seed 0), so the bench runs on any machine; the JSON records which.
Both are resized to the same square: the article's style loss compares raw feature maps,
so its style and content must share a shape, and the same pixels keep the timings comparable.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from transfer.images import load_image, resize_array
from transfer.samples import generated_style, grace_hopper_path

SHARED_STYLE = Path(__file__).resolve().parents[2] / "shared" / "images" / "starry_night.jpg"


def _centre_square(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


@functools.lru_cache(maxsize=1)
def _sources() -> tuple[np.ndarray, np.ndarray, dict]:
    content = _centre_square(load_image(grace_hopper_path()))
    if SHARED_STYLE.is_file():
        style, style_name = _centre_square(load_image(SHARED_STYLE)), str(SHARED_STYLE.name)
    else:
        style, style_name = generated_style(1024, seed=0), "transfer.samples.generated_style(1024, seed=0)"
    return content, style, {"content": "grace_hopper.jpg (matplotlib), centre square", "style": style_name}


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """`(content, style)`, both float RGB in [0, 1], shape `(size, size, 3)`."""
    content, style, _ = _sources()
    return resize_array(content, (size, size)), resize_array(style, (size, size))


def describe() -> dict:
    return dict(_sources()[2])


def content_batch(size: int, batch: int) -> np.ndarray:
    """`batch` different contents of one size (flips and rotations of the photo), for grid runs."""
    content, _ = pair(size)
    variants = [content, content[:, ::-1], content[::-1], content[::-1, ::-1]]
    return np.stack([np.ascontiguousarray(variants[i % len(variants)]) for i in range(batch)])
