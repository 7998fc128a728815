"""Adam on a large output one tile at a time (`--tile N`), so peak memory follows the tile, not the image.

The approach of crowsonkb/style_transfer (its issue 10): the image, and Adam's moments `m` and `v`,
live in NumPy at full size; each step walks a grid of tiles (`transfer.core.tiles`) whose offset
changes every step, computes the loss gradient of each tile's window, and applies Adam's update to
the tile's interior only.  The interiors partition the image, so every pixel takes one update per
step, with one step counter `t` for the bias correction, exactly as untiled Adam does.

Why the losses carry over: the style targets are the Gram matrices of the whole style, computed
once (they are divided by H·W, so a tile's Gram estimates the same statistic as the whole image's),
and each window's content target is computed from the same window of the content.  With a tile at
least as large as the image there is one window, the image itself, and the run is untiled Adam.

The network runs in one `tf.function` with unknown height and width, traced once: edge windows are
smaller (clipped to the image) instead of padded, so they cost only their own pixels.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from transfer.backbones.load import Backbone
from transfer.core.objective import Objective, Styles, build_objective
from transfer.core.optimizers import AdamState, NonFiniteLoss, StepCallback
from transfer.core.schedules import AdamSettings
from transfer.core.tiles import Box, Tile, step_offsets, tile_grid, window_side

_WINDOW = tf.TensorSpec((None, None, None, 3), tf.float32)


class TiledObjective:
    """An objective evaluated window by window, with the style targets of the whole output.

    It offers what the stylizer asks of an objective (`to_param`, `to_pixels`, `with_tv_eps`,
    `lower`, `upper`); `run_tiled_adam` drives it.

    Args:
      base: the run's objective, built on a window-sized crop of the content (its style targets are
        the whole style's; its content targets are replaced window by window).
      contents: `(B, H, W, 3)` content pixels at the output size, cut into windows as the grid moves.
      tile: the side of a tile's interior.
      seed: the run's seed, which draws each step's grid offset.
    """

    def __init__(self, base: Objective, contents: np.ndarray, tile: int, seed: int):
        self.base, self.contents, self.tile, self.seed = base, contents, tile, seed
        self.lower, self.upper = base.lower, base.upper
        self._window_step = tf.function(self._window_gradient, input_signature=[_WINDOW, _WINDOW])

    @classmethod
    def build(cls, backbone: Backbone, spec, contents: np.ndarray, styles: Styles) -> TiledObjective:
        """The spec's objective at the output size of `contents`, without computing features of the whole content.

        `styles` are already at the size the output wants (their Gram matrices are the targets).
        """
        side = window_side(spec.tile)
        base = build_objective(backbone, spec, contents[:, :side, :side], styles)
        return cls(base, contents, spec.tile, spec.seed)

    def with_tv_eps(self, eps: float | None) -> TiledObjective:
        base = self.base.with_tv_eps(eps)
        return self if base is self.base else TiledObjective(base, self.contents, self.tile, self.seed)

    def to_param(self, pixels: np.ndarray) -> np.ndarray:
        return self.base.to_param(pixels)

    def to_pixels(self, param: np.ndarray) -> np.ndarray:
        return self.base.to_pixels(param)

    def tiles(self, step: int) -> list[Tile]:
        """The grid of `step` (counted from 1 over the stage), shifted by the seeded offset of that step."""
        height, width = self.contents.shape[1:3]
        return tile_grid(height, width, self.tile, step_offsets(self.seed, step, self.tile))

    def window_gradient(self, param: np.ndarray, window: Box) -> tuple[dict[str, float], np.ndarray]:
        """Batch-mean loss terms of one window of `param` and their gradient over the window."""
        content = self.base.to_param(self.contents[window.slices()])
        losses, grad = self._window_step(tf.constant(param[window.slices()]), tf.constant(content))
        return {k: float(v) for k, v in losses.items()}, grad.numpy()

    def _window_gradient(self, param: tf.Tensor, content: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Traced once: content targets of this window, then the loss of `param` against them."""
        objective = copy.copy(self.base)
        objective.content_targets = self.base.features(content)[1]
        with tf.GradientTape() as tape:
            tape.watch(param)
            terms = objective.terms(param)
            total = tf.reduce_sum(terms["total"])
        return {k: tf.reduce_mean(v) for k, v in terms.items()}, tape.gradient(total, param)


class _TiledAdam:
    """Adam's state at full size in NumPy, updated one interior at a time."""

    def __init__(self, state: AdamState, settings: AdamSettings, lower: float | None, upper: float | None):
        self.param = np.array(state.param, np.float32)
        self.m, self.v = np.array(state.m, np.float32), np.array(state.v, np.float32)
        self.t, self.settings = float(state.t), settings
        self.lower = -np.inf if lower is None else lower
        self.upper = np.inf if upper is None else upper

    def update(self, interior: Box, grad: np.ndarray) -> None:
        """One Adam update of the interior's pixels with their gradient (at step count `self.t`)."""
        s, where, t = self.settings, interior.slices(), np.float32(self.t)
        self.m[where] = s.beta_1 * self.m[where] + (1.0 - s.beta_1) * grad
        self.v[where] = s.beta_2 * self.v[where] + (1.0 - s.beta_2) * np.square(grad)
        # float32 bias corrections, as `run_adam` computes them: the two runs agree to rounding
        m_hat = self.m[where] / (np.float32(1.0) - np.float32(s.beta_1) ** t)
        v_hat = self.v[where] / (np.float32(1.0) - np.float32(s.beta_2) ** t)
        step = s.learning_rate * m_hat / (np.sqrt(v_hat) + s.epsilon)
        self.param[where] = np.clip(self.param[where] - step, self.lower, self.upper)

    def snapshot(self, copy_arrays: bool = True) -> AdamState:
        arrays = (self.param, self.m, self.v)
        if copy_arrays:
            arrays = tuple(a.copy() for a in arrays)
        return AdamState(*arrays, self.t)


def _finite(losses: dict[str, float], grad: np.ndarray) -> bool:
    return all(np.isfinite(x) for x in losses.values()) and bool(np.isfinite(grad).all())


def _tiled_step(objective: TiledObjective, adam: _TiledAdam, step: int) -> dict[str, float]:
    """One step: every tile of the step's grid in turn; the losses are interior-area-weighted means.

    Tiles run one after the other on the current image (a later window's margin sees the update of
    an earlier interior), which needs no second copy of the image.  A tile whose loss or gradient
    is not finite raises `NonFiniteLoss` before its update; tiles before it have taken the step.
    """
    adam.t += 1.0
    tiles = objective.tiles(step)
    total_area = sum(t.interior.area for t in tiles)
    mean: dict[str, float] = {}
    for tile in tiles:
        losses, grad = objective.window_gradient(adam.param, tile.window)
        if not _finite(losses, grad):
            raise NonFiniteLoss(step, losses, adam.param.copy())
        adam.update(tile.interior, grad[tile.interior.within(tile.window).slices()])
        share = tile.interior.area / total_area
        for name, value in losses.items():
            mean[name] = mean.get(name, 0.0) + share * value
    return mean


def run_tiled_adam(objective: TiledObjective, state: AdamState, steps: int, settings: AdamSettings, *,
                   first_step: int = 1, callback: StepCallback | None = None, checkpoint_every: int = 0,
                   on_checkpoint: Callable[[AdamState, int], None] | None = None) -> tuple[AdamState, list[dict]]:
    """`run_adam`'s contract (same callbacks, checkpoints and errors) with the image optimised in tiles.

    The grid of step `i` depends only on the seed and `i`, so a run resumed from a checkpoint
    continues exactly as the uninterrupted one would.
    """
    adam = _TiledAdam(state, settings, objective.lower, objective.upper)
    history: list[dict] = []
    start = time.perf_counter()
    for i in range(first_step, first_step + steps):
        losses = _tiled_step(objective, adam, i)
        history.append(losses)
        stop = callback is not None and callback(i, losses, time.perf_counter() - start, adam.param.copy)
        if on_checkpoint is not None and checkpoint_every and i % checkpoint_every == 0 and not stop:
            on_checkpoint(adam.snapshot(), i)
        if stop:
            break
    return adam.snapshot(copy_arrays=False), history
