"""Loss targets computed once and shared: a content's features, a style's statistics.

Why: an objective's targets depend only on the image, its size, the tapped layers, the
backbone and the kind of statistic, not on the run that asks.  In a grid of N contents x M
styles each style would otherwise have its Gram matrices recomputed N times and each content
its features M times.  A `TargetCache` passed to `build_objective(..., targets=cache)` (or
`stylize(..., targets=cache)`) keys them by exactly those things, so a hit returns the very
tensors an uncached objective would have computed (bit-identical results).

Images are keyed by the sha256 of the float32 pixels actually fed to the network (after
resizing), so a different size or a recoloured style is a different key.  The backbone is
keyed by its `BackboneRef` and by the identity of its Keras model (two `random` backbones
with different seeds share a ref); the cache keeps each model it has seen alive, so an
identity is never reused while the cache exists.  The layers are the whole `LayerSpec` (taps
and the style transform); the statistic kind is the objective's class (it fixes `to_param`,
`network_input` and `style_statistic`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from transfer.io.images import pixel_digest

__all__ = ["TargetCache", "pixel_digest"]


class TargetCache:
    """Style and content targets by (images, layers, backbone, statistic kind).

    `computed` counts the targets actually computed, by kind ("style", "content"); `hits` the
    ones served from the cache.  Not thread-safe: one cache per job.
    """

    def __init__(self) -> None:
        self._targets: dict[Hashable, list] = {}
        self._models: dict[int, object] = {}  # keeps keyed models alive (see module docstring)
        self.computed: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._targets)

    def style(self, objective, styles: Sequence[tuple[np.ndarray, float]], compute: Callable[[], list]) -> list:
        """The blended style statistics of `styles` (images already prepared and sized)."""
        images = tuple((pixel_digest(img), float(weight)) for img, weight in styles)
        return self._get("style", objective, images, compute)

    def content(self, objective, contents: np.ndarray, compute: Callable[[], list]) -> list:
        """The content features of a `(B, H, W, 3)` batch of contents."""
        return self._get("content", objective, (pixel_digest(contents),), compute)

    def _get(self, kind: str, objective, images: tuple, compute: Callable[[], list]) -> list:
        key = (kind, type(objective).__module__, type(objective).__qualname__, self._backbone_key(objective),
               objective.layers, images)
        if key in self._targets:
            self.hits[kind] += 1
            return self._targets[key]
        targets = compute()
        self._targets[key] = targets
        self.computed[kind] += 1
        return targets

    def _backbone_key(self, objective) -> tuple:
        model = objective.backbone.model
        self._models[id(model)] = model
        return objective.backbone.ref, id(model)
