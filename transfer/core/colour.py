"""Colour preservation: keep the content photo's colours, take only the style's texture.

Two methods (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", 2016):
  `luminance`  stylise as usual, then keep the result's luminance (Y of YIQ) and put back
               the content's chroma (I, Q).  Exact chroma of the photo; texture from the style.
  `histogram`  before stylising, recolour the style image so its per-channel mean and
               covariance match the content's (a linear map via Cholesky factors), so the
               optimisation never sees the style's palette.
"""

from __future__ import annotations

import numpy as np

METHODS = ("luminance", "histogram")

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ _RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return image @ _YIQ_TO_RGB.T


def luminance_transfer(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised image's luminance with the content's chroma, clipped to [0, 1]."""
    if stylised.shape != content.shape:
        raise ValueError(f"shapes differ: {stylised.shape} vs {content.shape}")
    y = rgb_to_yiq(stylised)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return np.clip(yiq_to_rgb(np.concatenate([y, iq], -1)), 0.0, 1.0).astype(np.float32)


def match_colour_statistics(source: np.ndarray, reference: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Linearly recolour `source` so its RGB mean and covariance equal `reference`'s."""
    src = source.reshape(-1, 3).astype(np.float64)
    ref = reference.reshape(-1, 3).astype(np.float64)
    src_mean, ref_mean = src.mean(0), ref.mean(0)
    src_chol = np.linalg.cholesky(np.cov(src, rowvar=False) + eps * np.eye(3))
    ref_chol = np.linalg.cholesky(np.cov(ref, rowvar=False) + eps * np.eye(3))
    transform = ref_chol @ np.linalg.inv(src_chol)
    out = (src - src_mean) @ transform.T + ref_mean
    return np.clip(out, 0.0, 1.0).reshape(source.shape).astype(np.float32)
