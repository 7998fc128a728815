"""docs/robustness.md, tested: every command line of the catalogue, and the cases that need more.

The command lines run in this process through `transfer.cli.main` (TensorFlow loads once);
signals are sent to real subprocesses.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.robustness_cases import CASES, DOC, RUNS, TINY, ProvenBy, float_tiff, pair, render
from transfer.cli.main import main


#: `detstyle: error: ...`, or argparse's `detstyle stylize: error: ...` after its usage line.
ERROR_LINE = re.compile(r"detstyle( [a-z-]+)*: error: ")


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def deadline():
    """Fail a case that blocks (a FIFO read, a hang in a decoder) instead of hanging the suite."""

    def expired(signum, frame):
        raise TimeoutError("the case did not finish within 120 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", RUNS, ids=[case.id for case in RUNS])
def test_command_line_case(case, tmp_path, capsys, monkeypatch, deadline):
    monkeypatch.chdir(tmp_path)
    argv = case.setup(tmp_path)
    before = _tree(tmp_path)
    status = main(argv)
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    assert status == case.exit, err
    if case.exit:
        errors = [line for line in err.splitlines() if ERROR_LINE.match(line)]
        assert len(errors) == 1, err
        assert re.search(case.message, errors[0]), errors[0]
        assert _tree(tmp_path) == before, "a refused command must leave nothing behind"
    else:
        assert re.search(case.message, err), err
        assert _tree(tmp_path) - before == set(case.creates)


def test_the_catalogue_is_the_committed_document_and_has_at_least_60_cases():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)
    assert DOC.read_text(encoding="utf-8") == render(), "run: python tests/robustness_cases.py"


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c, ProvenBy)], ids=lambda c: c.id)
def test_every_case_proven_elsewhere_names_a_test_that_exists(case):
    file, _, name = case.test.partition("::")
    source = (ROOT / file).read_text(encoding="utf-8")
    assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.M), case.test


# ---------------------------------------------------------------------------------------
# Cases a command line alone cannot set up
# ---------------------------------------------------------------------------------------


def test_float_tiff_keeps_its_picture(tmp_path, caplog):
    from transfer.io.images import load_image

    ramp = np.linspace(0.0, 1.0, 20 * 20).reshape(20, 20)
    loaded = load_image(float_tiff(tmp_path / "unit.tif", ramp))
    assert np.abs(loaded[..., 0] - ramp).max() <= 0.5 / 255 + 1e-6  # [0, 1] floats scaled by 255, not clipped flat
    with caplog.at_level(logging.INFO, "detstyle"):
        stretched = load_image(float_tiff(tmp_path / "depth.tif", ramp * 1000 - 200))
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    assert "stretched to 0..255" in caplog.text


def test_a_huge_jpeg_wanted_small_is_decoded_small(tmp_path):
    """Peak RSS of a fresh process decoding a 24 Mpx JPEG for a 64 px run vs in full (measured: 47 vs 794 MB)."""
    path = tmp_path / "big.jpg"
    Image.radial_gradient("L").resize((6000, 4000)).convert("RGB").save(path, quality=80)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked pytest process
    script = ("import re, sys; from pathlib import Path; from transfer.io.images import load_image; "
              "load_image(sys.argv[1], int(sys.argv[2]) or None); "
              "print(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1))")

    def peak_kib(max_side: int) -> int:
        out = subprocess.run([sys.executable, "-c", script, str(path), str(max_side)], capture_output=True,
                             text=True, cwd=ROOT, check=True)
        return int(out.stdout.strip())

    small, full = peak_kib(64), peak_kib(0)
    assert full - small > 200_000, (small, full)  # a full decode costs 72 MB of RGB + 288 MB of float32


def _stylize_argv(folder: Path, *extra: str) -> list[str]:
    content, style = pair(folder)
    return ["stylize", content, style, "-o", str(folder / "out.png"), *TINY, *extra]


def _error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("detstyle: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_a_file_that_appears_during_the_run_is_not_replaced(tmp_path, capsys, monkeypatch):
    import transfer.cli.stylize

    def intruder_bar(label, quiet):
        return (lambda info: (tmp_path / "out.png").write_bytes(b"someone else's")), lambda: None

    monkeypatch.setattr(transfer.cli.stylize, "progress_bar", intruder_bar)
    status = main(_stylize_argv(tmp_path, "--steps", "2"))
    line = _error_line(capsys.readouterr().err)
    assert status == 1
    kept = Path(re.search(r"the result was kept at (\S+)$", line).group(1))
    assert "appeared while the run was working" in line
    assert (tmp_path / "out.png").read_bytes() == b"someone else's"
    assert Image.open(kept).size == (32, 24)


def test_a_failed_final_write_keeps_the_result(tmp_path, capsys, monkeypatch):
    real_save = Image.Image.save

    def disk_full_for_out_png(self, fp, *args, **kwargs):
        if ".out.png." in str(fp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full_for_out_png)
    status = main(_stylize_argv(tmp_path))
    line = _error_line(capsys.readouterr().err)
    assert status == 1 and "out.png: cannot write (No space left on device)" in line
    kept = Path(re.search(r"the result was kept at (\S+)$", line).group(1))
    assert kept.parent == tmp_path and Image.open(kept).size == (32, 24)
    assert not (tmp_path / "out.png").exists()
    assert (tmp_path / "out.ckpt.npz").exists()  # the finished state stays: --resume writes it again at once


def test_a_non_finite_loss_writes_the_last_good_image(tmp_path, capsys, monkeypatch):
    import transfer.backbones.load

    real_load = transfer.backbones.load.load_backbone

    def nan_backbone(*args, **kwargs):
        backbone = real_load(*args, **kwargs)
        kernel = backbone.model.get_layer("block1_conv1").kernel
        kernel.assign(np.full(kernel.shape, np.nan, np.float32))
        return backbone

    monkeypatch.setattr(transfer.backbones.load, "load_backbone", nan_backbone)
    status = main(_stylize_argv(tmp_path, "--steps", "3"))
    line = _error_line(capsys.readouterr().err)
    assert status == 1
    assert "not finite from the first step" in line and "lower --learning-rate" not in line
    kept = Path(re.search(r"the last good image \(the start image\) was written to (\S+)$", line).group(1))
    assert kept.name.startswith("out.last-good-") and Image.open(kept).size == (32, 24)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.ckpt.npz").exists()


def _state(**overrides):
    from transfer.io.run_state import RunState

    fields = dict(stage_index=0, steps_done=1, param=np.zeros((1, 24, 32, 3), np.float32), m=None, v=None, t=0.0,
                  history=[{"total": 1.0}], spec={})
    return RunState(**(fields | overrides))


@pytest.mark.parametrize("meta, message", [
    ({"stage_index": "0"}, "stage_index is '0', not a count"),
    ({"steps_done": -3}, "steps_done is -3, not a count"),
    ({"param": np.zeros((1, 24, 32, 3), np.int64)}, "param is not a finite float32 image batch"),
    ({"param": np.full((1, 24, 32, 3), np.nan, np.float32)}, "param is not a finite float32 image batch"),
    ({"history": "lots"}, "malformed metadata"),
    ({"param": np.zeros((24, 32, 3), np.float32)}, "param is not a finite float32 image batch"),
    ({"spec": ["not", "a", "spec"]}, "malformed metadata"),
])
def test_a_crafted_state_is_refused_with_one_line(tmp_path, meta, message):
    from transfer.errors import DetstyleError
    from transfer.io.run_state import RunState

    path = _state(**meta).save(tmp_path / "s.ckpt.npz")
    with pytest.raises(DetstyleError, match=re.escape(message)):
        RunState.load(path)


@pytest.mark.parametrize("fields, message", [
    ({"stage_index": 2}, "at stage 2, but this run has 1 stage(s)"),
    ({"steps_done": 9}, "9 steps done in a stage of 5"),
    ({"param": np.zeros((1, 16, 16, 3), np.float32)}, "image has shape (1, 16, 16, 3), this run needs (1, 24, 32, 3)"),
])
def test_a_state_that_does_not_fit_the_run_is_refused(fields, message):
    from transfer.errors import DetstyleError

    with pytest.raises(DetstyleError, match=re.escape(message)):
        _state(**fields).check_fits([(24, 32)], [5], batch=1)


def _started(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "transfer", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_second_ctrl_c_still_saves_the_state(tmp_path):
    argv = _stylize_argv(tmp_path, "--steps", "400", "--save-every", "1")
    proc = _started(argv, tmp_path)
    frames, deadline = tmp_path / "out_frames", time.time() + 120
    while time.time() < deadline and not (frames.is_dir() and len(list(frames.iterdir())) >= 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert (tmp_path / "out.ckpt.npz").exists()


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    proc = _started(_stylize_argv(tmp_path), tmp_path)
    time.sleep(1.0)  # TensorFlow takes several seconds to import
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("detstyle: interrupted") and "Traceback" not in err
