"""Schedules: how a run spends its steps across image sizes, optimisers and losses.

A run is a list of `Stage`s, each one optimiser run at one image size.  The `plain`
schedule is the classic pyramid: `--scales` sizes (ratio sqrt 2, coarsest first), `--steps`
iterations at each, one optimiser.  A named schedule (`SCHEDULES`, today `fast`) spends a
whole budget of `--steps` on its own stages.

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
    """

    size: tuple[int, int]
    steps: int
    optimizer: str
    adam: AdamSettings | None = None
    tv_eps: float | None = None


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


FAST = NamedSchedule(
    shares=(0.2, 0.25, 0.3, 0.25), tv_eps=(0.05, 0.02, 0.01, 0.005),
    description="L-BFGS at full size on a smoothed total variation whose smoothing shrinks stage by stage",
)
#: name -> schedule; "plain" (the pyramid of one optimiser) is not in it because it has no budget split.
SCHEDULES: dict[str, NamedSchedule] = {"fast": FAST}
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
