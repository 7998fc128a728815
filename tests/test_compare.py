"""`detstyle compare`: identical settings per backbone, skipped absent files, metrics, figure, reruns."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT


def _png(path, seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return path


def _cli(*args, tmp_path):
    env = {**os.environ, "DETSTYLE_OFFLINE": "1", "DETSTYLE_CACHE": str(tmp_path / "cache"),
           "DETSTYLE_WEIGHTS": str(tmp_path / "weights")}
    return subprocess.run([sys.executable, "-m", "transfer", "compare", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=900)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One real comparison: random vs a saved .weights.h5 vs an absent registry file, two presets."""
    from transfer.backbones.convert import save_backbone
    from transfer.backbones.random_control import random_backbone

    tmp = tmp_path_factory.mktemp("compare")
    mine = tmp / "mine.weights.h5"
    save_backbone(random_backbone(seed=7), mine, source="test: random seed 7")
    content, style = _png(tmp / "photo.png"), _png(tmp / "paint.png", seed=1)
    out = tmp / "out"
    args = [content, "--styles", style, "--backbones", f"random,{mine},vgg16-imagenet", "--layers", "gatys,article",
            "--size", "24", "--steps", "2", "-o", out]
    first = _cli(*args, tmp_path=tmp)
    second = _cli(*args, tmp_path=tmp)
    return tmp, out, mine, first, second


def test_absent_backbone_is_skipped_with_a_notice_naming_its_file(compared):
    _, _, _, first, _ = compared
    assert first.returncode == 0, first.stderr
    notices = [line for line in first.stderr.splitlines() if line.startswith("notice: skipped backbone vgg16-imagenet")]
    assert len(notices) == 1 and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in notices[0]


def test_every_run_shares_the_settings_and_records_its_backbone_file(compared):
    _, out, mine, _, _ = compared
    metrics = json.loads((out / "metrics.json").read_text())
    runs = metrics["runs"]
    assert len(runs) == 4 and {(r["backbone"].rsplit("/", 1)[-1], r["preset"]) for r in runs} == {
        ("random", "gatys"), ("random", "article"), ("mine.weights.h5", "gatys"), ("mine.weights.h5", "article")}
    digest = hashlib.sha256(mine.read_bytes()).hexdigest()
    assert {r["backbone_sha256"] for r in runs} == {None, digest}
    from transfer.core.spec import RunSpec

    specs = [RunSpec.from_dict(r["spec"]) for r in runs]
    same_preset = [s for s in specs if s.content_layers == specs[0].content_layers and s.style_layers == specs[0].style_layers]
    assert len(same_preset) == 2 and same_preset[0].differences(same_preset[1]) == ["backbone.name", "backbone.sha256"]
    assert metrics["command"].startswith("detstyle compare") and metrics["version"]
    for run in runs:
        assert run["steps"] == 2 and 0 < run["metrics"]["ssim"] <= 1 and run["metrics"]["judge"] == "judge-v1"


def test_outputs_figure_csv_and_each_result(compared):
    _, out, _, _, _ = compared
    assert (out / "comparison.pdf").read_bytes()[:4] == b"%PDF"
    assert Image.open(out / "comparison.png").size[0] > Image.open(out / "comparison.png").size[1]
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("content,style,backbone,backbone_sha256,preset")
    results = sorted(p.name for p in out.glob("photo__paint__*.png"))
    assert len(results) == 4 and "photo__paint__random__article.png" in results


def test_rerun_takes_every_run_from_the_store(compared):
    _, out, _, first, second = compared
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("cached:") == 4 and "running:" not in second.stderr
    assert json.loads((out / "metrics.json").read_text())["runs"][0]["seconds"] > 0


@pytest.mark.parametrize("case", ["missing-image", "corrupt-backbone", "out-is-a-file"])
def test_bad_input_is_one_line_and_nonzero(tmp_path, case):
    content, style, out = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "out"
    backbones = "random"
    contents = [content]
    if case == "missing-image":
        contents.append(tmp_path / "nope.jpg")
    elif case == "corrupt-backbone":
        bad = tmp_path / "broken.pth"
        bad.write_bytes(b"\x80\x02\x8a\x0a" + b"\x00" * 64)
        backbones = f"random,{bad}"
    else:
        out.write_text("not a directory")
    result = _cli(*contents, "--styles", style, "--backbones", backbones, "--size", "24", "--steps", "1", "-o", out,
                  tmp_path=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("detstyle: error:")]
    assert len(errors) == 1


def test_readme_quotes_the_committed_comparison_table_unchanged():
    """The README's table is the one `detstyle compare` wrote (docs/compare/comparison.md), and that
    file is what `markdown_table` renders from the committed metrics.json."""
    import re

    from transfer.jobs.compare import markdown_table

    table = (ROOT / "docs" / "compare" / "comparison.md").read_text()
    region = re.search(r"<!-- compare:table -->\n(.*?)<!-- /compare:table -->", (ROOT / "README.md").read_text(), re.S)
    assert region and region.group(1) == table
    runs = json.loads((ROOT / "docs" / "compare" / "metrics.json").read_text())["runs"]
    assert markdown_table(runs) == table and len(runs) == 16
