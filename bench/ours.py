"""Our loop as a user calls it: `transfer.stylizer.stylize`, timed through its callback.

Variants:
  `ours`        the default `StyleConfig()` (Adam), which is what `detstyle stylize` runs;
  `ours-bf16`   the same step on `with_precision(backbone, "bf16")` (Keras `mixed_bfloat16`: bf16
                convolutions, fp32 variables; the objective casts features to fp32 before its
                Gram matrices and losses), measured here only, for the bf16 floor;
  `OPTIONAL_VARIANTS`, run only when `StyleConfig` (and `transfer.recipes`) has what they
                set: L-BFGS, multi-scale, the fast schedule (`--schedule fast`, fp32 and on a
                bf16 copy of the backbone), all on the tutorial's own loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from bench.probe import Probe
from transfer.backbones import Backbone
from transfer.config import StyleConfig
from transfer.stylizer import stylize

#: Extra configurations of ours: name -> StyleConfig fields ("recipe": a `transfer.recipes`
#: name applied first).  The `tutorial` recipe makes our loop minimise the yardstick's own
#: loss, the only way "time to the tutorial's loss" can be won; the default objective is a
#: different loss.  Edit as the options settle.
#: The fast schedule's step budget in the race (its stages split it; the probe stops it at the target).
#: 250 L-BFGS iterations take about 300 s at 512² in bf16 here, full mode's cap, so every stage runs.
FAST_STEPS = 250
OPTIONAL_VARIANTS: dict[str, dict] = {
    "ours-lbfgs": {"optimizer": "lbfgs"},
    "ours-tutorial-lbfgs": {"recipe": "tutorial", "optimizer": "lbfgs"},
    "ours-tutorial-multiscale": {"recipe": "tutorial", "scales": 3},  # ratio sqrt(2): 1/2, 1/sqrt(2), 1
    "ours-tutorial-fast": {"recipe": "tutorial", "schedule": "fast", "steps": FAST_STEPS},
    # "precision" is not a StyleConfig field: build_methods runs the variant on
    # with_precision(backbone, "bf16"), which is what `detstyle stylize --precision bf16` does
    "ours-tutorial-fast-bf16": {"recipe": "tutorial", "schedule": "fast", "steps": FAST_STEPS, "precision": "bf16"},
}
#: Keys of a variant that choose its backbone, not its StyleConfig.
BACKBONE_KEYS = ("precision",)
#: A step budget for `StyleConfig.steps` when the probe stops the run on time or target.
UNBOUNDED_STEPS = 1_000_000


def available_variants() -> tuple[dict[str, dict], list[str]]:
    """The optional variants `StyleConfig` supports, and a note for each one it does not."""
    fields = {f.name for f in dataclasses.fields(StyleConfig)}
    chosen, notes = {}, []
    for name, overrides in OPTIONAL_VARIANTS.items():
        missing = sorted(set(overrides) - fields - set(BACKBONE_KEYS))
        if missing:
            notes.append(f"{name} skipped: StyleConfig has no field {', '.join(missing)} yet")
        elif "recipe" in overrides and overrides["recipe"] not in _recipes():
            notes.append(f"{name} skipped: transfer.recipes has no recipe {overrides['recipe']!r}")
        else:
            chosen[name] = overrides
    return chosen, notes


def _recipes() -> dict:
    try:
        from transfer.recipes import RECIPES
    except ImportError:
        return {}
    return RECIPES


def make_config(overrides: dict, steps: int) -> StyleConfig:
    """`StyleConfig()` with the recipe (if any) applied, then the other overrides, then `steps`."""
    overrides = {k: v for k, v in overrides.items() if k not in BACKBONE_KEYS}
    config = StyleConfig()
    recipe = overrides.pop("recipe", None)
    if recipe:
        from transfer.recipes import apply_recipe

        config = apply_recipe(recipe, config, keep_steps=True)
    return dataclasses.replace(config, **{**overrides, "steps": steps})


def runner(overrides: dict | None = None, total_steps: int | None = None
           ) -> Callable[[np.ndarray, np.ndarray, Backbone, Probe], None]:
    """A loop with the reference loops' signature: `stylize` with `make_config(overrides)`.

    Single-scale runs get an unbounded step count and stop when the probe says so.  A
    multi-scale run needs a finite count per scale or it never leaves the coarsest one, so
    it gets `total_steps` (the tutorial's step count) per scale, as `--steps N --scales 3`
    would; the probe still stops it at the target or its time cap.  A `schedule` variant
    carries its own `steps` (the schedule's budget) and ends when its last stage does.
    """
    overrides = dict(overrides or {})
    if overrides.get("scales", 1) > 1 and "steps" not in overrides:
        overrides["steps"] = total_steps or 300

    def run(content: np.ndarray, style: np.ndarray, backbone: Backbone, probe: Probe) -> None:
        config = make_config(overrides, overrides.get("steps", probe.max_steps or UNBOUNDED_STEPS))
        stylize(content, style, backbone, config,
                callback=lambda info: probe.step(info.image, loss=info.losses["total"]))

    return run
