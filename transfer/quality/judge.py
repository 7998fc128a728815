"""The judge: a fixed, versioned random VGG16 that measures style distance for every backbone.

Why a judge at all: a result stylised with backbone A and scored by A's own style loss
flatters A.  The judge is a network none of the compared backbones is: a seeded VGG16 with
He-normal weights (He et al., ICCV 2015), each layer rescaled to unit activation variance
(LSUV), whose Gram statistics are known to describe textures well even untrained
(Ustyuzhaninov et al., "Texture Synthesis Using Shallow Convolutional Networks with Random
Filters", 2016; He, Wang & Hopcroft, "A Powerful Generative Model Using Random Weights for
the Deep Image Representation", NeurIPS 2016).  Its seed differs from the `random`
control's CLI default (0), so the control is never judged by itself.

Everything that fixes the numbers is in `JudgeSpec`, and its `version` string goes into
every result, so numbers from different releases are only compared when they were made by
the same judge.  Change anything here (seed, layers, projections, palette sampling) and
bump the version.

Two distances between an output and a style (the two may differ in size):
  `judge_gram`  mean over taps of ||G(out) - G(style)||_F^2 / ||G(style)||_F^2 with G the Gram
                matrix divided by H*W (exactly `transfer.core.losses.style_loss`); 0 for the
                style itself, 1 for an output whose features vanish;
  `judge_swd`   the sliced Wasserstein distance of the taps' feature distributions (Heitz et
                al., CVPR 2021), per tap divided by the style features' mean square, so every
                tap weighs alike (an output whose features vanish scores about 1).
Both are ratios of quantities that scale alike, so they do not depend on the judge's own
activation scale.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from transfer.backbones.load import Backbone
from transfer.core.features import LayerSpec, feature_model
from transfer.core.losses import gram_matrix, style_loss
from transfer.core.preprocessing import preprocess
from transfer.quality.inputs import checked_rgb
from transfer.quality.swd import directions, sliced_wasserstein

#: Not 0, the `random` control's default seed: the judge is never a compared backbone.
JUDGE_SEED = 20240917
LSUV_INIT = "he-normal + LSUV unit variance"


@dataclasses.dataclass(frozen=True)
class JudgeSpec:
    """What fixes the judge's numbers.  Hashable: it keys the per-process cache."""

    version: str
    seed: int  # of the random VGG16's weights
    init: str
    layers: tuple[str, ...]  # taps compared
    profile: str  # input preprocessing
    projections: int = 64  # sliced-Wasserstein directions (judge and palette)
    projection_seed: int = 18  # of those directions
    palette_pixels: int = 65536  # palette SWD subsamples larger images to this many pixels


JUDGE = JudgeSpec(
    version="judge-v1",
    seed=JUDGE_SEED,
    init=LSUV_INIT,
    layers=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    profile="caffe",
)


@dataclasses.dataclass(frozen=True)
class Judge:
    """A judge network: its spec, its weights (as a `Backbone`) and the model returning its taps."""

    spec: JudgeSpec
    backbone: Backbone
    model: keras.Model


def build_judge(spec: JudgeSpec = JUDGE) -> Judge:
    """A fresh judge for `spec` (seconds); use `get_judge` unless you mean to change its weights."""
    from transfer.backbones.random_control import random_backbone

    if spec.init != LSUV_INIT:
        raise ValueError(f"this release builds judges initialised by {LSUV_INIT!r}, not {spec.init!r}")
    control = random_backbone(seed=spec.seed, profile=spec.profile)
    ref = dataclasses.replace(control.ref, name=spec.version)
    backbone = Backbone(ref, control.model, f"quality judge {spec.version} (random VGG16, seed {spec.seed})")
    return Judge(spec, backbone, feature_model(backbone.model, LayerSpec(spec.layers, ())))


@functools.lru_cache(maxsize=4)
def get_judge(spec: JudgeSpec = JUDGE) -> Judge:
    """The judge for `spec`, built once per process."""
    return build_judge(spec)


def judge_features(image: np.ndarray, judge: Judge) -> list[tf.Tensor]:
    """The judge's tap activations of one [0, 1] RGB image, each (1, h, w, C) float32."""
    pixels = tf.constant(checked_rgb(image, "image")[None])
    outputs = judge.model(preprocess(pixels, judge.spec.profile), training=False)
    return [tf.cast(o, tf.float32) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def gram_distance(output_feats: list[tf.Tensor], style_feats: list[tf.Tensor]) -> float:
    """Mean over taps of the style-normalised squared Gram error (the toolkit's style loss)."""
    return float(style_loss(output_feats, [gram_matrix(f) for f in style_feats])[0])


def swd_distance(output_feats: list[tf.Tensor], style_feats: list[tf.Tensor], spec: JudgeSpec) -> float:
    """Mean over taps of the sliced Wasserstein distance, each divided by the style's mean square."""
    per_layer = []
    for out, style in zip(output_feats, style_feats):
        out, style = (np.asarray(f, np.float64).reshape(-1, f.shape[-1]) for f in (out, style))
        projections = directions(style.shape[1], spec.projections, spec.projection_seed)
        scale = max(float(np.mean(np.square(style))), 1e-12)
        per_layer.append(sliced_wasserstein(out, style, projections) / scale)
    return float(np.mean(per_layer))


def style_distances(output: np.ndarray, style: np.ndarray, judge: Judge | None = None) -> dict[str, float | str]:
    """`{"judge_gram", "judge_swd", "judge"}`: the output's style distance to `style` in the judge."""
    judge = judge or get_judge()
    output_feats, style_feats = judge_features(output, judge), judge_features(style, judge)
    return {
        "judge_gram": gram_distance(output_feats, style_feats),
        "judge_swd": swd_distance(output_feats, style_feats, judge.spec),
        "judge": judge.spec.version,
    }
