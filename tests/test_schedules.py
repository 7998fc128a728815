"""`--schedule fast` (transfer/schedules.py): step sizes, TV surrogate, stages, transfer, resume.

Tiny sizes and the random backbone; no timing assertions (the bench measures time).
"""

import dataclasses
import os
import signal

import numpy as np
import pytest

from transfer import schedules
from transfer.config import StyleConfig
from transfer.errors import DetstyleError
from transfer.recipes import apply_recipe
from transfer.resume import Interrupted, RunState
from transfer.schedules import FAST, FastSchedule, Level, Plateau, Stage, correction_transfer, fast_stages
from transfer.stylizer import stylize


def test_cosine_and_exponential_step_sizes():
    stage = Stage((8, 8), 11, lr_start=0.1, lr_end=0.01, decay="cosine")
    assert stage.learning_rate(1) == pytest.approx(0.1)
    assert stage.learning_rate(6) == pytest.approx(0.055)  # halfway: the mean of the ends
    assert stage.learning_rate(11) == pytest.approx(0.01)
    values = [stage.learning_rate(i) for i in range(1, 12)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    exp = dataclasses.replace(stage, decay="exponential")
    assert exp.learning_rate(6) == pytest.approx((0.1 * 0.01) ** 0.5)
    assert Stage((8, 8), 5, lr_start=0.02).learning_rate(5) == 0.02  # no lr_end: constant
    assert stage.learning_rate(1, scale=255.0) == pytest.approx(25.5)


def test_tv_smoothing_schedule_is_geometric_and_optional():
    stage = Stage((8, 8), 3, tv_smoothing=(0.1, 0.001))
    assert [stage.smoothing(i) for i in (1, 2, 3)] == pytest.approx([0.1, 0.01, 0.001])
    assert Stage((8, 8), 3).smoothing(2) is None


def test_charbonnier_tv_converges_to_the_exact_l1_tv():
    import tensorflow as tf

    from transfer.recipes import charbonnier_total_variation

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


def test_tutorial_objective_smooth_tv_is_an_option(random_backbone, small_pair):
    import tensorflow as tf

    from transfer.features import LAYER_PRESETS
    from transfer.recipes import TutorialObjective

    content, style = small_pair
    obj = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"])
    assert obj.supports_tv_smoothing and obj.tv_smoothing is None
    obj.set_targets(content[None], [(style, 1.0)])
    image = tf.constant(np.clip(content[None] + 0.05, 0, 1))
    exact = obj.terms(image)["tv"].numpy()
    obj.tv_smoothing = tf.Variable(1e-4)
    np.testing.assert_allclose(obj.terms(image)["tv"].numpy(), exact, rtol=1e-2)
    obj.tv_smoothing.assign(0.2)
    assert obj.terms(image)["tv"].numpy()[0] < 0.9 * exact[0]
    obj.tv_smoothing = None
    np.testing.assert_array_equal(obj.terms(image)["tv"].numpy(), exact)


def test_fast_stages_split_the_budget():
    stages = fast_stages(512, 384, 200)
    assert stages[-1].size == (512, 384)
    assert abs(sum(s.steps for s in stages) - 200) <= len(stages)
    assert all(s.pixel_units for s in stages)
    smoothing = [s.tv_smoothing[0] for s in stages if s.tv_smoothing]
    assert smoothing == sorted(smoothing, reverse=True)  # the surrogate gets sharper stage by stage
    assert all(s.transfer == "keep" for s in stages[1:] if s.size == stages[0].size)
    pyramid = FastSchedule(levels=(Level(0.125, 0.5), Level(0.5, 0.25), Level(1.0, 0.25)))
    small = fast_stages(160, 160, 40, pyramid)  # 20 px is below min_side: that level is dropped
    assert [s.size for s in small] == [(80, 80), (160, 160)]
    assert small[1].transfer == "correction" and small[0].steps == 10


def test_correction_transfer_keeps_the_fine_base_and_adds_the_coarse_change():
    rng = np.random.default_rng(1)
    fine = rng.uniform(0.2, 0.8, (1, 16, 16, 3)).astype(np.float32)
    coarse = fine.reshape(1, 8, 2, 8, 2, 3).mean((2, 4))
    np.testing.assert_allclose(correction_transfer(coarse, coarse, fine), fine, atol=1e-6)
    shifted = correction_transfer(coarse + 0.1, coarse, fine)
    np.testing.assert_allclose(shifted, np.clip(fine + 0.1, 0, 1), atol=1e-4)


def test_plateau_stops_only_when_progress_stalls():
    p = Plateau(0.01, 2)
    assert not any(p.update(x) for x in (100.0, 90.0, 80.0))
    assert not p.update(79.5)  # 90 -> 79.5 over two steps: 11.7 %
    assert p.update(79.4)  # 80 -> 79.4 over two steps: 0.75 %


def test_schedule_is_validated():
    with pytest.raises(DetstyleError, match="schedule"):
        StyleConfig(schedule="slow").validate()
    StyleConfig(schedule="fast").validate()
    assert StyleConfig().schedule is None and "fast" in schedules.SCHEDULES
    assert schedules.SCHEDULES["fast"] is FAST


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
    plain = stylize(content, style, random_backbone, apply_recipe("tutorial", StyleConfig(steps=24), keep_steps=True))
    fast_cfg = apply_recipe("tutorial", StyleConfig(steps=16, schedule="fast"), keep_steps=True)
    fast = stylize(content, style, random_backbone, fast_cfg)
    assert len(fast.history) <= 16 and fast.image.shape == content.shape
    assert _tutorial_loss(fast.image, content, style, random_backbone) < \
        _tutorial_loss(plain.image, content, style, random_backbone)


@pytest.fixture
def adam_pyramid(monkeypatch):
    """A two-level Adam schedule (smooth TV at half size, exact at full), registered as `adam-pyramid`."""
    schedule = FastSchedule(levels=(Level(0.5, 0.6, "adam", (0.08, 0.02), (0.05, 0.01)),
                                    Level(1.0, 0.4, "adam", (0.04, 0.005))), min_side=16)
    monkeypatch.setitem(schedules.SCHEDULES, "adam-pyramid", schedule)
    return schedule


def test_scheduled_run_resumes_to_the_same_image(random_backbone, pair64, adam_pyramid, tmp_path):
    content, style = pair64
    cfg = apply_recipe("tutorial", StyleConfig(steps=15, schedule="adam-pyramid"), keep_steps=True)
    full = stylize(content, style, random_backbone, cfg)
    assert [len([h for h in full.history])] == [15]
    state = tmp_path / "fast.ckpt.npz"

    def stop_at_11(info):
        if info.step == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="step 11"):
        stylize(content, style, random_backbone, cfg, callback=stop_at_11, state_path=state)
    saved = RunState.load(state)
    assert (saved.scale_index, saved.steps_done) == (1, 2)  # 9 steps at 32 px, then 2 of 6 at 64 px
    resumed = stylize(content, style, random_backbone, cfg, resume=saved, state_path=state)
    np.testing.assert_allclose(resumed.image, full.image, atol=1e-5)
    assert len(resumed.history) == len(full.history) == 15
