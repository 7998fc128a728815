"""`StyleConfig`: every knob of a run, importable without TensorFlow (for `--help`)."""

from __future__ import annotations

import dataclasses
import math

from transfer.errors import DetstyleError

INIT_CHOICES = ("content", "noise")


@dataclasses.dataclass
class StyleConfig:
    """Every knob of a run.  Defaults are this toolkit's recommendation (gatys taps, Adam)."""

    steps: int = 300
    layers: str | object = "gatys"  # a preset name or a features.LayerSpec
    style_layers: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] | None = None
    style_weight: float = 1.0
    content_weight: float = 0.05
    tv_weight: float = 1.0
    learning_rate: float = 0.02
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    init: str = "content"
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 1:
            raise DetstyleError(f"--steps must be at least 1, got {self.steps}")
        if self.init not in INIT_CHOICES:
            raise DetstyleError(f"--init must be one of {', '.join(INIT_CHOICES)}, got {self.init!r}")
        for name in ("style_weight", "content_weight", "tv_weight", "learning_rate"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise DetstyleError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.learning_rate == 0:
            raise DetstyleError("--learning-rate must be > 0")
