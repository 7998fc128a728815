"""The images the quality metrics accept: float RGB in [0, 1], shape (H, W, 3), nothing coerced.

Metrics that silently clip, resize or convert would report numbers about a different image
than the one asked about, so anything else is an `ImageError` naming the argument.
"""

from __future__ import annotations

import numpy as np

from transfer.errors import ImageError


def checked_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """`image` as float32 (H, W, 3), refused unless finite and within [0, 1]."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise ImageError(f"{name}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"{name}: expected float pixels in [0, 1], got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ImageError(f"{name}: pixels must be finite and within [0, 1]")
    return array


def same_size(a: np.ndarray, b: np.ndarray, names: str) -> None:
    """Refuse a pixel-by-pixel comparison of images of different sizes (nothing is resized)."""
    if a.shape != b.shape:
        raise ImageError(f"{names}: sizes differ ({a.shape[:2]} vs {b.shape[:2]}); resize them first")
