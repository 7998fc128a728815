"""Apply a preprocessing profile: how each backbone expects its input pixels.

A profile travels with a backbone because a network only "sees" well in the colour space
and value range it was trained in (checkpoint-layouts.md, sections 1, 2 and 4).  The
profiles themselves (channel order, mean, scale) are file metadata and live in one table,
`weights.registry.PREPROCESSING_PROFILES`; this module applies any of them.  Images inside
this toolkit are always float RGB in [0, 1].
"""

from __future__ import annotations

import tensorflow as tf

from weights.registry import PREPROCESSING_PROFILES

#: ImageNet channel means in BGR order, Keras/caffe "caffe" mode.
CAFFE_BGR_MEAN = PREPROCESSING_PROFILES["caffe"].mean
PROFILES: dict[str, str] = {name: p.description for name, p in PREPROCESSING_PROFILES.items()}


def check_profile(name: str) -> str:
    if name not in PREPROCESSING_PROFILES:
        raise ValueError(f"unknown preprocessing profile {name!r}; choose one of {', '.join(PROFILES)}")
    return name


def preprocess(images: tf.Tensor, profile: str) -> tf.Tensor:
    """Map float RGB images in [0, 1], shape (..., 3), to what the backbone expects."""
    spec = PREPROCESSING_PROFILES[check_profile(profile)]
    if spec.channel_order == "RGB" and spec.mean == (0.0, 0.0, 0.0) and spec.scale * 255.0 == 1.0:
        return images  # RGB / 255 of a [0, 1] image is the image itself
    pixels = images * 255.0
    if spec.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    return (pixels - tf.constant(spec.mean, dtype=pixels.dtype)) * spec.scale
