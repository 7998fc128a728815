"""The feature networks this toolkit can stylise with: VGG16, VGG19 and ResNet50.

One registry, `ARCHITECTURES`, says for each network how to build it (untrained, any input
size, cut after its deepest tap), which layer presets it has, which preset is its default,
its preprocessing and the registry name of its random control.  Weight files name the
architecture they fill (`weights.registry.RegistryEntry.architecture`, copied into
`BackboneRef.architecture`), and `make_spec` resolves `--layers` against it, so a preset a
network does not have is refused before anything is built.

Default taps, and why:

* `vgg16` keeps its presets in `transfer.core.features.LAYER_PRESETS` (`gatys`, `article`,
  `gatys-b4`); it is built by `models.vgg16` and cut after `block5_conv3`.
* `vgg19`, preset `gatys`: Gatys, Ecker & Bethge (CVPR 2016) defined neural style transfer
  on VGG19 with style at `conv1_1, conv2_1, conv3_1, conv4_1, conv5_1` (the first conv of
  each block: one tap per scale, from colour to large motifs) and content at `conv4_2`;
  Keras calls them `block1_conv1` ... `block5_conv1` and `block4_conv2`.  Cut after
  `block5_conv1`, the deepest tap, so the unused `block5_conv2..4` are never computed.
* `resnet50`, preset `stages`: the output of each stage (post-ReLU, after its last
  residual block): `conv1_relu` (stride 2), `conv2_block3_out` (4), `conv3_block4_out` (8),
  `conv4_block6_out` (16), `conv5_block3_out` (32) for style, `conv4_block6_out` for
  content.  These are the taps of the SWAG authors' ResNet-50 code (Wang et al., CVPR 2021,
  `resnet_swag.py`: `relu`, `layer1[2]`, `layer2[3]`, `layer3[5]`, `layer4[2]` for style,
  `layer3[5]` for content), and they mirror Gatys's choice: one tap per resolution, taken
  where that resolution's features are most processed (a stage's last block), content at
  stride 16 like VGG16's `block5_conv2`.  The network is used whole (`include_top=False`).

Nothing here imports Keras at module level: the registry (names, presets) is needed by
`make_spec` and `--help`; only `build_model` imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from transfer.core.features import LAYER_PRESETS, LayerSpec
from transfer.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import keras

#: The architecture of a backbone when nothing says otherwise (every pre-issue-18 file and spec).
DEFAULT_ARCHITECTURE = "vgg16"


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A feature network: how to build it and which of its layers are taps.

    `application` is the `keras.applications` constructor (None: the toolkit's own VGG16 in
    `models.vgg16`); the built model is cut after `cut_after`, the deepest preset tap.
    """

    name: str
    description: str
    presets: Mapping[str, LayerSpec]
    default_layers: str
    default_profile: str
    cut_after: str
    random_control: str
    application: str | None = None


def _frozen(presets: dict[str, LayerSpec]) -> Mapping[str, LayerSpec]:
    return MappingProxyType(dict(presets))


_GATYS_STYLE = tuple(f"block{b}_conv1" for b in range(1, 6))
_RESNET_STAGES = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")

ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType({
    a.name: a
    for a in (
        Architecture(
            name="vgg16",
            description="VGG16 (the detector's backbone), cut after block5_conv3",
            presets=_frozen(LAYER_PRESETS), default_layers="gatys", default_profile="caffe",
            cut_after="block5_conv3", random_control="random",
        ),
        Architecture(
            name="vgg19",
            description="keras.applications VGG19, cut after block5_conv1",
            presets=_frozen({"gatys": LayerSpec(_GATYS_STYLE, ("block4_conv2",))}),
            default_layers="gatys", default_profile="caffe",
            cut_after="block5_conv1", random_control="random-vgg19", application="VGG19",
        ),
        Architecture(
            name="resnet50",
            description="keras.applications ResNet50 (v1, BatchNorm), whole convolutional part",
            presets=_frozen({"stages": LayerSpec(_RESNET_STAGES, ("conv4_block6_out",))}),
            default_layers="stages", default_profile="caffe",
            cut_after="conv5_block3_out", random_control="random-resnet50", application="ResNet50",
        ),
    )
})

#: Every preset name of every architecture, in registry order (what `--layers` accepts;
#: `make_spec` then checks the preset against the backbone's architecture).
ALL_PRESETS: tuple[str, ...] = tuple(dict.fromkeys(p for a in ARCHITECTURES.values() for p in a.presets))


def get_architecture(name: str) -> Architecture:
    """The registry entry called `name`; a UsageError naming the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def layer_preset(architecture: str, preset: str | None = None) -> LayerSpec:
    """`preset` (default: the architecture's own default) as defined for `architecture`.

    A preset the architecture does not have is a UsageError naming the ones it has: the
    same name means different layers on different networks, and most have none of VGG's.
    """
    arch = get_architecture(architecture)
    name = preset or arch.default_layers
    if name not in arch.presets:
        raise UsageError(f"{architecture} has no layer preset {name!r}; its presets: {', '.join(arch.presets)} "
                         "(or give --style-layers and --content-layers)")
    return arch.presets[name]


def build_model(architecture: str, dtype: str | None = None) -> keras.Model:
    """An untrained `architecture` accepting any input size, cut after its deepest tap.

    `dtype` is a Keras dtype policy for every layer (e.g. `"mixed_bfloat16"`); the
    `keras.applications` constructors take none, so their layers are cloned with it.
    """
    arch = get_architecture(architecture)
    if arch.application is None:
        from models.vgg16 import VGG16, until_stage5

        return until_stage5(VGG16(input_shape=(None, None, 3), dtype=dtype), arch.cut_after)
    import keras

    full = getattr(keras.applications, arch.application)(include_top=False, weights=None, input_shape=(None, None, 3))
    model = keras.Model(full.input, full.get_layer(arch.cut_after).output, name=f"{arch.name}_until_{arch.cut_after}")
    return model if dtype is None else _with_dtype(model, dtype)


def _with_dtype(model: keras.Model, dtype: str) -> keras.Model:
    """A copy of `model` (same layer names, fresh weights) whose every layer uses `dtype`."""
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    image = keras.Input(shape=(None, None, 3), name=model.layers[0].name)
    return keras.models.clone_model(model, input_tensors=image, clone_function=clone)
