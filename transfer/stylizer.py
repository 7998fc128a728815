"""The optimisation: update the pixels of an image to match content and style.

`stylize()` runs a list of stages (`transfer.schedules`: the classic pyramid of scales, coarse
to fine, each initialised from the previous result, or `--schedule fast`), at each size
building an `Objective` (targets computed once) and running Adam (one compiled step) or
L-BFGS (scipy, compiled value-and-gradient).  Colour preservation, style blending, init
choice and interrupt/resume wrap around that core.

The API is functional and batch-aware: contents may be `(B, H, W, 3)` sharing one style,
losses are per image, and `callback` sees every step (progress bars, snapshots, a web
page); nothing here prints.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from transfer.backbones import Backbone
from transfer.colour import luminance_transfer, match_colour_statistics
from transfer.config import StyleConfig
from transfer.errors import DivergenceError
from transfer.features import layer_spec
from transfer.images import resize_array, resize_batch
from transfer.objective import NormalisedObjective, Objective
from transfer.optimizers import AdamState, NonFiniteLoss, run_adam, run_lbfgs
from transfer.resume import Interrupted, RunState, stop_on_signals
from transfer.schedules import Plateau, Stage, pixel_scale, scale_sizes, stages_for, transfer_pixels

__all__ = ["StepInfo", "StyleConfig", "StyleResult", "scale_sizes", "stylize"]


@dataclasses.dataclass
class StepInfo:
    """What a callback sees after each step (losses are batch means, as floats)."""

    step: int  # counted over all scales, from 1
    steps: int  # total over all scales
    scale: int  # index into the pyramid, 0 = coarsest
    size: tuple[int, int]  # (height, width) at this scale
    losses: dict[str, float]
    seconds: float
    image: Callable[[], np.ndarray]  # current image(s) as [0, 1] RGB; costs a copy


@dataclasses.dataclass
class StyleResult:
    image: np.ndarray  # (H, W, 3) for a single run, (B, H, W, 3) for a batch
    history: list[dict[str, float]]
    seconds: float
    config: StyleConfig


def _as_styles(style) -> list[tuple[np.ndarray, float]]:
    if isinstance(style, np.ndarray):
        return [(style, 1.0)]
    return [(np.asarray(img, np.float32), float(w)) for img, w in style]


def _style_at(style: np.ndarray, content_size: tuple[int, int], style_scale: float) -> np.ndarray:
    """Resize a style image so its longest side is `style_scale` x the content's longest side."""
    target = max(16, round(max(content_size) * style_scale))
    h, w = style.shape[:2]
    f = target / max(h, w)
    return resize_array(style, (max(1, round(h * f)), max(1, round(w * f))))


def make_objective(backbone: Backbone, config: StyleConfig) -> Objective:
    """The objective a config asks for: this toolkit's normalised loss, or a seed recipe's."""
    spec = layer_spec(config.layers, config.style_layers, config.content_layers)
    if config.recipe:
        from transfer.recipes import recipe_objective

        return recipe_objective(config.recipe, backbone, spec, config)
    return NormalisedObjective(backbone, spec, config.style_weight, config.content_weight, config.tv_weight)


def _use_tv_smoothing(objective: Objective, stage: Stage):
    """Give the objective this stage's TV: a Charbonnier eps variable (the steps update it) or exact."""
    if not objective.supports_tv_smoothing:
        return None
    if stage.tv_smoothing is None:
        objective.tv_smoothing = None
        return None
    import tensorflow as tf

    objective.tv_smoothing = tf.Variable(stage.smoothing(1), dtype=tf.float32, trainable=False)
    return objective.tv_smoothing


def initial_pixels(contents: np.ndarray, styles, config: StyleConfig, init_image: np.ndarray | None) -> np.ndarray:
    """`content` (the photo), `noise` (seeded uniform), `style`, or an explicit image."""
    size = contents.shape[1:3]
    if init_image is not None:
        return np.broadcast_to(resize_array(init_image, size), contents.shape).astype(np.float32).copy()
    if config.init == "noise" and config.recipe == "coursera":
        from transfer.recipes import coursera_noise_init

        return coursera_noise_init(contents, config.seed)
    if config.init == "noise":
        return np.random.default_rng(config.seed).uniform(0.0, 1.0, contents.shape).astype(np.float32)
    if config.init == "style":
        return np.broadcast_to(resize_array(styles[0][0], size), contents.shape).astype(np.float32).copy()
    return contents.copy()


def stylize(
    content: np.ndarray,
    style,
    backbone: Backbone,
    config: StyleConfig | None = None,
    callback: Callable[[StepInfo], bool | None] | None = None,
    *,
    init_image: np.ndarray | None = None,
    state_path: str | os.PathLike | None = None,
    resume: RunState | None = None,
    checkpoint_every: int = 50,
) -> StyleResult:
    """Optimise an image so its features match `content` and its style statistics `style`.

    Args:
      content: float RGB in [0, 1], `(H, W, 3)`, or a batch `(B, H, W, 3)` sharing one style.
      style: `(h, w, 3)` array, or a list of `(array, weight)` pairs to blend styles.
      backbone: from `transfer.backbones.load_backbone`.
      config: a `StyleConfig`; defaults are the toolkit's recommendation.
      callback: called after every step with a `StepInfo`; returning True stops the run.
      init_image: explicit starting image (overrides `config.init`).
      state_path: where to save a resumable `RunState` every `checkpoint_every` steps and
        when SIGINT/SIGTERM stops the run (`Interrupted` is raised after saving).
      resume: a `RunState` to continue from (same inputs and config).
    Raises:
      DivergenceError: the loss became NaN/inf; `.last_good_image` holds the last good image.
      Interrupted: SIGINT/SIGTERM arrived; the state was saved to `state_path`.
    """
    config = config or StyleConfig()
    config.validate()
    single = content.ndim == 3
    contents_full = np.asarray(content[None] if single else content, np.float32)
    styles = _as_styles(style)
    if config.preserve_colors == "histogram":
        styles = [(match_colour_statistics(img, contents_full[0]), w) for img, w in styles]
    stages = stages_for(config, *contents_full.shape[1:3])
    total_steps = sum(stage.steps for stage in stages)
    offsets = np.cumsum([0] + [stage.steps for stage in stages]).tolist()
    history: list[dict] = list(resume.history) if resume else []
    start = time.perf_counter()

    def base(size):  # the init at a size: where the run starts, and what a correction transfer adds to
        return initial_pixels(resize_batch(contents_full, size), styles, config, init_image)

    pixels = base(stages[0].size)
    unbatch = (lambda a: a[0]) if single else (lambda a: a)  # noqa: E731
    objectives: dict[tuple[int, int], Objective] = {}  # stages at one size share their targets

    with stop_on_signals() as stop:
        for index, stage in enumerate(stages):
            size = stage.size
            if resume and index < resume.scale_index:
                continue
            objective = objectives.get(size)
            if objective is None:
                objective = objectives[size] = make_objective(backbone, config)
                contents = resize_batch(contents_full, size)
                objective.set_targets(contents, [(_style_at(img, size, config.style_scale), w) for img, w in styles])
            smoothing = _use_tv_smoothing(objective, stage)
            if resume and index == resume.scale_index:
                adam = AdamState(resume.param, resume.m, resume.v, resume.t) if resume.m is not None else None
                param, done = resume.param, resume.steps_done
            else:
                if index > 0:
                    pixels = transfer_pixels(stage, pixels, base, stages[index - 1].size)
                param, done, adam = objective.to_param(pixels), 0, None
            offset = offsets[index]
            scale = pixel_scale(objective) if stage.pixel_units else 1.0
            plateau = Plateau(*stage.plateau) if stage.plateau else None
            ended: list[int] = []

            def save(param_now, adam_now, steps_done, index=index):
                if state_path is not None:
                    RunState(index, steps_done, param_now, adam_now.m if adam_now else None,
                             adam_now.v if adam_now else None, adam_now.t if adam_now else 0.0,
                             history, config.to_dict()).save(state_path)

            def on_step(step, losses, seconds, current_param, objective=objective, size=size, offset=offset,
                        index=index, plateau=plateau, ended=ended):
                history.append(losses)
                if callback is not None:
                    info = StepInfo(offset + step, total_steps, index, size, losses, time.perf_counter() - start,
                                    lambda: unbatch(objective.to_pixels(current_param())))
                    if callback(info):
                        return True
                if plateau is not None and plateau.update(losses["total"]):
                    ended.append(step)
                    return True
                return stop.is_set()

            def before_step(step, stage=stage, smoothing=smoothing):
                if smoothing is not None:
                    smoothing.assign(stage.smoothing(step))

            try:
                before = len(history)
                if stage.optimizer == "adam":
                    adam, _ = run_adam(objective, adam or AdamState.start(param), stage.steps - done,
                                       learning_rate=functools.partial(stage.learning_rate, scale=scale), beta_1=stage.beta_1,
                                       beta_2=stage.beta_2, epsilon=stage.epsilon, first_step=done + 1,
                                       callback=on_step, checkpoint_every=checkpoint_every,
                                       on_checkpoint=lambda state, step: save(state.param, state, step),
                                       before_step=before_step)
                    param = adam.param
                else:
                    adam = None
                    before_step(1)  # L-BFGS keeps one loss for its whole run
                    param, _ = run_lbfgs(objective, param, stage.steps - done, memory=stage.lbfgs_memory,
                                         first_step=done + 1, callback=on_step)
                done += len(history) - before
                if ended and not stop.is_set():
                    done = stage.steps  # a plateau ends the stage: a resume starts at the next one
                save(param, adam, done)
            except NonFiniteLoss as exc:
                raise DivergenceError(
                    f"loss or gradient became non-finite at step {offset + exc.step} "
                    f"(loss {exc.losses.get('total', float('nan')):.4g}); lower --learning-rate or the loss "
                    "weights. The last good image was kept.",
                    last_good_image=unbatch(objective.to_pixels(exc.param)), step=offset + exc.step,
                ) from None
            pixels = objective.to_pixels(param)
            if stop.is_set():
                where = f" State saved to {state_path}; continue with --resume." if state_path else ""
                raise Interrupted(f"interrupted at step {offset + done} of {total_steps}.{where}")

    if config.preserve_colors == "luminance":
        pixels = np.stack([luminance_transfer(p, c) for p, c in zip(pixels, contents_full)])
    return StyleResult(unbatch(pixels), history, time.perf_counter() - start, config)
