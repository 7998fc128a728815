"""Schedules: how `stylize()` spends its steps across sizes, optimisers, step sizes and losses.

A run is a list of `Stage`s, each one optimiser run at one image size.  `plain_stages` is
the classic pyramid (`--scales` sizes, `--steps` at each, the configured optimiser at one
fixed step size).  `fast_stages` (`--schedule fast`) is `FAST`, a `FastSchedule`: a list of
`Level`s, each a size (fraction of the output's sides), a share of the step budget
(`StyleConfig.steps`), an optimiser, an Adam step-size range and a total-variation
smoothing (for objectives with an L1 TV, e.g. the tutorial's).  See `FAST` for what the
measurements kept, and docs/performance-facts (issue 8) for the numbers.

Pure Python and NumPy at import: no TensorFlow, so `--help` stays instant.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

TRANSFERS = ("resize", "upsample", "correction", "keep")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One optimiser run at one size.

    Step sizes are in the objective's parameter units times the `scale` given to
    `learning_rate` (the stylizer passes the objective's pixel scale when `pixel_units`).
    `tv_smoothing` is `(eps_start, eps_end)` for a Charbonnier TV (geometric in between;
    L-BFGS keeps `eps_start` for the whole stage), or None for the objective's exact loss.
    `transfer` says how the previous stage's pixels enter this one: `resize` (8-bit Lanczos,
    the classic pyramid's), `upsample` (float bicubic), `correction` (the init at this size
    plus the upsampled change the earlier stages made, see `correction_transfer`), `keep`.
    `plateau` is `(rel, k)`: the stage ends once its loss fell by less than the fraction
    `rel` over the last `k` steps.
    """

    size: tuple[int, int]
    steps: int
    optimizer: str = "adam"
    lr_start: float = 0.02
    lr_end: float | None = None  # None: constant
    decay: str = "cosine"  # cosine | exponential (when lr_end is set)
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    pixel_units: bool = False  # step sizes given in [0, 1] pixel units
    tv_smoothing: tuple[float, float] | None = None
    transfer: str = "resize"
    plateau: tuple[float, int] | None = None
    lbfgs_memory: int = 10

    def learning_rate(self, step: int, scale: float = 1.0) -> float:
        """Adam step size before step `step` (1-based, within the stage)."""
        if self.lr_end is None or self.steps <= 1:
            return self.lr_start * scale
        f = min(max((step - 1) / (self.steps - 1), 0.0), 1.0)
        if self.decay == "exponential":
            return self.lr_start * (self.lr_end / self.lr_start) ** f * scale
        return (self.lr_end + 0.5 * (self.lr_start - self.lr_end) * (1.0 + math.cos(math.pi * f))) * scale

    def smoothing(self, step: int) -> float | None:
        """Charbonnier eps before step `step` (geometric from start to end), or None = exact."""
        if self.tv_smoothing is None:
            return None
        start, end = self.tv_smoothing
        f = 0.0 if self.steps <= 1 else min(max((step - 1) / (self.steps - 1), 0.0), 1.0)
        return start * (end / start) ** f


@dataclasses.dataclass(frozen=True)
class Level:
    """One stage of a `FastSchedule`, sized relative to the output and to the step budget."""

    fraction: float  # of the output's sides
    share: float  # of the step budget (StyleConfig.steps)
    optimizer: str = "lbfgs"
    lr: tuple[float, float] = (0.05, 0.01)  # Adam: start, end in [0, 1] pixel units (cosine)
    tv_smoothing: tuple[float, float] | None = None
    plateau: tuple[float, int] | None = None
    memory: int = 10  # L-BFGS history


@dataclasses.dataclass(frozen=True)
class FastSchedule:
    """The knobs of `--schedule fast`."""

    levels: tuple[Level, ...]
    transfer: str = "correction"
    beta_1: float = 0.9
    decay: str = "cosine"
    min_side: int = 32  # a coarse level whose shorter side would fall below this is dropped
    default_steps: int = 300  # the CLI's budget when --steps is not given


#: What the measurements kept (issue 8, 512², tutorial loss, vgg16-mri): L-BFGS at full size on
#: a Charbonnier TV whose eps shrinks stage by stage (each restart clears the L-BFGS memory, which
#: the changed loss invalidates anyway).  Coarse levels were measured and dropped: the loss of an
#: upsampled coarse result at full size is 9-14x its coarse loss (the style Grams of block2/3 need
#: pixel-level texture), and the full-size stage then needs about as many steps as from the photo.
FAST = FastSchedule(levels=(
    Level(1.0, 0.2, tv_smoothing=(0.05, 0.05)),
    Level(1.0, 0.25, tv_smoothing=(0.02, 0.02)),
    Level(1.0, 0.3, tv_smoothing=(0.01, 0.01)),
    Level(1.0, 0.25, tv_smoothing=(0.005, 0.005)),
))
#: name -> schedule; `StyleConfig.schedule` picks one (None = `plain_stages`).
SCHEDULES: dict[str, FastSchedule] = {"fast": FAST}


def plain_stages(config, height: int, width: int) -> list[Stage]:
    """The classic pyramid: `config.scales` sizes, `config.steps` each, the config's optimiser settings."""
    return [Stage(size, config.steps, config.optimizer, config.learning_rate, None, "cosine", config.beta_1,
                  config.beta_2, config.epsilon, transfer="resize", lbfgs_memory=config.lbfgs_memory)
            for size in scale_sizes(height, width, config.scales, config.scale_ratio)]


def scale_sizes(height: int, width: int, scales: int, ratio: float) -> list[tuple[int, int]]:
    """Pyramid sizes, coarsest first, ending at (height, width); each side >= 16 px."""
    sizes = []
    for k in reversed(range(scales)):
        f = ratio ** -k
        sizes.append((max(16, round(height * f)), max(16, round(width * f))))
    return sizes


def fast_stages(height: int, width: int, budget: int, schedule: FastSchedule = FAST) -> list[Stage]:
    """The stages of `schedule` for a (height, width) output and a budget of `budget` steps.

    Each level gets `round(share * budget)` steps (at least 1); coarse levels whose shorter
    side would fall below `min_side` are dropped.  Consecutive levels at one size continue
    from each other (`keep`); a size change uses the schedule's transfer.
    """
    stages: list[Stage] = []
    for level in schedule.levels:
        size = (max(1, round(height * level.fraction)), max(1, round(width * level.fraction)))
        if level.fraction < 1.0 and min(size) < schedule.min_side:
            continue
        transfer = "keep" if stages and stages[-1].size == size else schedule.transfer
        stages.append(Stage(
            size, max(1, round(level.share * budget)), level.optimizer, level.lr[0], level.lr[1], schedule.decay,
            schedule.beta_1, 0.999, 1e-8, pixel_units=True, tv_smoothing=level.tv_smoothing,
            transfer=transfer if stages else "resize", plateau=level.plateau, lbfgs_memory=level.memory))
    return stages


def stages_for(config, height: int, width: int) -> list[Stage]:
    """The stages `config` asks for (objectives without an L1 TV ignore `tv_smoothing`)."""
    if config.schedule is None:
        return plain_stages(config, height, width)
    return fast_stages(height, width, config.steps, SCHEDULES[config.schedule])


def correction_transfer(pixels: np.ndarray, base_coarse: np.ndarray, base_fine: np.ndarray) -> np.ndarray:
    """`base_fine + up(pixels - base_coarse)`, clipped to [0, 1].

    Keeps the fine detail of the base (the init at the finer size, e.g. the photo) and
    carries only the change the coarse stages made, upsampled (float bicubic).  Arrays are
    `(B, H, W, 3)` in [0, 1]; `pixels` and `base_coarse` share the coarse size.
    """
    size = base_fine.shape[1:3]
    change = np.stack([_resize_float(p - b, size) for p, b in zip(pixels, base_coarse)])
    return np.clip(base_fine + change, 0.0, 1.0).astype(np.float32)


def _resize_float(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float (possibly signed) `(H, W, C)` image; `images.resize_array` is 8-bit."""
    import tensorflow as tf  # only when a transfer happens

    out = tf.image.resize(image[None].astype(np.float32), size, method="bicubic", antialias=True)
    return out.numpy()[0]


def transfer_pixels(stage: Stage, pixels: np.ndarray, base: Callable[[tuple[int, int]], np.ndarray],
                    previous: tuple[int, int]) -> np.ndarray:
    """The previous stage's `(B, h, w, 3)` pixels brought to `stage.size` as `stage.transfer` says.

    `base(size)` is the run's init at a size (for the correction transfer).
    """
    from transfer.images import resize_batch

    size = tuple(stage.size)
    if pixels.shape[1:3] == size or stage.transfer == "keep":
        return pixels
    if stage.transfer == "correction":
        return correction_transfer(pixels, base(previous), base(size))
    if stage.transfer == "upsample":
        return np.clip(np.stack([_resize_float(p, size) for p in pixels]), 0.0, 1.0).astype(np.float32)
    return resize_batch(pixels, size)


class Plateau:
    """`update(loss)` is True once the loss fell by less than `rel` (relative) over the last `k` steps."""

    def __init__(self, rel: float, k: int):
        self.rel, self.k, self.losses = rel, k, []

    def update(self, loss: float) -> bool:
        self.losses.append(loss)
        if len(self.losses) <= self.k:
            return False
        before = self.losses[-1 - self.k]
        return (before - loss) < self.rel * abs(before)


def pixel_scale(objective) -> float:
    """Parameter units per [0, 1] pixel unit (1 for [0, 1] images, 255 for 0-255 spaces)."""
    zeros = np.zeros((1, 1, 1, 3), np.float32)
    return float(np.mean(np.abs(objective.to_param(zeros + 1.0) - objective.to_param(zeros))))

