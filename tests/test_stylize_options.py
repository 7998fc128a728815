"""Issue-5 options: each one changes the output in the expected direction (tiny sizes)."""

import dataclasses
import signal

import numpy as np
import pytest

from tests.conftest import interrupt_at

from transfer.core.colour import luminance_transfer, match_colour_statistics, rgb_to_yiq
from transfer.core.schedules import scale_sizes
from transfer.core.spec import make_spec
from transfer.errors import DetstyleError
from transfer.seeds.registry import RECIPE_NAMES
from transfer.io.run_state import Interrupted, RunState
from transfer.core.stylizer import stylize


def test_scale_pyramid_sizes():
    assert scale_sizes(512, 512, 3, 2 ** 0.5) == [(256, 256), (362, 362), (512, 512)]
    assert scale_sizes(300, 200, 1, 2 ** 0.5) == [(300, 200)]


def test_multiscale_runs_every_scale_and_ends_at_full_size(random_backbone, small_pair):
    content, style = small_pair
    seen = []
    result = stylize(content, style, random_backbone, make_spec(steps=2, scales=2),
                     callback=lambda info: seen.append((info.step, info.size)))
    assert [s for s, _ in seen] == [1, 2, 3, 4]
    assert seen[0][1] == (23, 23) and seen[-1][1] == (32, 32)
    assert result.image.shape == content.shape


def test_lbfgs_beats_adam_at_equal_evaluations(random_backbone, small_pair):
    from transfer.core.features import LAYER_PRESETS
    from transfer.core.objective import NormalisedObjective
    from transfer.core.optimizers import AdamState, run_adam, run_lbfgs
    from transfer.core.schedules import AdamSettings

    content, style = small_pair
    objective = NormalisedObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)],
                                    style_weight=1.0, content_weight=0.05, tv_weight=1.0)
    evaluations = 12  # one Adam step = one loss+gradient evaluation
    _, adam = run_adam(objective, AdamState.start(content[None]), evaluations, AdamSettings(0.02))
    _, lbfgs = run_lbfgs(objective, content[None], evaluations, max_evaluations=evaluations)
    assert lbfgs[-1]["total"] < adam[-1]["total"]


def test_luminance_preservation_keeps_content_chroma(random_backbone, small_pair):
    content, style = small_pair
    plain = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=15, learning_rate=0.05))
    kept = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=15, learning_rate=0.05,
                                                             preserve_colors="luminance"))
    chroma = lambda img: rgb_to_yiq(img)[..., 1:]  # noqa: E731
    err_kept = np.abs(chroma(kept.image) - chroma(content)).mean()
    err_plain = np.abs(chroma(plain.image) - chroma(content)).mean()
    assert err_kept < 0.02 and err_kept < 0.5 * err_plain


def test_histogram_matching_moves_style_statistics_to_content(small_pair):
    content, _ = small_pair
    rng = np.random.default_rng(3)
    style = np.clip(rng.normal([0.2, 0.3, 0.7], 0.05, (32, 32, 3)), 0, 1).astype(np.float32)
    matched = match_colour_statistics(style, content)
    assert np.abs(matched.reshape(-1, 3).mean(0) - content.reshape(-1, 3).mean(0)).max() < 0.03
    assert np.abs(style.reshape(-1, 3).mean(0) - content.reshape(-1, 3).mean(0)).max() > 0.1


def test_luminance_transfer_keeps_luminance():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.2, 0.8, (2, 8, 8, 3)).astype(np.float32)
    out = luminance_transfer(a, b)
    np.testing.assert_allclose(rgb_to_yiq(out)[..., 0], rgb_to_yiq(a)[..., 0], atol=0.02)


def test_noise_init_is_bit_reproducible_and_seed_dependent(random_backbone, small_pair):
    cfg = make_spec(steps=3, init="noise", seed=11)
    a = stylize(*small_pair, random_backbone, cfg).image
    b = stylize(*small_pair, random_backbone, cfg).image
    c = stylize(*small_pair, random_backbone, dataclasses.replace(cfg, seed=12)).image
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_init_image_is_used(random_backbone, small_pair):
    content, style = small_pair
    start = np.full_like(content, 0.5)
    first = []
    from transfer.io.images import array_ref

    spec = make_spec(optimizer="adam", steps=1, learning_rate=1e-6, init_image=array_ref(start, "grey"))
    stylize(content, style, random_backbone, spec, init_image=start,
            callback=lambda info: first.append(info.image()))
    np.testing.assert_allclose(first[0], 0.5, atol=5e-3)  # 8-bit resize of the init image


def test_resume_equals_uninterrupted(random_backbone, small_pair, tmp_path):
    content, style = small_pair
    cfg = make_spec(steps=8, scales=2, optimizer="adam")
    full = stylize(content, style, random_backbone, cfg)
    state = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupted, match="step 5"):
        stylize(content, style, random_backbone, cfg, callback=interrupt_at(5), state_path=state)
    saved = RunState.load(state)
    assert (saved.stage_index, saved.steps_done) == (0, 5)
    resumed = stylize(content, style, random_backbone, cfg, resume=saved, state_path=state)
    np.testing.assert_allclose(resumed.image, full.image, atol=1e-5)
    assert len(resumed.history) == len(full.history) == 16


def test_sigterm_also_saves_state(random_backbone, small_pair, tmp_path):
    state = tmp_path / "t.ckpt.npz"
    with pytest.raises(Interrupted):
        stylize(*small_pair, random_backbone, make_spec(steps=6), callback=interrupt_at(2, signal.SIGTERM),
                state_path=state)
    assert RunState.load(state).steps_done == 2


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.ckpt.npz"
    bad.write_bytes(b"nope")
    with pytest.raises(DetstyleError, match="x.ckpt.npz"):
        RunState.load(bad)


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_each_recipe_runs_and_lowers_its_own_loss(random_backbone, small_pair, name):
    content, style = small_pair
    cfg = make_spec(recipe=name, steps=40)
    assert cfg.recipe == name and cfg.steps == 40
    result = stylize(content, style, random_backbone, cfg)
    assert result.history[-1]["total"] < result.history[0]["total"]
    assert result.image.shape == content.shape and np.isfinite(result.image).all()


def test_recipes_fix_the_seed_settings():
    from transfer.core.schedules import stages_for
    from transfer.seeds.registry import RECIPE_SETTINGS

    tutorial = make_spec(recipe="tutorial")
    (stage,) = stages_for(tutorial, 8, 8, adam=RECIPE_SETTINGS["tutorial"].adam)
    assert (stage.adam.learning_rate, stage.adam.beta_1, stage.adam.epsilon, stage.steps) == (0.02, 0.99, 0.1, 1000)
    assert tutorial.style_weight is None and tutorial.tv_weight is None  # the recipe's own loss
    keras_spec = make_spec(recipe="keras")
    assert keras_spec.optimizer == "lbfgs" and keras_spec.learning_rate is None
    coursera = make_spec(recipe="coursera")
    assert coursera.layers.content == ("block4_conv2",) and coursera.init == "noise"
    with pytest.raises(DetstyleError, match="recipe"):
        make_spec(recipe="nope")


def test_tutorial_recipe_loss_matches_the_seed_formula(random_backbone, small_pair):
    """Style 1e-2/5 x mean((G-A)^2) with G/(HW); content 1e4 x mean sq.; TV 30 x L1 sum."""
    import tensorflow as tf

    from transfer.core.features import LAYER_PRESETS
    from transfer.seeds.recipes import TutorialObjective

    content, style = small_pair
    obj = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)])
    image = tf.constant(np.clip(content[None] + 0.1, 0, 1))
    terms = obj.terms(image)
    outs = obj.model(tf.keras.applications.vgg16.preprocess_input(image * 255.0))
    style_feats, content_feat = outs[:5], outs[5]
    grams = [tf.einsum("bijc,bijd->bcd", f, f) / float(f.shape[1] * f.shape[2]) for f in style_feats]
    expected_style = sum(tf.reduce_mean((g - t) ** 2) for g, t in zip(grams, obj.style_targets)) * 1e-2 / 5
    np.testing.assert_allclose(terms["style"][0], expected_style, rtol=1e-4)
    expected_content = tf.reduce_mean((content_feat - obj.content_targets[0]) ** 2) * 1e4
    np.testing.assert_allclose(terms["content"][0], expected_content, rtol=1e-4)
    np.testing.assert_allclose(terms["tv"][0], 30 * tf.image.total_variation(image)[0], rtol=1e-5)


def test_bf16_backbone_keeps_weights_and_close_losses(random_backbone, small_pair):
    from transfer.backbones.precision import with_precision

    bf16 = with_precision(random_backbone, "bf16")
    assert bf16.model.get_layer("block3_conv1").compute_dtype == "bfloat16"
    np.testing.assert_array_equal(bf16.model.get_layer("block3_conv1").kernel.numpy(),
                                  random_backbone.model.get_layer("block3_conv1").kernel.numpy())
    a = stylize(*small_pair, random_backbone, make_spec(steps=3)).history[0]
    b = stylize(*small_pair, bf16, make_spec(steps=3)).history[0]
    assert abs(a["style"] - b["style"]) < 0.05 * a["style"]
    with pytest.raises(DetstyleError, match="precision"):
        with_precision(random_backbone, "fp8")


def test_extreme_style_shapes_are_stretched_to_the_minimum_side(random_backbone, small_pair):
    """A 4 x 200 strip at a 32 px content: resized naively its short side is 1 px, which
    crashed the pools (issue 19); each side is now at least MIN_SIDE."""
    from transfer.core.schedules import MIN_SIDE
    from transfer.core.stylizer import style_at

    content, _ = small_pair
    strip = np.random.default_rng(1).uniform(0, 1, (4, 200, 3)).astype(np.float32)
    assert style_at(strip, (32, 32), 1.0).shape == (MIN_SIDE, 32, 3)
    result = stylize(content, strip, random_backbone, make_spec(steps=1))
    assert np.isfinite(result.history[0]["total"])


def test_a_style_above_the_limit_is_made_as_large_as_allowed_with_a_notice(small_pair, caplog):
    import logging

    from transfer.core.stylizer import style_at
    from transfer.limits import Limits, using

    with caplog.at_level(logging.INFO, "detstyle"), using(Limits(style_pixels=64 * 64)):
        fitted = style_at(small_pair[1], (64, 64), 200.0)  # the 12800 px style that segfaulted TensorFlow
    assert fitted.shape == (64, 64, 3)  # 12800 x sqrt(4096 / 12800^2) = 64 on each side
    assert "style_pixels=4096" in caplog.text


