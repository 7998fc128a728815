"""The `detstyle` command as a user runs it: real subprocesses, exit codes, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "transfer", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def _png(path, seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return path


def test_help_explains_every_stylize_flag():
    out = run_cli("stylize", "--help")
    assert out.returncode == 0
    for flag in ("--size", "--steps", "--backbone", "--layers", "--style-weight", "--content-weight",
                 "--tv-weight", "--learning-rate", "--init", "--seed", "--profile", "--overwrite"):
        assert flag in out.stdout
    top = run_cli("--help")
    assert top.returncode == 0 and "demo" in top.stdout and "stylize" in top.stdout


@pytest.mark.parametrize("make_bad", ["missing", "corrupt"])
def test_bad_image_is_one_line_error_without_traceback(tmp_path, make_bad):
    bad = tmp_path / "bad.jpg"
    if make_bad == "corrupt":
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    style = _png(tmp_path / "style.png")
    out = run_cli("stylize", bad, style, "-o", tmp_path / "out.png", "--backbone", "random", "--steps", "1")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("detstyle: error:")]
    assert len(errors) == 1 and "bad.jpg" in errors[0]
    assert not (tmp_path / "out.png").exists()


def test_usage_errors_exit_2(tmp_path):
    out = run_cli("stylize", "a.jpg", "b.jpg", "-o", tmp_path / "o.png", "--steps", "0")
    assert out.returncode == 2 and "--steps" in out.stderr and "Traceback" not in out.stderr


def test_existing_output_needs_overwrite(tmp_path):
    content, style, output = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "o.png"
    output.write_bytes(b"previous")
    out = run_cli("stylize", content, style, "-o", output, "--backbone", "random", "--steps", "1")
    assert out.returncode == 1 and "--overwrite" in out.stderr
    assert output.read_bytes() == b"previous"


def test_stylize_end_to_end_writes_png(tmp_path):
    content, style, output = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "o.png"
    out = run_cli("stylize", content, style, "-o", output, "--backbone", "random", "--steps", "3",
                  "--size", "32", "--quiet")
    assert out.returncode == 0, out.stderr
    assert Image.open(output).size == (32, 27)
    assert "s/step" in out.stdout


def test_unknown_backbone_is_clear(tmp_path):
    content, style = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1)
    out = run_cli("stylize", content, style, "-o", tmp_path / "o.png", "--backbone", "no-such-net", "--steps", "1")
    assert out.returncode == 1 and "no-such-net" in out.stderr and "Traceback" not in out.stderr
