"""The optimisation: update the pixels of an image to match content and style.

`stylize()` takes the arrays, a backbone and a `RunSpec`, and runs the spec's stages
(`transfer.core.schedules`): for each one it builds (or reuses, at an unchanged size) an
objective with its targets, runs `run_stage` (Adam or L-BFGS) and carries the pixels to the
next size.  Colour preservation, style blending, the init and interrupt/resume wrap around
that core.

The API is batch-aware: contents may be `(B, H, W, 3)` sharing one style, losses are per
image, and `callback` sees every step (progress bars, snapshots, a web page); nothing here
prints.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from transfer.backbones.load import Backbone
from transfer import limits
from transfer.core.colour import luminance_transfer, match_colour_statistics
from transfer.core.objective import Objective, Styles, build_objective
from transfer.core.optimizers import AdamState, NonFiniteLoss, StepCallback, run_adam, run_lbfgs
from transfer.core.schedules import LBFGS_MEMORY, MIN_SIDE, Stage, stages_for
from transfer.core.spec import PLATEAU_WINDOW, RunSpec
from transfer.core.temporal import TemporalTarget, with_temporal
from transfer.core.targets import TargetCache
from transfer.core.tiling import TiledObjective, run_tiled_adam
from transfer.errors import DetstyleError, DivergenceError, UsageError
from transfer.io.images import resize_array, resize_batch
from transfer.io.run_state import Interrupted, RunState, stop_on_signals

log = logging.getLogger("detstyle")

__all__ = ["StageResult", "StepInfo", "StyleResult", "run_stage", "stylize"]


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each step (losses are batch means, as floats)."""

    step: int  # counted over all stages, from 1
    steps: int  # total over all stages
    stage: int  # index into the run's stages, 0 = first (the coarsest scale of a pyramid)
    size: tuple[int, int]  # (height, width) of this stage
    losses: dict[str, float]
    seconds: float
    image: Callable[[], np.ndarray]  # current image(s) as [0, 1] RGB; costs a copy


@dataclasses.dataclass(frozen=True)
class StyleResult:
    image: np.ndarray  # (H, W, 3) for a single run, (B, H, W, 3) for a batch
    history: list[dict[str, float]]
    seconds: float
    spec: RunSpec
    stop_reason: str = "budget"  # budget | plateau | callback


class PlateauRule:
    """Ends a run whose loss has stopped falling: the mean loss of the last `window` steps is less
    than `tolerance` (a share) below the mean of the `window` steps before.

    Means of windows, not two single steps, so Adam's step-to-step noise does not end a run
    that is still improving; L-BFGS's occasional uphill iteration neither.  Only the last stage
    of a run is watched (a coarse scale that plateaus still has its finer scales to run).
    """

    def __init__(self, tolerance: float, window: int):
        self.tolerance, self.window = tolerance, window
        self.losses: list[float] = []

    def reached(self, loss: float) -> bool:
        self.losses.append(loss)
        if len(self.losses) < 2 * self.window:
            return False
        before = float(np.mean(self.losses[-2 * self.window : -self.window]))
        now = float(np.mean(self.losses[-self.window :]))
        return before - now < self.tolerance * abs(before)


@dataclasses.dataclass(frozen=True)
class StageResult:
    """Where a stage ended: its parameters, Adam's state (None for L-BFGS), the steps it ran."""

    param: np.ndarray
    adam: AdamState | None
    history: list[dict[str, float]]
    done: int  # steps completed in this stage, counting those before a resume


def run_stage(objective: Objective, stage: Stage, param: np.ndarray, *, adam: AdamState | None = None,
              done: int = 0, on_step: StepCallback | None = None, checkpoint_every: int = 0,
              on_checkpoint: Callable[[AdamState, int], None] | None = None) -> StageResult:
    """Run one stage's optimiser from `param` (and Adam's saved moments), `done` steps already run.

    Raises `NonFiniteLoss` (from the optimiser) when the loss or gradient stops being finite.
    """
    remaining = stage.steps - done
    if isinstance(objective, TiledObjective):  # `--tile`: Adam one tile at a time (transfer.core.tiling)
        state, history = run_tiled_adam(objective, adam or AdamState.start(param), remaining, stage.adam,
                                        first_step=done + 1, callback=on_step, checkpoint_every=checkpoint_every,
                                        on_checkpoint=on_checkpoint)
        return StageResult(state.param, state, history, done + len(history))
    if stage.optimizer == "adam":
        state, history = run_adam(objective, adam or AdamState.start(param), remaining, stage.adam,
                                  first_step=done + 1, callback=on_step, checkpoint_every=checkpoint_every,
                                  on_checkpoint=on_checkpoint, average_decay=stage.average_decay)
        return StageResult(state.result, state, history, done + len(history))
    param, history = run_lbfgs(objective, param, remaining, memory=LBFGS_MEMORY, first_step=done + 1,
                               callback=on_step)
    return StageResult(param, None, history, done + len(history))


class _Progress:
    """Collects the run's loss history and turns each optimiser step into a `StepInfo`."""

    def __init__(self, total: int, callback, stop: threading.Event, single: bool, history: list[dict]):
        self.total, self.callback, self.stop, self.single = total, callback, stop, single
        self.history = history
        self.halted: str | None = None  # why the run ends early: "callback" or "plateau"
        self.started = time.perf_counter()

    def for_stage(self, index: int, stage: Stage, offset: int, objective: Objective,
                  plateau: PlateauRule | None = None) -> StepCallback:
        return functools.partial(self._on_step, index, stage.size, offset, objective, plateau)

    def _on_step(self, index, size, offset, objective, plateau, step, losses, seconds, current_param) -> bool:
        self.history.append(losses)
        if self.callback is not None:
            image = functools.partial(self.pixels, objective, current_param)
            info = StepInfo(offset + step, self.total, index, size, losses, self.seconds(), image)
            if self.callback(info):
                self.halted = "callback"
                return True
        if plateau is not None and plateau.reached(losses["total"]):
            self.halted = "plateau"
            return True
        return self.stop.is_set()

    def pixels(self, objective: Objective, param) -> np.ndarray:
        array = objective.to_pixels(param() if callable(param) else param)
        return array[0] if self.single else array

    def seconds(self) -> float:
        return time.perf_counter() - self.started


class _Checkpointer:
    """Saves a resumable `RunState` for the spec at `path` (or does nothing without a path)."""

    def __init__(self, path: str | os.PathLike | None, spec: RunSpec, history: list[dict]):
        self.path, self.spec, self.history = path, spec.to_dict(), history

    def save(self, index: int, param: np.ndarray, adam: AdamState | None, done: int) -> None:
        if self.path is None:
            return
        m, v, t = (adam.m, adam.v, adam.t) if adam is not None else (None, None, 0.0)
        RunState(index, done, param, m, v, t, self.history, self.spec).save(self.path)

    def for_stage(self, index: int) -> Callable[[AdamState, int], None]:
        return functools.partial(self._save_adam, index)

    def _save_adam(self, index: int, state: AdamState, step: int) -> None:
        self.save(index, state.param, state, step)


def _as_styles(style) -> list[tuple[np.ndarray, float]]:
    if isinstance(style, np.ndarray):
        return [(style, 1.0)]
    return [(np.asarray(img, np.float32), float(w)) for img, w in style]


def style_at(style: np.ndarray, content_size: tuple[int, int], style_scale: float | None) -> np.ndarray:
    """The style with its longest side `style_scale` x the content's (None: left as it is).

    Each side is at least MIN_SIDE px (a 10000 x 10 strip is stretched, not fed to the pools as
    0 px).  A style that would exceed `--limit style_pixels` (its activations alone take
    pixels x 64 x 4 bytes; a 12800 px one crashed TensorFlow) is made as large as the limit
    allows instead, with a notice.
    """
    if style_scale is None:
        return style
    h, w = style.shape[:2]
    f = max(MIN_SIDE, round(max(content_size) * style_scale)) / max(h, w)
    size = (max(MIN_SIDE, round(h * f)), max(MIN_SIDE, round(w * f)))
    allowed = limits.current().style_pixels
    if size[0] * size[1] > allowed:
        shrink = math.sqrt(allowed / (size[0] * size[1]))
        fitted = tuple(max(MIN_SIDE, int(side * shrink + 1e-6)) for side in size)
        log.info("--style-scale %g asks for a %dx%d style, above --limit style_pixels=%d; using %dx%d",
                 style_scale, size[1], size[0], allowed, fitted[1], fitted[0])
        size = fitted
    return resize_array(style, size)


def initial_pixels(contents: np.ndarray, styles: Styles, spec: RunSpec, init_image: np.ndarray | None) -> np.ndarray:
    """`content` (the photo), `noise` (seeded; a recipe may have its own), `style`, or `image`."""
    size = contents.shape[1:3]
    if spec.init == "image":
        if init_image is None:
            raise UsageError("the spec starts from an init image, but none was given")
        return np.broadcast_to(resize_array(init_image, size), contents.shape).astype(np.float32).copy()
    if spec.init == "noise":
        from transfer.seeds.recipes import NOISE_INITS

        if spec.recipe in NOISE_INITS:
            return NOISE_INITS[spec.recipe](contents, spec.seed)
        return np.random.default_rng(spec.seed).uniform(0.0, 1.0, contents.shape).astype(np.float32)
    if spec.init == "style":
        return np.broadcast_to(resize_array(styles[0][0], size), contents.shape).astype(np.float32).copy()
    return contents.copy()


def _recipe_adam(spec: RunSpec):
    """Adam's moment constants: a seed recipe's own, else None (the schedule's defaults)."""
    if spec.recipe is None:
        return None
    from transfer.seeds.registry import RECIPE_SETTINGS

    return RECIPE_SETTINGS[spec.recipe].adam


def _objective_at(backbone: Backbone, spec: RunSpec, contents_full: np.ndarray, styles: Styles,
                  size: tuple[int, int], targets: TargetCache | None = None,
                  temporal: TemporalTarget | None = None) -> Objective:
    """The spec's objective with its targets for one output size (taken from `targets` when cached there),
    plus the temporal term of a video frame when the spec has one."""
    sized = [(style_at(img, size, spec.style_scale), w) for img, w in styles]
    if spec.tile is not None:  # features of the whole content would cost what tiling saves
        return TiledObjective.build(backbone, spec, resize_batch(contents_full, size), sized)
    objective = build_objective(backbone, spec, resize_batch(contents_full, size), sized, targets=targets)
    return with_temporal(objective, spec, temporal, size)


@dataclasses.dataclass(frozen=True)
class _Start:
    param: np.ndarray
    adam: AdamState | None
    done: int


def _stage_start(objective: Objective, stage: Stage, pixels: np.ndarray, resume: RunState | None,
                 previous: AdamState | None = None) -> _Start:
    """A fresh stage starts from the previous stage's pixels (or, with `carry_moments`, its whole
    Adam state resized); a resumed one from the saved state."""
    if resume is None and stage.carry_moments and previous is not None:
        carried = previous.resized(stage.size)
        lo = -np.inf if objective.lower is None else objective.lower
        hi = np.inf if objective.upper is None else objective.upper
        param = np.clip(carried.param, lo, hi)  # bicubic resampling overshoots the box
        return _Start(param, dataclasses.replace(carried, param=param), 0)
    if resume is None:
        return _Start(objective.to_param(resize_batch(pixels, stage.size)), None, 0)
    adam = AdamState(resume.param, resume.m, resume.v, resume.t) if resume.m is not None else None
    return _Start(resume.param, adam, resume.steps_done)


def _resume_or_run(objective, stage, start: _Start, on_step, checkpoint_every, on_checkpoint) -> StageResult:
    if start.done >= stage.steps:  # saved at the end of this stage: nothing left to run
        return StageResult(start.param, start.adam, [], start.done)
    return run_stage(objective, stage, start.param, adam=start.adam, done=start.done, on_step=on_step,
                     checkpoint_every=checkpoint_every, on_checkpoint=on_checkpoint)


def _divergence(exc: NonFiniteLoss, offset: int, progress: _Progress, objective: Objective) -> DivergenceError:
    step = offset + exc.step
    cause = ("lower --learning-rate or the loss weights" if step > 1 else
             "it is not finite from the first step, so the step size is not the cause: a loss weight overflows "
             "float32, or an input image or the backbone's weights hold NaN/inf")
    return DivergenceError(
        f"loss or gradient became non-finite at step {step} (loss {exc.losses.get('total', float('nan')):.4g}); "
        + cause, last_good_image=progress.pixels(objective, exc.param), step=step,
    )


def _check_inputs(spec: RunSpec, backbone: Backbone, resume: RunState | None) -> None:
    if spec.backbone is not None and backbone.ref != spec.backbone:
        changed = ", ".join(spec.differences(dataclasses.replace(spec, backbone=backbone.ref)))
        raise DetstyleError(f"the backbone given differs from the spec's ({changed})")
    if resume is not None:
        resume.check_matches(spec)


def stylize(
    content: np.ndarray,
    style,
    backbone: Backbone,
    spec: RunSpec | None = None,
    callback: Callable[[StepInfo], bool | None] | None = None,
    *,
    init_image: np.ndarray | None = None,
    state_path: str | os.PathLike | None = None,
    resume: RunState | None = None,
    checkpoint_every: int = 50,
    targets: TargetCache | None = None,
    temporal: TemporalTarget | None = None,
) -> StyleResult:
    """Optimise an image so its features match `content` and its style statistics `style`.

    Args:
      content: float RGB in [0, 1], `(H, W, 3)`, or a batch `(B, H, W, 3)` sharing one style.  With
        Adam each image of a batch gets exactly its own run's result; L-BFGS minimises the batch's
        summed loss with one line search, so its images differ from separate runs.
      style: `(h, w, 3)` array, or a list of `(array, weight)` pairs to blend styles.
      backbone: from `transfer.backbones.load.load_backbone`; must match `spec.backbone` if set.
      spec: a `RunSpec` from `make_spec`; the default is the toolkit's recommendation.
      callback: called after every step with a `StepInfo`; returning True stops the run.
      init_image: the starting image when `spec.init == "image"`.
      state_path: where to save a resumable `RunState` every `checkpoint_every` steps, after
        each stage and when SIGINT/SIGTERM stops the run (`Interrupted` is raised after saving).
      resume: a `RunState` saved for the same spec (anything else is refused, naming the fields).
      targets: a `TargetCache` shared across runs (a grid), so each content's features and each
        style's statistics are computed once; results are bit-identical to uncached ones.
      temporal: the warped previous frame and its mask when `spec.temporal_weight` is set (video).
    Raises:
      DivergenceError: the loss became NaN/inf; `.last_good_image` holds the last good image.
      Interrupted: SIGINT/SIGTERM arrived; the state was saved to `state_path`.
    """
    spec = spec or RunSpec()
    _check_inputs(spec, backbone, resume)
    single = content.ndim == 3
    contents_full = np.asarray(content[None] if single else content, np.float32)
    styles = _as_styles(style)
    if spec.preserve_colors == "histogram":
        styles = [(match_colour_statistics(img, contents_full[0]), w) for img, w in styles]
    adam_constants = _recipe_adam(spec)
    stages = stages_for(spec, *contents_full.shape[1:3], adam=adam_constants)
    offsets = np.cumsum([0] + [stage.steps for stage in stages]).tolist()
    if resume is not None:
        resume.check_fits([s.size for s in stages], [s.steps for s in stages], contents_full.shape[0])
    history: list[dict] = list(resume.history) if resume else []
    first = resume.stage_index if resume else 0

    with stop_on_signals() as stop:
        progress = _Progress(offsets[-1], callback, stop, single, history)
        saver = _Checkpointer(state_path, spec, history)
        pixels = initial_pixels(resize_batch(contents_full, stages[0].size), styles, spec, init_image)
        objectives: dict[tuple[int, int], Objective] = {}  # stages at one size share their targets
        carried: AdamState | None = None  # the last stage's Adam state, for a stage that carries it on
        for index in range(first, len(stages)):
            stage = stages[index]
            if stage.size not in objectives:
                objectives[stage.size] = _objective_at(backbone, spec, contents_full, styles, stage.size, targets,
                                                      temporal)
            objective = objectives[stage.size].with_tv_eps(stage.tv_eps)
            start = _stage_start(objective, stage, pixels, resume if index == first else None, carried)
            try:
                on_step = progress.for_stage(index, stage, offsets[index], objective,
                                             _plateau_rule(spec) if index == len(stages) - 1 else None)
                result = _resume_or_run(objective, stage, start, on_step, checkpoint_every if state_path else 0,
                                        saver.for_stage(index))
            except NonFiniteLoss as exc:
                raise _divergence(exc, offsets[index], progress, objective) from None
            saver.save(index, result.param, result.adam, result.done)
            if stop.is_set():
                where = f" State saved to {state_path}; continue with --resume." if state_path else ""
                raise Interrupted(f"interrupted at step {offsets[index] + result.done} of {offsets[-1]}.{where}")
            pixels, carried = objective.to_pixels(result.param), result.adam
            if progress.halted:
                break

    if spec.preserve_colors == "luminance":
        pixels = np.stack([luminance_transfer(p, c) for p, c in zip(pixels, contents_full)])
    return StyleResult(pixels[0] if single else pixels, history, progress.seconds(), spec, progress.halted or "budget")


def _plateau_rule(spec: RunSpec) -> PlateauRule | None:
    return None if spec.plateau is None else PlateauRule(spec.plateau, PLATEAU_WINDOW)
