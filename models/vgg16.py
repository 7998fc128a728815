"""VGG16 written from Keras layers, with the layer names of `keras.applications.VGG16`.

Why from scratch: the toolkit must load weights from detectors (SSD300) and other
checkpoints by *layer name*, and must build the network at any input size without
downloading anything.  Keeping the Keras names (`block1_conv1` ... `block5_pool`) means a
Keras ImageNet `.h5` file and this model agree on every name with no translation table.
"""

from __future__ import annotations

import keras
from keras import layers

# (block, number of convs, filters) -- the VGG "D" configuration of Simonyan & Zisserman.
VGG16_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (1, 2, 64),
    (2, 2, 128),
    (3, 3, 256),
    (4, 3, 512),
    (5, 3, 512),
)

#: The 13 convolution layer names, in network order.
VGG16_CONV_LAYERS: tuple[str, ...] = tuple(
    f"block{block}_conv{i}" for block, n_convs, _ in VGG16_BLOCKS for i in range(1, n_convs + 1)
)

#: Name of the last layer kept by :func:`until_stage5` (stage 5 without its pool).
STAGE5_LAST_LAYER = "block5_conv3"


def conv_filters(layer_name: str) -> int:
    """Number of output channels of a VGG16 conv layer, looked up by name."""
    block = int(layer_name.split("_")[0].removeprefix("block"))
    return dict((b, f) for b, _, f in VGG16_BLOCKS)[block]


def VGG16(
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    include_top: bool = False,
    classes: int = 1000,
    name: str = "vgg16",
    dtype: str | None = None,
) -> keras.Model:
    """Build an (untrained) VGG16.

    Args:
      input_shape: `(height, width, 3)`; `None` dimensions accept any size, which style
        transfer needs.  With `include_top=True` the size must be fixed (the classifier's
        flatten layer needs it); Keras's own default is 224x224.
      include_top: add `flatten`, `fc1`, `fc2` and `predictions` like `keras.applications`.
      classes: size of the classifier output when `include_top`.
      dtype: a Keras dtype policy for every layer, e.g. `"mixed_bfloat16"` (variables stay
        float32, convolutions run in bfloat16); None uses the global policy.
    """
    if include_top and (input_shape[0] is None or input_shape[1] is None):
        raise ValueError("include_top=True needs a fixed input size, e.g. (224, 224, 3)")
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = inputs
    for block, n_convs, filters in VGG16_BLOCKS:
        for i in range(1, n_convs + 1):
            x = layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}", dtype=dtype
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool", dtype=dtype)(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def until_stage5(model: keras.Model, last_layer: str = STAGE5_LAST_LAYER) -> keras.Model:
    """The truncated feature network: input through `block5_conv3` (13 convs, 4 pools).

    The returned model shares its layers (and so its weights) with `model`; it simply
    stops before `block5_pool` and the classifier, as the SSD-backbone article's
    `getUntilStage5()` does.
    """
    return keras.Model(
        model.inputs, model.get_layer(last_layer).output, name=f"{model.name}_until_stage5"
    )


def conv_parameter_count(model: keras.Model) -> int:
    """Parameters in the 13 VGG16 convolutions (14,714,688 for the standard network)."""
    return sum(model.get_layer(name).count_params() for name in VGG16_CONV_LAYERS)
