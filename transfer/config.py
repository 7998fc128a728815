"""`StyleConfig`: every knob of a run, importable without TensorFlow (for `--help`)."""

from __future__ import annotations

import dataclasses
import math

from transfer.errors import DetstyleError
from transfer.schedules import SCHEDULES

INIT_CHOICES = ("content", "noise", "style")
OPTIMIZERS = ("adam", "lbfgs")
COLOUR_METHODS = ("luminance", "histogram")


@dataclasses.dataclass
class StyleConfig:
    """Every knob of a run.  Defaults are this toolkit's recommendation (gatys taps, Adam).

    `steps` counts optimiser iterations at *each* scale of the pyramid; with `scales=3`
    and ratio sqrt(2), a 512 px run optimises at 256, 362 and 512 px.
    """

    steps: int = 300
    layers: str | object = "gatys"  # a preset name or a features.LayerSpec
    style_layers: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] | None = None
    style_weight: float = 1.0
    content_weight: float = 0.05
    tv_weight: float = 1.0
    optimizer: str = "adam"
    learning_rate: float = 0.02
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    lbfgs_memory: int = 10
    scales: int = 1
    scale_ratio: float = math.sqrt(2.0)
    style_scale: float = 1.0
    init: str = "content"  # content | noise | style; an explicit init image is passed to stylize()
    preserve_colors: str | None = None
    seed: int = 0
    recipe: str | None = None  # set by recipes.apply_recipe; changes the objective
    #: None: `scales` levels x `steps` each, the configured optimiser at a fixed step size.
    #: "fast": transfer.schedules.fast_stages, its own stages and optimiser settings; `steps`
    #: is then the budget of the whole schedule (`scales`, `optimizer`, `learning_rate` and
    #: `beta_1` are not used).
    schedule: str | None = None

    def validate(self) -> None:
        if self.steps < 1:
            raise DetstyleError(f"--steps must be at least 1, got {self.steps}")
        if self.init not in INIT_CHOICES:
            raise DetstyleError(f"--init must be one of {', '.join(INIT_CHOICES)} or an image path, got {self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise DetstyleError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.preserve_colors not in (None, *COLOUR_METHODS):
            raise DetstyleError(f"--preserve-colors must be one of {', '.join(COLOUR_METHODS)}")
        if self.scales < 1 or self.scale_ratio <= 1.0:
            raise DetstyleError("--scales must be >= 1 and the scale ratio > 1")
        if not (self.style_scale > 0 and math.isfinite(self.style_scale)):
            raise DetstyleError(f"--style-scale must be a positive number, got {self.style_scale}")
        for name in ("style_weight", "content_weight", "tv_weight", "learning_rate"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise DetstyleError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise DetstyleError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.learning_rate == 0:
            raise DetstyleError("--learning-rate must be > 0")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if not isinstance(self.layers, str):
            data["layers"] = {"style": list(self.layers.style), "content": list(self.layers.content)}
        return data
