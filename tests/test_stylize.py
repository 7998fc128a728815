import numpy as np
import pytest

from transfer.backbones.random_control import random_backbone
from transfer.core.spec import make_spec
from transfer.errors import DetstyleError, DivergenceError, UsageError
from transfer.core.features import LAYER_PRESETS, feature_model, layer_spec
from transfer.core.objective import NormalisedObjective
from transfer.core.stylizer import stylize


def test_presets_are_the_documented_layers(random_backbone):
    article = LAYER_PRESETS["article"]
    assert article.style == ("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2")
    # "layer -2" of the 17-layer truncated VGG16 is block5_conv2
    assert article.content == (random_backbone.model.layers[-2].name,) == ("block5_conv2",)
    assert LAYER_PRESETS["gatys"].style == tuple(f"block{b}_conv1" for b in range(1, 6))


def test_feature_model_outputs_and_unknown_layer(random_backbone):
    model = feature_model(random_backbone.model, LAYER_PRESETS["article"])
    assert len(model.outputs) == 6
    with pytest.raises(DetstyleError, match="block9_conv9"):
        feature_model(random_backbone.model, layer_spec("custom", ["block9_conv9"], ["block5_conv2"]))


def test_optimisation_lowers_style_loss_and_moves_towards_style(random_backbone, small_pair):
    content, style = small_pair
    result = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=30, learning_rate=0.03))
    first, last = result.history[0], result.history[-1]
    assert last["style"] < 0.5 * first["style"]
    assert result.image.shape == content.shape
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert np.abs(result.image - content).mean() > 0.01


def test_callback_sees_every_step(random_backbone, small_pair):
    seen = []
    stylize(*small_pair, random_backbone, make_spec(steps=4), callback=lambda info: seen.append(info.step))
    assert seen == [1, 2, 3, 4]


def test_style_blend_weights_interpolate_gram_targets(random_backbone, small_pair):
    content, style = small_pair

    def targets(styles):
        objective = NormalisedObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], styles,
                                        style_weight=1.0, content_weight=1.0, tv_weight=1.0)
        return [t.numpy() for t in objective.style_targets]

    only_a, only_b = targets([(style, 1.0)]), targets([(content, 1.0)])
    half = targets([(style, 1.0), (content, 1.0)])
    for a, b, h in zip(only_a, only_b, half):
        np.testing.assert_allclose(h, (a + b) / 2, rtol=1e-4, atol=1e-4)


def test_nan_is_detected_with_step_and_last_good_image(random_backbone, small_pair):
    content, style = small_pair
    poisoned = content.copy()
    poisoned[0, 0, 0] = np.nan  # NaN content targets make every loss NaN from step 1
    with pytest.raises(DivergenceError, match="step 1") as info:
        stylize(poisoned, style, random_backbone, make_spec(steps=3, init="noise"))
    assert info.value.step == 1
    good = info.value.last_good_image
    assert good.shape == content.shape and np.all(np.isfinite(good))


def test_invalid_spec_is_a_clear_usage_error():
    with pytest.raises(UsageError, match="--steps"):
        make_spec(steps=0)
    with pytest.raises(DetstyleError, match="layer preset"):
        make_spec(steps=1, layers="nope")
    with pytest.raises(UsageError, match="--style-weight"):
        make_spec(style_weight=float("inf"))


def test_random_control_is_calibrated_to_unit_activation_variance():
    from transfer.backbones.random_control import calibration_image
    from transfer.core.preprocessing import preprocess

    model = random_backbone(seed=1).model
    probe = feature_model(model, layer_spec("custom", ["block1_conv1"], ["block5_conv3"]))
    _, deep = probe(preprocess(calibration_image()[None], "caffe"))
    # post-ReLU of a unit-variance pre-activation: mean square about 0.5, far from vanishing
    assert 0.1 < float(np.mean(np.square(deep))) < 2.0
