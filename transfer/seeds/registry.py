"""The seed recipes by name: what each fixes (layers, optimiser, init, budget), without TensorFlow.

The losses themselves are in `transfer.seeds.recipes`; this table is what `make_spec` and
`--help` need, so it imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses

from transfer.core.features import LAYER_PRESETS, LayerSpec
from transfer.core.schedules import AdamSettings

GATYS = LAYER_PRESETS["gatys"]


@dataclasses.dataclass(frozen=True)
class RecipeSettings:
    """What a seed document fixes besides its loss."""

    layers: LayerSpec
    optimizer: str
    adam: AdamSettings | None  # None for L-BFGS
    init: str
    steps: int
    description: str


RECIPE_SETTINGS: dict[str, RecipeSettings] = {
    "tutorial": RecipeSettings(GATYS, "adam", AdamSettings(0.02, 0.99, 0.999, 0.1), "content", 1000,
                               "TF tutorial (seed 000): Adam 0.02/0.99/0.1, L1 TV x30, 1000 steps"),
    "keras": RecipeSettings(GATYS, "lbfgs", None, "content", 200,
                            "Keras example (seed 001): scipy L-BFGS on caffe-space pixels, 10 x 20 evaluations"),
    "article": RecipeSettings(LAYER_PRESETS["article"], "adam", AdamSettings(0.02 * 255.0, 0.99, 0.999, 0.1),
                              "content", 300,
                              "SSD-backbone article (seed 003): raw first-five-layer features, content x0.001"),
    "coursera": RecipeSettings(LayerSpec(GATYS.style, ("block4_conv2",)), "adam", AdamSettings(2.0, 0.9, 0.999, 1e-7),
                               "noise", 200,
                               "course notes (seed 004): J = 10 J_content + 40 J_style, Adam 2.0, 60 % noise init"),
}
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPE_SETTINGS)
