"""Transformations of the style activations before their Gram matrices: SWAG.

Why: Wang, Li & Vasconcelos ("Rethinking and Improving the Robustness of Image Style
Transfer", CVPR 2021) found that ResNets stylise badly because their residual connections
make deep activations *peaky* (a few huge values, low entropy), so the Gram matrices are
dominated by a handful of positions.  Their fix, Stylization With Activation smoothinG
(SWAG), passes each tapped activation map through a softmax before the Gram matrix:

    sigma(F)_ik = exp(F_ik / T) / sum_{j,m} exp(F_jm / T)

for channel i and position k of one image's layer (the sum runs over all C*H*W entries
of that layer, per image: the authors' `softmax3d`, T = 1 in their code).  The map is
monotone, so it keeps where the activations are high, but turns a few huge values into a
distribution whose shape, not raw scale, the Gram matrix then compares.

Here the transform is applied to the style taps only (`LayerSpec.style_transform`, set by
`--style-transform swag`); the paper also passes content features through it, but this
toolkit's content term stays on the raw features so `--content-weight` keeps its meaning.
The style loss is already relative (errors divided by the target Gram's norm), so the
softmax's 1/(C*H*W) scale cancels.

Importable without TensorFlow (the names are needed by `make_spec` and `--help`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class StyleTransform:
    """A named transformation of one style tap, `(B, H, W, C) -> (B, H, W, C)`."""

    name: str
    temperature: float
    description: str

    def __call__(self, features):
        return swag_softmax(features, self.temperature)


def swag_softmax(features, temperature: float = 1.0):
    """SWAG's softmax over every entry of each image's map: `exp(F/T) / sum(exp(F/T))`, per image.

    Computed in float32 with the maximum subtracted (tf.nn.softmax), so large activations
    do not overflow.
    """
    import tensorflow as tf

    x = tf.cast(features, tf.float32)
    shape = tf.shape(x)
    flat = tf.reshape(x, (shape[0], -1)) / temperature
    return tf.reshape(tf.nn.softmax(flat, axis=-1), shape)


STYLE_TRANSFORMS: Mapping[str, StyleTransform] = MappingProxyType({
    "swag": StyleTransform(
        "swag", 1.0,
        "SWAG (Wang et al., CVPR 2021): softmax of each style tap over all its channels and positions, "
        "temperature 1, before the Gram matrix; for ResNets, whose peaky activations stylise badly",
    ),
})
