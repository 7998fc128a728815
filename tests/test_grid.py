"""Style grids: cells are content-addressed, reruns skip them, targets are computed once per image.

Tiny sizes (24-32 px, 2 steps, the random backbone).  The oracles are independent of the code
under test where they can be: files compared with the store's bytes, the figure's panels
counted, eager feature extractions counted by a spy on `Objective`, and `stylize` replaced by
a function that fails, to prove that a finished grid runs nothing.
"""

import functools
import os
import signal

import numpy as np
import pytest
from PIL import Image

from transfer.errors import DetstyleError

SIZE, STEPS = 28, 2


def _png(path, seed, size=(24, 20)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    """Two contents in a folder (with a file that is not an image) and two styles."""
    contents = tmp_path / "contents"
    contents.mkdir()
    _png(contents / "b_street.png", 1)
    _png(contents / "a_house.png", 2, size=(20, 24))  # portrait: rows differ in height
    (contents / "notes.txt").write_text("not an image")
    styles = [_png(tmp_path / "waves.png", 3), _png(tmp_path / "dots.png", 4)]
    return contents, styles


def _plan(images, **options):
    from transfer.backbones.load import resolve_backbone
    from transfer.core.spec import make_spec
    from transfer.jobs.grid import image_paths, plan_grid

    contents, styles = images
    make = functools.partial(make_spec, steps=STEPS, size=SIZE, backbone=resolve_backbone("random"), **options)
    return plan_grid(image_paths([contents], "content"), styles, make)


def _main(capsys, *args):
    """`detstyle ARGS` in this process: (exit status, stdout, stderr)."""
    from transfer.cli.main import main

    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def _grid_args(images, output, *extra):
    contents, styles = images
    return ["grid", "--contents", contents, "--styles", *styles, "-o", output, "--backbone", "random",
            "--size", SIZE, "--steps", STEPS, "--quiet", "--precision", "fp32", *extra]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- planning


def test_a_directory_means_its_image_files_sorted_and_cells_are_row_major(images):
    plan = _plan(images)
    assert plan.shape == (2, 2)
    assert [c.name for c in plan.cells] == ["a_house__waves", "a_house__dots", "b_street__waves", "b_street__dots"]
    assert [(c.row, c.col) for c in plan.cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({c.spec.digest() for c in plan.cells}) == 4
    assert all(c.spec.steps == STEPS and c.spec.backbone.name == "random" for c in plan.cells)


def test_a_cell_key_changes_with_the_bytes_of_its_images(images, tmp_path):
    before = _plan(images).cells[0].spec.digest()
    _png(images[0] / "a_house.png", 9, size=(20, 24))  # same name, other pixels
    assert _plan(images).cells[0].spec.digest() != before


# ---------------------------------------------------------------- targets


class _FeatureSpy:
    """Counts eager feature extractions (target computations; the compiled step runs in a graph)
    and style-statistic blends, independently of the TargetCache's own counters."""

    def __init__(self, monkeypatch):
        import tensorflow as tf

        from transfer.core.objective import Objective

        self.eager_features = self.style_blends = 0
        features, blend = Objective.features, Objective._blended_style_statistics

        def spy_features(objective, param):
            self.eager_features += tf.executing_eagerly()
            return features(objective, param)

        def spy_blend(objective, styles):
            self.style_blends += 1
            return blend(objective, styles)

        monkeypatch.setattr(Objective, "features", spy_features)
        monkeypatch.setattr(Objective, "_blended_style_statistics", spy_blend)


def test_a_2x2_grid_computes_two_style_and_two_content_targets(images, tmp_path, monkeypatch, random_backbone):
    from transfer.core.targets import TargetCache
    from transfer.jobs.grid import run_grid
    from transfer.jobs.store import RunStore

    spy = _FeatureSpy(monkeypatch)
    cache = TargetCache()
    result = run_grid(_plan(images), RunStore(tmp_path / "cache"), targets=cache, backbone=random_backbone)
    assert result.ran == 4
    assert spy.style_blends == 2  # one per style, not one per cell
    assert spy.eager_features == 4  # 2 style images + 2 content images (uncached: 8)
    assert cache.computed == {"style": 2, "content": 2} and cache.hits == {"style": 2, "content": 2}


def test_cached_targets_give_bit_identical_results(small_pair, random_backbone):
    from transfer.core.spec import make_spec
    from transfer.core.stylizer import stylize
    from transfer.core.targets import TargetCache

    content, style = small_pair
    spec = make_spec(steps=3, scales=2)
    cache = TargetCache()
    plain = stylize(content, style, random_backbone, spec)
    filling = stylize(content, style, random_backbone, spec, targets=cache)
    computed = dict(cache.computed)
    served = stylize(content, style, random_backbone, spec, targets=cache)
    assert computed == {"style": 2, "content": 2}  # two pyramid sizes, each computed once
    assert cache.computed == computed and cache.hits == {"style": 2, "content": 2}
    assert np.array_equal(plain.image, filling.image) and np.array_equal(plain.image, served.image)
    assert plain.history == served.history


def test_targets_are_not_shared_across_sizes_backbones_or_statistics(small_pair, random_backbone):
    from transfer.backbones.load import load_backbone
    from transfer.core.objective import build_objective
    from transfer.core.spec import make_spec
    from transfer.core.targets import TargetCache

    content, style = small_pair
    cache = TargetCache()
    build_objective(random_backbone, make_spec(), content[None], [(style, 1.0)], targets=cache)
    build_objective(random_backbone, make_spec(), content[None, :16, :16], [(style[:16, :16], 1.0)], targets=cache)
    build_objective(load_backbone("random", seed=1), make_spec(), content[None], [(style, 1.0)], targets=cache)
    build_objective(random_backbone, make_spec(recipe="tutorial"), content[None], [(style, 1.0)], targets=cache)
    build_objective(random_backbone, make_spec(layers="gatys-b4"), content[None], [(style, 1.0)], targets=cache)
    assert cache.computed == {"style": 5, "content": 5} and not cache.hits
    from transfer.core.style_transforms import STYLE_TRANSFORMS

    for name in STYLE_TRANSFORMS:  # the same taps through another transform are other targets
        build_objective(random_backbone, make_spec(style_transform=name), content[None], [(style, 1.0)],
                        targets=cache)
    assert cache.computed["style"] == 5 + len(STYLE_TRANSFORMS) and not cache.hits


# ---------------------------------------------------------------- the command


def test_grid_writes_the_figure_and_every_cell_and_a_rerun_runs_nothing(images, tmp_path, capsys, monkeypatch):
    from transfer.io.images import load_image

    output = tmp_path / "out" / "grid.png"
    output.parent.mkdir()
    status, out, err = _main(capsys, *_grid_args(images, output))
    assert status == 0, err
    assert "4 run" in out and "0 from" in out
    cells = sorted(p.name for p in (tmp_path / "out" / "grid_cells").glob("*.png"))
    assert cells == ["a_house__dots.png", "a_house__waves.png", "b_street__dots.png", "b_street__waves.png"]
    store_dir = tmp_path / "out" / "detstyle-cache"
    plan = _plan(images)
    from transfer.jobs.store import RunStore

    store = RunStore(store_dir)
    for cell in plan.cells:
        written = tmp_path / "out" / "grid_cells" / f"{cell.name}.png"
        assert written.read_bytes() == store.image_path(cell.spec).read_bytes()
        assert store.record(cell.spec)["steps"] == STEPS
        assert load_image(written).shape[:2] == store.load(cell.spec).shape[:2]
    figure = np.asarray(Image.open(output).convert("RGB"))

    import transfer.backbones.load
    import transfer.core.stylizer

    def no_optimisation(*args, **kwargs):
        raise AssertionError("a finished grid must not optimise or load a backbone")

    monkeypatch.setattr(transfer.core.stylizer, "stylize", no_optimisation)
    monkeypatch.setattr(transfer.backbones.load, "load_backbone", no_optimisation)
    status, out, err = _main(capsys, *_grid_args(images, output))
    assert status == 1 and "grid.png: already exists; pass --overwrite" in err  # the figure is never clobbered
    status, out, err = _main(capsys, *_grid_args(images, output), "--overwrite")
    assert status == 0, err
    assert "0 run" in out and "4 from" in out
    assert np.array_equal(np.asarray(Image.open(output).convert("RGB")), figure)  # same cache, same figure


def test_grid_figure_has_originals_on_the_top_row_and_left_column(images, tmp_path, random_backbone):
    from transfer.io.figures import grid_figure, save_figure
    from transfer.jobs.grid import describe_settings, label, run_grid
    from transfer.jobs.store import RunStore

    plan = _plan(images)
    result = run_grid(plan, RunStore(tmp_path / "cache"), backbone=random_backbone)
    originals = [np.full((20, 24, 3), 0.5, np.float32), np.full((24, 20, 3), 0.25, np.float32)]
    contents = [(label(ref), originals[i]) for i, ref in enumerate(plan.contents)]
    styles = [(label(ref), originals[0]) for ref in plan.styles]
    fig = grid_figure(contents, styles, result.images, title=describe_settings(plan.cells[0].spec))
    assert len(fig.axes) == 3 * 3
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 2 + 2 + 2 * 2  # the corner is empty
    grid = np.array(fig.axes).reshape(3, 3)
    assert [grid[0][c].get_title() for c in (1, 2)] == ["waves", "dots"]
    assert [grid[r][0].get_ylabel() for r in (1, 2)] == ["a_house", "b_street"]
    for r in range(2):
        for c in range(2):
            np.testing.assert_array_equal(grid[r + 1][c + 1].images[0].get_array(), result.images[r][c])
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "backbone random" in title and f"{SIZE} px" in title and f"{STEPS} L-BFGS iterations" in title
    path = save_figure(fig, tmp_path / "g.png", dpi=50)
    width, height = Image.open(path).size
    assert (width, height) == tuple(round(v * 50) for v in fig.get_size_inches())


# ---------------------------------------------------------------- failures and interruptions


class _Observer:
    """Counts cells; `on_step(index, info)` may act during the `index`-th cell that runs."""

    def __init__(self, on_step=None, on_finish=None):
        self.on_step, self.on_finish = on_step, on_finish
        self.started, self.ran = [], []

    def start(self, cell, cached):
        self.started.append(cell.name)
        if cached or self.on_step is None:
            return None
        return functools.partial(self.on_step, len(self.started) - 1)

    def finish(self, cell, record, ran):
        if ran:
            self.ran.append(cell.name)
        if self.on_finish is not None:
            self.on_finish(cell)


def test_finished_cells_survive_a_failure_in_a_later_cell(images, tmp_path, random_backbone):
    from transfer.jobs.grid import run_grid
    from transfer.jobs.store import RunStore

    def fail_third(index, info):
        if index == 2:
            raise DetstyleError("cell 3 broke")

    plan, store = _plan(images), RunStore(tmp_path / "cache")
    with pytest.raises(DetstyleError, match="cell 3 broke"):
        run_grid(plan, store, observer=_Observer(fail_third), backbone=random_backbone)
    assert [c.name for c in plan.finished(store)] == ["a_house__waves", "a_house__dots"]
    again = _Observer()
    result = run_grid(plan, store, observer=again, backbone=random_backbone)
    assert result.ran == 2 and again.ran == ["b_street__waves", "b_street__dots"]


def test_sigint_during_a_cell_loses_only_that_cell(images, tmp_path, random_backbone):
    from transfer.io.run_state import Interrupted
    from transfer.jobs.grid import run_grid
    from transfer.jobs.store import RunStore

    def ctrl_c_in_second(index, info):
        if index == 1 and info.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    plan, store = _plan(images), RunStore(tmp_path / "cache")
    with pytest.raises(Interrupted, match=r"1 of 4 cells done.*again"):
        run_grid(plan, store, observer=_Observer(ctrl_c_in_second), backbone=random_backbone)
    assert len(plan.finished(store)) == 1


def test_sigint_between_cells_stops_before_the_next(images, tmp_path, random_backbone):
    from transfer.io.run_state import Interrupted
    from transfer.jobs.grid import run_grid
    from transfer.jobs.store import RunStore

    plan, store = _plan(images), RunStore(tmp_path / "cache")
    observer = _Observer(on_finish=lambda cell: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted, match="1 of 4 cells done"):
        run_grid(plan, store, observer=observer, backbone=random_backbone)
    assert observer.started == ["a_house__waves"]


def test_ctrl_c_exits_130_with_one_line_and_a_rerun_finishes(images, tmp_path, capsys, monkeypatch):
    import transfer.cli.grid

    def ctrl_c_bar(label, quiet):
        """The per-step bar's place: Ctrl-C during the second cell."""
        if label != "a_house__dots":
            return None, lambda: None
        return (lambda info: os.kill(os.getpid(), signal.SIGINT)), lambda: None

    output = tmp_path / "grid.png"
    monkeypatch.setattr(transfer.cli.grid, "progress_bar", ctrl_c_bar)
    status, out, err = _main(capsys, *_grid_args(images, output))
    assert status == 130
    line = _one_error_line(err)
    assert "1 of 4 cells done" in line and "run the same command again" in line
    assert not output.exists()
    monkeypatch.undo()
    status, out, err = _main(capsys, *_grid_args(images, output))
    assert status == 0 and "3 run" in out and "1 from" in out, err


@pytest.mark.parametrize("case", ["missing image", "corrupt image", "empty dir", "dir without images",
                                  "output dir is a file", "unreadable backbone", "same name twice", "ignored flag"])
def test_bad_input_is_one_line_and_a_nonzero_exit(images, tmp_path, capsys, case):
    contents, styles = images
    output = tmp_path / "grid.png"
    args = _grid_args(images, output)
    expected_status, named = 1, None
    if case == "missing image":
        args[args.index(styles[1])] = named = tmp_path / "nope.jpg"
    elif case == "corrupt image":
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"\x89PNG not really")
        args[args.index(styles[1])] = named = bad
    elif case in ("empty dir", "dir without images"):
        empty = tmp_path / "empty"
        empty.mkdir()
        if case == "dir without images":
            (empty / "readme.txt").write_text("hi")
        args[args.index(contents)] = named = empty
        expected_status = 2
    elif case == "output dir is a file":
        (tmp_path / "file").write_text("x")
        args[args.index(output)] = tmp_path / "file" / "grid.png"
        named = "file is not a directory"
    elif case == "unreadable backbone":
        weights = tmp_path / "weights.pth"
        weights.write_bytes(b"this is not a checkpoint")
        args[args.index("random")] = named = weights
    elif case == "same name twice":
        args[args.index(styles[1])] = styles[0]
        expected_status, named = 2, "waves"
    else:
        args += ["--optimizer", "lbfgs", "--learning-rate", "0.1"]
        expected_status, named = 2, "--learning-rate"
    status, _, err = _main(capsys, *args)
    assert status == expected_status, err
    line = _one_error_line(err)
    assert line.startswith("detstyle: error:") and str(named) in line
    assert not output.exists() and not (tmp_path / "detstyle-cache").exists()


def test_a_bad_option_value_is_a_usage_error(images, tmp_path, capsys):
    args = _grid_args(images, tmp_path / "grid.png")
    args[args.index("--steps") + 1] = "0"
    status, _, err = _main(capsys, *args)
    assert status == 2 and "--steps" in err and "Traceback" not in err


# ---------------------------------------------------------------- the cost bench


def test_grid_cost_bench_times_both_sides_in_one_run(tmp_path, shared_image):
    import json

    from bench import grid_cost

    shared_image(grid_cost.CONTENTS[0])
    shared_image(grid_cost.STYLES[0])
    argv = ["--size", "32", "--steps", "1", "--n", "1", "--m", "1", "--backbone", "random", "--out", str(tmp_path)]
    assert grid_cost.main(argv) == 0
    text = (tmp_path / "grid_cost.json").read_text()
    data = json.loads(text)
    assert grid_cost.to_json(data) == text
    assert [len(r) for r in data["single_seconds"]] == [1, 1] and len(data["grid_seconds"]) == 2
    assert data["ratio"] == sum(data["grid_seconds"]) / sum(map(sum, data["single_seconds"]))
    assert data["settings"]["contents"] == [grid_cost.CONTENTS[0]] and len(data["load_average"]) == 3


def test_grid_cost_bench_stops_on_a_missing_image(tmp_path, monkeypatch, capsys):
    from bench import grid_cost, images

    monkeypatch.setattr(images, "SHARED_IMAGES", tmp_path)
    assert grid_cost.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / grid_cost.CONTENTS[0]) in err[0]
    assert not (tmp_path / "out").exists()
