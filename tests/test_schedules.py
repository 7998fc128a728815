"""Schedules (transfer/core/schedules.py): the plain pyramid, `--schedule fast`, its TV surrogate, resume.

Tiny sizes and the random backbone; no timing assertions (the bench measures time).
"""


import numpy as np
import pytest

from tests.conftest import interrupt_at

from transfer.core import schedules
from transfer.core.schedules import FAST, AdamSettings, stages_for
from transfer.core.spec import make_spec
from transfer.core.stylizer import stylize
from transfer.errors import UsageError
from transfer.io.run_state import Interrupted, RunState


def test_charbonnier_tv_converges_to_the_exact_l1_tv():
    import tensorflow as tf

    from transfer.seeds.recipes import charbonnier_total_variation

    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 1, (2, 12, 10, 3)).astype(np.float32))
    exact = tf.image.total_variation(image).numpy()
    pairs = (11 * 10 + 12 * 9) * 3  # neighbour differences per image
    gaps = []
    for eps in (0.1, 0.01, 0.001, 1e-4):
        smooth = charbonnier_total_variation(image, eps).numpy()
        assert np.all(smooth <= exact + 1e-3)  # never above |d|
        assert np.all(exact - smooth <= eps * pairs + 1e-3)  # within eps per difference
        gaps.append(float(np.max(exact - smooth)))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 * exact.min()


def test_tutorial_objective_smoothing_is_a_copy_sharing_the_targets(random_backbone, small_pair):
    import tensorflow as tf

    from transfer.core.features import LAYER_PRESETS
    from transfer.seeds.recipes import TutorialObjective

    content, style = small_pair
    obj = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)])
    image = tf.constant(np.clip(content[None] + 0.05, 0, 1))
    exact = obj.terms(image)["tv"].numpy()
    fine, coarse = obj.with_tv_eps(1e-4), obj.with_tv_eps(0.2)
    assert obj.tv_eps is None and fine.style_targets is obj.style_targets  # the original is unchanged
    np.testing.assert_allclose(fine.terms(image)["tv"].numpy(), exact, rtol=1e-2)
    assert coarse.terms(image)["tv"].numpy()[0] < 0.9 * exact[0]
    np.testing.assert_array_equal(obj.terms(image)["tv"].numpy(), exact)


def test_fast_stages_split_the_budget_at_full_size_with_shrinking_smoothing():
    stages = stages_for(make_spec(schedule="fast", steps=200), 512, 384)
    assert all(s.size == (512, 384) and s.optimizer == "lbfgs" for s in stages)
    assert sum(s.steps for s in stages) == 200  # 40 + 50 + 60 + 50
    eps = [s.tv_eps for s in stages]
    assert eps == sorted(eps, reverse=True) and eps == list(FAST.tv_eps)


def test_plain_stages_take_the_recipe_moment_constants_and_the_spec_step_size():
    spec = make_spec(optimizer="adam", steps=7, scales=2, learning_rate=0.05)
    stages = stages_for(spec, 64, 64, adam=AdamSettings(1.0, beta_1=0.99, epsilon=0.1))
    assert [s.size for s in stages] == [(45, 45), (64, 64)] and all(s.steps == 7 for s in stages)
    assert stages[0].adam == AdamSettings(0.05, 0.99, 0.999, 0.1)


def test_schedule_names_come_from_the_registry():
    with pytest.raises(UsageError, match="schedule"):
        make_spec(schedule="slow")
    assert make_spec(schedule="fast").schedule == "fast" and make_spec().schedule == "plain"
    assert schedules.SCHEDULES["fast"] is FAST and schedules.SCHEDULE_NAMES == ("plain", "fast", "pyramid")
    assert make_spec(schedule="fast").steps == FAST.default_steps


@pytest.fixture(scope="module")
def pair64():
    y, x = np.mgrid[0:64, 0:64] / 63.0
    content = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x)], -1).astype(np.float32)
    content[16:48, 20:44] = [0.9, 0.85, 0.2]
    style = np.zeros((64, 64, 3), np.float32)
    style[:, ::6] = [0.1, 0.2, 0.9]
    style[::5, :] = [0.9, 0.3, 0.1]
    return content, style


def _tutorial_loss(image, content, style, backbone):
    from bench.yardstick import tutorial_loss

    return tutorial_loss(image, content, style, backbone)["total"]


def test_fast_reaches_a_lower_tutorial_loss_than_plain_at_equal_steps(random_backbone, pair64):
    """The plain loop is the seed's (Adam 0.02, b1 0.99); `fast` gets the same number of
    iterations (L-BFGS can use a few more evaluations than iterations: 16 iterations here
    against 24 Adam steps keeps its evaluations below Adam's)."""
    content, style = pair64
    plain = stylize(content, style, random_backbone, make_spec(recipe="tutorial", steps=24))
    fast = stylize(content, style, random_backbone, make_spec(recipe="tutorial", schedule="fast", steps=16))
    assert len(fast.history) <= 16 and fast.image.shape == content.shape
    assert _tutorial_loss(fast.image, content, style, random_backbone) < \
        _tutorial_loss(plain.image, content, style, random_backbone)


def test_fast_schedule_resumes_at_the_stage_it_was_stopped_in(random_backbone, pair64, tmp_path):
    """L-BFGS restarts its memory on resume (documented), so the oracle is the step count, the
    stage, and that the resumed run ends at a lower tutorial loss than where it was stopped."""
    content, style = pair64
    spec = make_spec(recipe="tutorial", schedule="fast", steps=12)  # stages of 2, 3, 4, 3 iterations
    state = tmp_path / "fast.ckpt.npz"
    with pytest.raises(Interrupted, match="step 7"):
        stylize(content, style, random_backbone, spec, callback=interrupt_at(7), state_path=state)
    saved = RunState.load(state)
    assert (saved.stage_index, saved.steps_done) == (2, 2)  # 2 + 3 steps done, then 2 of 4 in stage 2
    resumed = stylize(content, style, random_backbone, spec, resume=saved, state_path=state)
    assert len(resumed.history) == 12
    stopped_at = _tutorial_loss(saved.param[0], content, style, random_backbone)
    assert _tutorial_loss(resumed.image, content, style, random_backbone) < stopped_at
