"""Which layers define "style" and "content", and the model that exposes them.

`LAYER_PRESETS` are VGG16's (the other architectures' presets, and which one each uses by
default, are in `transfer.backbones.architectures.ARCHITECTURES`).  VGG16 presets:
  `article`  the SSD-backbone article's design: the *first five layers* of the truncated
             VGG16 (`block1_conv1, block1_conv2, block1_pool, block2_conv1, block2_conv2`)
             for style and layer -2 (`block5_conv2`) for content.  Measured: it transfers
             colour and fine grain only, no brush strokes.
  `gatys`    Gatys et al.'s taps, the first conv of every block (`block1_conv1` ...
             `block5_conv1`) for style, `block5_conv2` for content.  Strong strokes: the default.
  `gatys-b4` as `gatys` but content at `block4_conv2` (keeps more of the photo's detail).
Any explicit `style=..., content=...` layer names work too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from transfer.errors import DetstyleError, UsageError


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """The features a loss compares: style and content taps, and how style taps are transformed.

    `style_transform` names a `transfer.core.style_transforms.STYLE_TRANSFORMS` entry applied
    to each style tap before its statistic (SWAG's softmax), or None for the raw activations.
    It lives here, with the taps, because it changes what the style features *are*: targets
    computed for one transform are not targets for another.
    """

    style: tuple[str, ...]
    content: tuple[str, ...]
    style_transform: str | None = None


LAYER_PRESETS: dict[str, LayerSpec] = {
    "article": LayerSpec(
        style=("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2"),
        content=("block5_conv2",),
    ),
    "gatys": LayerSpec(
        style=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
        content=("block5_conv2",),
    ),
    "gatys-b4": LayerSpec(
        style=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
        content=("block4_conv2",),
    ),
}


def layer_spec(preset_or_spec: str | LayerSpec, style: Sequence[str] | None = None,
               content: Sequence[str] | None = None) -> LayerSpec:
    """A preset name, or `"custom"` with explicit names; explicit names override a preset."""
    if isinstance(preset_or_spec, LayerSpec):
        base = preset_or_spec
    elif preset_or_spec in LAYER_PRESETS:
        base = LAYER_PRESETS[preset_or_spec]
    elif preset_or_spec == "custom" and style and content:
        base = LayerSpec(tuple(style), tuple(content))
    else:
        raise DetstyleError(
            f"unknown layer preset {preset_or_spec!r}; choose one of {', '.join(LAYER_PRESETS)} "
            "or give --style-layers and --content-layers"
        )
    return LayerSpec(tuple(style) if style else base.style, tuple(content) if content else base.content,
                     base.style_transform)


def feature_model(truncated_vgg, spec: LayerSpec):
    """A Keras model returning `[style outputs..., content outputs...]` for `spec`'s layer names."""
    import keras  # here, not at import: the presets are needed by `--help`

    names = {layer.name for layer in truncated_vgg.layers}
    unknown = [n for n in (*spec.style, *spec.content) if n not in names]
    if unknown:
        raise UsageError(
            f"unknown layer name(s) {', '.join(unknown)}; the backbone has "
            f"{', '.join(l.name for l in truncated_vgg.layers[1:])}"
        )
    outputs = [truncated_vgg.get_layer(n).output for n in (*spec.style, *spec.content)]
    model = keras.Model(truncated_vgg.inputs, outputs, name="style_content_features")
    model.trainable = False
    return model
