"""The short-term temporal-consistency term of video style transfer (Ruder et al. 2016).

Why: optimising each frame of a clip on its own lands every frame in a different local
minimum, so brush strokes jump from frame to frame (flicker).  This term pulls the output
towards the previous output warped to this frame by optical flow, but only where the flow can
be trusted (`mask` 1; disoccluded pixels and motion boundaries are 0 and stay free):

    temporal = 1/D * sum(mask * (x - warped_previous)^2),   D = H * W * 3,

in [0, 1] pixel units, per image of the batch.  `TemporalObjective` adds it, times the spec's
`temporal_weight`, to any whole-image objective whose parameters are the pixels (this
toolkit's default loss; the spec refuses recipes and tiling).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from transfer.io.images import resize_array


@dataclasses.dataclass(frozen=True)
class TemporalTarget:
    """The warped previous output `(H, W, 3)` and where it holds, `mask` `(H, W)` in [0, 1]."""

    image: np.ndarray
    mask: np.ndarray

    def at(self, size: tuple[int, int]) -> TemporalTarget:
        """Both resized to `(height, width)` (a pyramid stage smaller than the frame)."""
        if tuple(self.image.shape[:2]) == tuple(size):
            return self
        from PIL import Image

        mask = Image.fromarray(np.asarray(self.mask, np.float32)).resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return TemporalTarget(resize_array(self.image, size), np.clip(np.asarray(mask, np.float32), 0.0, 1.0))


def temporal_loss(pixels: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per image `(B,)`: the masked squared distance to `target`, averaged over every pixel and channel.

    `pixels` `(B, H, W, 3)`; `target` `(1|B, H, W, 3)`; `mask` `(1|B, H, W, 1)`.
    """
    squared = tf.square(tf.cast(pixels, tf.float32) - target) * mask
    return tf.reduce_mean(squared, axis=[1, 2, 3])


class TemporalObjective:
    """`base`'s terms plus `weight` x `temporal_loss` towards `target`; everything else is `base`'s."""

    def __init__(self, base, target: TemporalTarget, weight: float):
        self.base, self.weight, self.source = base, float(weight), target
        self.target = tf.constant(np.asarray(target.image, np.float32)[None])
        self.mask = tf.constant(np.asarray(target.mask, np.float32)[None, :, :, None])

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def terms(self, param: tf.Tensor) -> dict[str, tf.Tensor]:
        terms = dict(self.base.terms(param))
        terms["temporal"] = temporal_loss(param, self.target, self.mask)
        terms["total"] = terms["total"] + self.weight * terms["temporal"]
        return terms

    def with_tv_eps(self, eps: float | None) -> TemporalObjective:
        base = self.base.with_tv_eps(eps)
        return self if base is self.base else TemporalObjective(base, self.source, self.weight)


def with_temporal(objective, spec, temporal: TemporalTarget | None, size: tuple[int, int]):
    """`objective` with the spec's temporal term at `size`, or as it is when the spec has none."""
    if spec.temporal_weight is None:
        return objective
    if temporal is None:
        from transfer.errors import UsageError

        raise UsageError("the spec has a temporal term, but no temporal target was given")
    return TemporalObjective(objective, temporal.at(size), spec.temporal_weight)
