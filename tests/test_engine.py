"""Engines without Ray: shard selection, refused engine options, and `--shard` runs of a real grid.

Oracles: hand-computed shard assignments and a coverage property (every unit in exactly one
shard), the bytes of the PNGs a one-process run caches, and the exit status/one-line message
of every refusal.  Tiny grid (32 px, 3 L-BFGS steps, the random backbone, fp32).
"""

import sys

import numpy as np
import pytest
from PIL import Image

from transfer.errors import UsageError
from transfer.jobs.engine import EngineChoice, Shard

SIZE, STEPS = 32, 3


def _png(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), np.uint8)).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    """Two contents and two styles: a 2x2 grid."""
    return ([_png(tmp_path / "c_one.png", 1), _png(tmp_path / "c_two.png", 2)],
            [_png(tmp_path / "s_one.png", 3), _png(tmp_path / "s_two.png", 4)])


def grid_args(inputs, output, *extra):
    contents, styles = inputs
    return ["grid", "--contents", *contents, "--styles", *styles, "-o", output, "--backbone", "random",
            "--size", SIZE, "--steps", STEPS, "--quiet", "--precision", "fp32", *extra]


def run_main(capsys, *args):
    """`detstyle ARGS` in this process: (exit status, stdout, stderr)."""
    from transfer.cli.main import main

    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def cached_pngs(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


# ---------------------------------------------------------------- shards


def test_a_shard_takes_every_nth_unit_from_its_index():
    assert Shard(1, 3).select(list("abcdefg")) == ["b", "e"]
    assert Shard(0, 1).select(list("abc")) == ["a", "b", "c"]
    assert Shard(3, 4).select(list("abc")) == []  # more shards than units: the extra ones do nothing


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_the_shards_of_a_plan_cover_each_unit_exactly_once(count):
    units = list(range(11))
    taken = [u for i in range(count) for u in Shard(i, count).select(units)]
    assert sorted(taken) == units


@pytest.mark.parametrize("text, why", [("2/2", "numbered 0 to 1"), ("0/0", "at least 1"), ("a/b", "expects I/N"),
                                       ("1", "expects I/N"), ("-1/2", "expects I/N"), ("1/2/3", "expects I/N")])
def test_bad_shards_are_usage_errors(text, why):
    with pytest.raises(UsageError, match=why):
        Shard.parse(text)


def test_engine_options_that_would_be_ignored_are_refused():
    with pytest.raises(UsageError, match="--address auto would be ignored"):
        EngineChoice.from_options("local", "auto")
    with pytest.raises(UsageError, match="Ray already spreads"):
        EngineChoice.from_options("ray", None, "0/2")
    assert EngineChoice.from_options("local", None, " 1 / 2 ").shard == Shard(1, 2)


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("extra, words", [(["--shard", "2/2"], "numbered 0 to 1"), (["--shard", "0/0"], "at least 1"),
                                          (["--shard", "x"], "expects I/N"),
                                          (["--shard", "0/2", "--engine", "ray"], "Ray already spreads"),
                                          (["--address", "auto"], "would be ignored")])
def test_bad_engine_options_exit_2_with_one_line_before_any_work(inputs, tmp_path, capsys, extra, words):
    output = tmp_path / "g.png"
    status, out, err = run_main(capsys, *grid_args(inputs, output, *extra))
    assert status == 2 and words in one_error_line(err)
    assert not output.exists() and not (tmp_path / "detstyle-cache").exists()


def test_engine_ray_without_ray_installed_is_one_line_exit_2(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when the extra is not installed
    status, out, err = run_main(capsys, *grid_args(inputs, tmp_path / "g.png", "--engine", "ray"))
    assert status == 2 and "pip install 'detstyle[ray]'" in one_error_line(err)
    assert not (tmp_path / "detstyle-cache").exists()


def test_two_shards_make_the_cells_of_one_process_and_the_last_one_writes_the_figure(inputs, tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    whole.mkdir(), split.mkdir()
    status, out, err = run_main(capsys, *grid_args(inputs, whole / "g.png"))
    assert status == 0, err

    status, out, err = run_main(capsys, *grid_args(inputs, split / "g.png", "--shard", "1/2"))
    assert status == 0, err
    assert "shard 1/2: 2 of its 2 cells run now" in out and "2 of 4 cells are not finished" in out
    assert not (split / "g.png").exists()  # a partial grid writes no figure
    assert sorted(p.name for p in (split / "g_cells").glob("*.png")) == ["c_one__s_two.png", "c_two__s_two.png"]

    status, out, err = run_main(capsys, *grid_args(inputs, split / "g.png", "--shard", "0/2"))
    assert status == 0, err
    assert "shard 0/2: 2 of its 2 cells run now" in out and "every cell of the 2x2 grid is finished" in out
    assert "wrote" in out and (split / "g.png").is_file()
    assert cached_pngs(split / "detstyle-cache") == cached_pngs(whole / "detstyle-cache")  # same cells, same bytes
    assert cached_pngs(split / "g_cells") == cached_pngs(whole / "g_cells")
    assert np.array_equal(np.asarray(Image.open(split / "g.png")), np.asarray(Image.open(whole / "g.png")))


def test_compare_split_in_two_shards_makes_the_runs_of_one_process(inputs, tmp_path, capsys):
    contents, styles = inputs
    base = ["compare", contents[0], "--styles", styles[0], "--backbones", "random", "--layers", "gatys,article",
            "--size", SIZE, "--steps", STEPS, "--quiet", "--precision", "fp32", "-o"]
    assert run_main(capsys, *base, tmp_path / "whole")[0] == 0
    status, out, err = run_main(capsys, *base, tmp_path / "split", "--shard", "0/2")
    assert status == 0, err
    assert "1 runs are not finished yet" in out and not (tmp_path / "split" / "comparison.png").exists()
    status, out, err = run_main(capsys, *base, tmp_path / "split", "--shard", "1/2")
    assert status == 0, err
    assert "every run is finished" in out and (tmp_path / "split" / "comparison.png").is_file()
    assert cached_pngs(tmp_path / "split" / "runs") == cached_pngs(tmp_path / "whole" / "runs")
    assert len(cached_pngs(tmp_path / "whole" / "runs")) == 2


class _FakeRay:
    """What `unit_resources` reads of Ray: the cluster's resources."""

    def __init__(self, resources):
        self.resources = resources

    def cluster_resources(self):
        return self.resources


def test_a_unit_takes_one_gpu_where_the_cluster_has_gpus_else_one_cpu():
    from transfer.jobs.ray_engine import unit_resources

    assert unit_resources(_FakeRay({"CPU": 32.0, "GPU": 4.0})) == ({"num_gpus": 1}, 4)
    assert unit_resources(_FakeRay({"CPU": 3.0})) == ({"num_cpus": 1}, 3)
    assert unit_resources(_FakeRay({"CPU": 3.0, "GPU": 0.0})) == ({"num_cpus": 1}, 3)


def test_the_readme_table_renders_the_committed_measurement():
    import json

    from bench.ray_overhead import markdown_table
    from tests.conftest import ROOT

    data = json.loads((ROOT / "bench" / "results" / "ray_overhead.json").read_text())
    rows = markdown_table(data).splitlines()
    assert len(rows) == 2 + 3 + 1  # header, rule, three sides, the cluster start
    for row, side in zip(rows[2:5], ("local", "actors", "tasks")):
        numbers = data["sides"][side]
        assert f"| {numbers['wall_seconds']:.1f} |" in row and f"| {numbers['backbone_loads']} |" in row
    assert f"{data['wall_ratio_to_local']['actors']:.2f}" in rows[3]
