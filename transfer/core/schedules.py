"""Schedules: how a run spends its steps across image sizes, optimisers and losses.

A run is a list of `Stage`s, each one optimiser run at one image size.  The `plain`
schedule is the classic pyramid: `--scales` sizes (ratio sqrt 2, coarsest first), `--steps`
iterations at each, one optimiser.  A named schedule (`SCHEDULES`: `fast`, `pyramid`) spends a
whole budget of `--steps` on its own stages.  `pyramid` is crowsonkb's way of climbing sizes
(averaged iterates and resized Adam moments carried up); issue 21 measured it against ours
(bench/results/levers_512.json, default_speed_*.json) and it is offered, not the default.

`fast` is what the measurements kept (issue 8, 512², the tutorial's loss, vgg16-mri):
L-BFGS at full size on a Charbonnier-smoothed total variation whose eps shrinks stage by
stage (each restart clears the L-BFGS memory, which the changed loss invalidates anyway).
Tried during issue 8 and dropped, so not offered (those trials are not committed benchmarks,
so no figure is quoted here): coarse-to-fine levels (an upsampled coarse result loses its
fine texture at full size), Adam with cosine step sizes, a larger L-BFGS memory.

Pure Python at import: no TensorFlow, so `--help` stays instant.
"""

from __future__ import annotations

import dataclasses
import math

#: Pyramid ratio between consecutive sizes of the plain schedule.
SCALE_RATIO = math.sqrt(2.0)
#: No pyramid level is smaller than this many pixels on a side (VGG16 pools four times).
MIN_SIDE = 16
#: L-BFGS history length (scipy's default).
LBFGS_MEMORY = 10


@dataclasses.dataclass(frozen=True)
class AdamSettings:
    """Adam's step size (in the objective's parameter units) and moment constants."""

    learning_rate: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


@dataclasses.dataclass(frozen=True)
class Stage:
    """One optimiser run at one size.

    `adam` holds the step settings when `optimizer` is "adam".  `tv_eps` is the Charbonnier
    eps of a smoothed L1 total variation for objectives that have one (None: exact).
    `average_decay`: Adam keeps an exponential moving average of its iterates, which is the
    stage's image.  `carry_moments`: the stage starts from the previous stage's Adam state
    resized to this size (image and moments), not from fresh moments.
    """

    size: tuple[int, int]
    steps: int
    optimizer: str
    adam: AdamSettings | None = None
    tv_eps: float | None = None
    average_decay: float | None = None
    carry_moments: bool = False


@dataclasses.dataclass(frozen=True)
class NamedSchedule:
    """A schedule that spends a whole budget: each stage's share of it and its TV smoothing."""

    shares: tuple[float, ...]
    tv_eps: tuple[float, ...]
    description: str
    default_steps: int = 300

    def stages(self, height: int, width: int, budget: int) -> list[Stage]:
        return [Stage((height, width), max(1, round(share * budget)), "lbfgs", tv_eps=eps)
                for share, eps in zip(self.shares, self.tv_eps)]


@dataclasses.dataclass(frozen=True)
class PyramidSchedule:
    """Adam over a pyramid the way crowsonkb's style_transfer runs it (its `stylize`, 2021).

    Sizes grow by sqrt 2 from `min_side` px on the longest side to the output; each scale
    starts from the previous scale's *average* image (an exponential moving average of the
    iterates, decay 0.99) resized bicubically, and Adam's moment buffers are resized with it,
    so the first steps at a new size keep the direction and per-pixel step lengths learnt
    below instead of starting from zero moments.  The budget of `--steps` is split so each
    scale gets `shares[k]` of it, counted from the output scale downward (the last share
    repeats for smaller scales); the cost of a step grows with the pixels, so coarse steps
    are cheap.
    """

    description: str
    shares: tuple[float, ...]
    min_side: int = 128
    learning_rate: float = 0.02
    average_decay: float = 0.99
    default_steps: int = 300

    def sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        longest = max(height, width)
        levels = 1 + max(0, math.floor(math.log(longest / self.min_side) / math.log(SCALE_RATIO) + 1e-9))
        return scale_sizes(height, width, levels)

    def stages(self, height: int, width: int, budget: int) -> list[Stage]:
        sizes = self.sizes(height, width)
        shares = [self.shares[min(k, len(self.shares) - 1)] for k in range(len(sizes))][::-1]
        total = sum(shares)
        adam = AdamSettings(self.learning_rate)
        return [Stage(size, max(1, round(budget * share / total)), "adam", adam, average_decay=self.average_decay,
                      carry_moments=k > 0)
                for k, (size, share) in enumerate(zip(sizes, shares))]


FAST = NamedSchedule(
    shares=(0.2, 0.25, 0.3, 0.25), tv_eps=(0.05, 0.02, 0.01, 0.005),
    description="L-BFGS at full size on a smoothed total variation whose smoothing shrinks stage by stage",
)
PYRAMID = PyramidSchedule(
    description="Adam from 128 px up in sqrt 2 steps, carrying the averaged image and Adam's moments to each size",
    shares=(1.0,),
)
#: name -> schedule; "plain" (the pyramid of one optimiser) is not in it because it has no budget split.
SCHEDULES: dict[str, NamedSchedule | PyramidSchedule] = {"fast": FAST, "pyramid": PYRAMID}
SCHEDULE_NAMES: tuple[str, ...] = ("plain", *SCHEDULES)


def scale_sizes(height: int, width: int, scales: int, ratio: float = SCALE_RATIO) -> list[tuple[int, int]]:
    """Pyramid sizes, coarsest first, ending at (height, width); each side >= MIN_SIDE px."""
    sizes = []
    for k in reversed(range(scales)):
        f = ratio**-k
        sizes.append((max(MIN_SIDE, round(height * f)), max(MIN_SIDE, round(width * f))))
    return sizes


def stages_for(spec, height: int, width: int, adam: AdamSettings | None = None) -> list[Stage]:
    """The stages a `RunSpec` asks for at an output of (height, width).

    `adam` carries the moment constants of the objective (a seed recipe fixes its own);
    the step size always comes from the spec.
    """
    if spec.schedule != "plain":
        return SCHEDULES[spec.schedule].stages(height, width, spec.steps)
    settings = None
    if spec.optimizer == "adam":
        base = adam or AdamSettings(spec.learning_rate)
        settings = dataclasses.replace(base, learning_rate=spec.learning_rate)
    return [Stage(size, spec.steps, spec.optimizer, settings)
            for size in scale_sizes(height, width, spec.scales)]
