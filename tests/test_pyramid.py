"""The crowsonkb-style pyramid (`--schedule pyramid`), the iterate average, and automatic precision.

Oracles are hand-computed: the sizes of a sqrt 2 pyramid, a three-step moving average, the
resampling of constant and alternating moment buffers, CPU flag sets.
"""

import numpy as np
import pytest

from transfer.backbones.precision import automatic_precision, cpu_flags
from transfer.core import schedules
from transfer.core.optimizers import AdamState, _IterateAverage
from transfer.core.schedules import PyramidSchedule, stages_for
from transfer.core.spec import make_spec
from transfer.core.stylizer import stylize


def test_pyramid_sizes_grow_by_sqrt2_from_the_minimum_side_to_the_output():
    schedule = PyramidSchedule(description="t", shares=(1.0,), min_side=128)
    stages = schedule.stages(512, 512, 500)
    assert [s.size for s in stages] == [(128, 128), (181, 181), (256, 256), (362, 362), (512, 512)]
    assert [s.steps for s in stages] == [100] * 5  # equal shares of the budget
    assert not stages[0].carry_moments and all(s.carry_moments for s in stages[1:])
    assert all(s.average_decay == 0.99 and s.optimizer == "adam" for s in stages)


def test_pyramid_shares_count_from_the_output_scale_down():
    schedule = PyramidSchedule(description="t", shares=(2.0, 1.0), min_side=128)
    stages = schedule.stages(384, 256, 400)  # longest side 384: 136, 192, 272, 384 on the long side
    assert [s.size[0] for s in stages] == [136, 192, 272, 384]
    assert [s.steps for s in stages] == [80, 80, 80, 160]  # shares 1, 1, 1, 2 of 400


def test_pyramid_is_a_named_schedule_with_its_own_budget():
    spec = make_spec(schedule="pyramid")
    assert spec.optimizer is None and spec.steps == schedules.SCHEDULES["pyramid"].default_steps
    assert stages_for(spec, 100, 100)[-1].size == (100, 100)  # below min_side: one scale, the output


def test_iterate_average_is_the_bias_corrected_exponential_average():
    import tensorflow as tf

    variable = tf.Variable(np.zeros((1, 1, 1, 1), np.float32))
    average = _IterateAverage(variable, decay=0.5)
    for value in (1.0, 2.0, 3.0):
        variable.assign([[[[value]]]])
        average.update()
    # weights 0.125, 0.25, 0.5 on 1, 2, 3, divided by their sum 0.875
    assert average.value()[0, 0, 0, 0] == pytest.approx((0.125 * 1 + 0.25 * 2 + 0.5 * 3) / 0.875, rel=1e-6)


def test_resized_adam_state_keeps_constants_and_a_non_negative_second_moment():
    checker = (np.indices((8, 8)).sum(0) % 2).astype(np.float32)[None, :, :, None].repeat(3, -1)
    state = AdamState(np.full((1, 8, 8, 3), 0.25, np.float32), np.full((1, 8, 8, 3), -0.5, np.float32),
                      checker * 4.0, t=7.0, average=np.full((1, 8, 8, 3), 0.75, np.float32))
    bigger = state.resized((11, 13))
    np.testing.assert_allclose(bigger.param, 0.75, atol=1e-6)  # the average is handed on, not the iterate
    np.testing.assert_allclose(bigger.m, -0.5, atol=1e-6)
    assert bigger.v.shape == (1, 11, 13, 3) and bigger.v.min() >= 0.0 and bigger.t == 7.0
    assert bigger.average is None  # the next scale starts a new average


@pytest.mark.parametrize("recipe", [None, "tutorial"])
def test_pyramid_run_visits_each_scale_and_ends_at_the_output_size(random_backbone, small_pair, monkeypatch, recipe):
    monkeypatch.setitem(schedules.SCHEDULES, "pyramid", PyramidSchedule(description="t", shares=(1.0,), min_side=16))
    content, style = small_pair
    sizes = []
    result = stylize(content, style, random_backbone, make_spec(schedule="pyramid", steps=9, recipe=recipe),
                     callback=lambda info: sizes.append(info.size))
    assert sorted(set(sizes)) == [(16, 16), (23, 23), (32, 32)] and sizes == sorted(sizes)
    assert len(sizes) == 9 and result.image.shape == content.shape


@pytest.mark.parametrize("flags, gpus, expected", [
    (frozenset({"avx2", "avx512f"}), 0, "fp32"),
    (frozenset({"avx512f", "avx512_bf16"}), 0, "bf16"),
    (frozenset({"amx_tile", "amx_bf16"}), 0, "bf16"),
    (frozenset(), 1, "bf16"),
])
def test_automatic_precision_is_bf16_only_where_the_hardware_has_it(flags, gpus, expected):
    assert automatic_precision(flags, gpus) == expected


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16\nbugs\t: none\n")
    assert cpu_flags(str(info)) == frozenset({"fpu", "sse", "avx512_bf16"})
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_plateau_rule_compares_the_means_of_two_windows():
    from transfer.core.stylizer import PlateauRule

    rule = PlateauRule(tolerance=0.01, window=2)
    # windows (10, 9) -> (8, 7): mean 9.5 -> 7.5, a 21 % fall: go on
    assert [rule.reached(x) for x in (10.0, 9.0, 8.0, 7.0)] == [False, False, False, False]
    assert rule.reached(7.5) is False  # (9, 8) -> (7, 7.5): 8.5 -> 7.25, still falling
    assert rule.reached(7.46) is True  # (8, 7) -> (7.5, 7.46): 7.5 -> 7.48, 0.27 % < 1 %: stop


def test_plateau_ends_a_run_before_its_budget_and_says_so(random_backbone, small_pair):
    content, style = small_pair
    # a share of 0.99 can only be met by a loss that fell by 99 % over one window: the rule fires at once
    result = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=200, plateau=0.99))
    assert result.stop_reason == "plateau" and len(result.history) == 40  # two windows of PLATEAU_WINDOW = 20
    full = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=30, plateau=0))
    assert full.stop_reason == "budget" and len(full.history) == 30


def test_plateau_is_on_by_default_only_for_this_toolkits_loss():
    assert make_spec().plateau == 0.005 and make_spec(plateau=0).plateau is None
    assert make_spec(recipe="tutorial").plateau is None and make_spec(schedule="fast").plateau is None
    assert make_spec(recipe="tutorial", plateau=0.01).plateau == 0.01
    with pytest.raises(Exception, match="--plateau"):
        make_spec(plateau=1.5)
