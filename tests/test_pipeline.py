"""`layer_movement` by hand on tiny models, and one tiny `detstyle pipeline` run (train 1 step, stylise 1 step)."""

import contextlib
import io
import json
import math

import keras
import numpy as np
import pytest
from PIL import Image

from transfer.errors import DetstyleError
from transfer.jobs.pipeline import layer_movement, relative_l2


def _tiny(filters_a: int = 3, with_b: bool = True) -> keras.Model:
    """Input (4, 4, 2) -> conv `a` (1x1) -> [conv `b` (1x1, 1 filter)] -> a Dense layer (not a conv: ignored)."""
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(filters_a, 1, name="a")(inputs)
    if with_b:
        x = keras.layers.Conv2D(1, 1, name="b")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def _set(model, name, kernel, bias):
    layer = model.get_layer(name)
    layer.set_weights([np.asarray(kernel, np.float32).reshape(layer.kernel.shape), np.asarray(bias, np.float32)])


def test_layer_movement_is_the_relative_l2_change_computed_by_hand():
    before, after = _tiny(filters_a=1), _tiny(filters_a=1)
    # a: kernel (1,1,2,1) [3, 4], bias [0] -> norm 5; after [3, 4] + [0.5, 0] and bias 0 -> change 0.5: 0.1
    _set(before, "a", [3, 4], [0])
    _set(after, "a", [3.5, 4], [0])
    # b: kernel (1,1,1,1) [1], bias [2] -> norm sqrt(5); after kernel [1], bias [3] -> change 1: 1/sqrt(5)
    _set(before, "b", [1], [2])
    _set(after, "b", [1], [3])
    rows = layer_movement(before, after)
    assert [name for name, _ in rows] == ["a", "b"]  # the convs, in network order; the Dense head is not one
    assert rows[0][1] == pytest.approx(0.1, rel=1e-6) and rows[1][1] == pytest.approx(1 / math.sqrt(5), rel=1e-6)
    assert layer_movement(before, before) == [("a", 0.0), ("b", 0.0)]
    assert layer_movement(before, after, layers=["b"])[0][0] == "b"


def test_layer_movement_refuses_other_shapes_and_missing_layers():
    with pytest.raises(DetstyleError, match="layer a: weight shapes"):
        layer_movement(_tiny(filters_a=3), _tiny(filters_a=4))
    with pytest.raises(DetstyleError, match="layer b is missing from the second network"):
        layer_movement(_tiny(), _tiny(with_b=False))


def test_relative_l2_of_zero_weights():
    zero = [np.zeros(3)]
    assert relative_l2(zero, zero) == 0.0 and relative_l2(zero, [np.ones(3)]) == float("inf")


# ----------------------------------------------------------------------------------- the command


def _main(*args):
    from transfer.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _png(path, seed, size=(40, 32)):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    assert _main("make-voc", tmp / "voc", "--images", 4, "--size", 268, "--classes", "disc,square")[0] == 0
    args = ["pipeline", "--data", tmp / "voc", "--init", "random", "--train-steps", 1, "--batch-size", 1,
            "--train-size", 268, "--content", _png(tmp / "photo.png", 0), "--styles", _png(tmp / "paint.png", 1),
            "--size", 32, "--steps", 1, "-o", tmp / "out", "--quiet"]
    return tmp / "out", args, _main(*args)


def test_pipeline_writes_the_figure_metrics_and_movement_tables(pipeline_run):
    out, _, (code, stdout, err) = pipeline_run
    assert code == 0, err
    for name in ("comparison.png", "comparison.pdf", "comparison.md", "metrics.json", "metrics.csv",
                 "layer_movement.md", "layer_movement.json", "detector/ssd300_final.pth", "detector/classes.txt"):
        assert (out / name).is_file(), name
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert [r["backbone"].rsplit("/", 1)[-1] for r in runs] == ["random", "ssd300_final.pth"]
    table = (out / "comparison.md").read_text()
    assert "`random`" in table and "`ssd300_final.pth`" in table


def test_pipeline_movement_starts_from_the_init_as_the_detector_did(pipeline_run):
    out, _, (code, stdout, _) = pipeline_run
    movement = json.loads((out / "layer_movement.json").read_text())
    layers = [row["layer"] for row in movement["layers"]]
    assert layers[0] == "block1_conv1" and layers[-1] == "block5_conv3" and len(layers) == 13
    # one warm-up step at lr 2e-6 moves little; a mismatched start (e.g. unflipped BGR channels) would show ~1
    assert all(0 < row["relative_l2"] < 0.05 for row in movement["layers"])
    assert movement["before"] == "random" and "block5_conv3" in stdout and "| `block1_conv1` |" in (
        out / "layer_movement.md").read_text()


def test_pipeline_rerun_without_resume_is_refused_in_one_line(pipeline_run):
    _, args, _ = pipeline_run
    code, _, err = _main(*[a for a in args if a != "--quiet"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--resume" in lines[0]


def test_readme_quotes_the_committed_pipeline_tables_unchanged():
    """The README's pipeline tables are the files `make pipeline-figure` wrote into docs/pipeline/."""
    import re

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for region, name in (("pipeline:table", "comparison.md"), ("pipeline:movement", "layer_movement.md")):
        found = re.search(rf"<!-- {region} -->\n(.*?)<!-- /{region} -->", readme, re.S)
        assert found and found.group(1) == (ROOT / "docs" / "pipeline" / name).read_text(encoding="utf-8"), region
