"""`detstyle video` frame by frame on the engine: `--shard i/n` and `--engine ray` against one local run.

Oracles: the bytes of the frame PNGs one local (in-process) run writes, the files each run
leaves (or must not leave) beside OUT, and the exit status and single line of a refusal.
Tiny clip (4 frames, 32 px, 2 L-BFGS steps, the random backbone, fp32), as in test_engine.
"""

from __future__ import annotations

import json

import pytest

from bench.flicker import panning_clip
from tests.test_engine import cached_pngs, one_error_line, run_main
from transfer.io.images import load_image, save_image
from transfer.io.samples import generated_style, grace_hopper_path
from transfer.video.frames import read_clip, write_clip

FRAMES, SIZE, STEPS = 4, 32, 2


@pytest.fixture(scope="module")
def clip_and_style(tmp_path_factory):
    """A 4-frame pan as a GIF and a generated style PNG."""
    folder = tmp_path_factory.mktemp("inputs")
    frames = panning_clip(load_image(grace_hopper_path(), 120), FRAMES, SIZE, 3)
    return write_clip(frames, folder / "pan.gif", 5.0), save_image(generated_style(SIZE), folder / "style.png")


def video_args(clip_and_style, output, *extra):
    clip, style = clip_and_style
    return ["video", clip, "-o", output, "--style", style, "--backbone", "random", "--size", SIZE,
            "--steps", STEPS, "--precision", "fp32", "--flow", "tvl1", "--quiet", *extra]


@pytest.fixture(scope="module")
def local_run(clip_and_style, tmp_path_factory):
    """One in-process run of the whole clip: the reference frames."""
    from transfer.cli.main import main

    folder = tmp_path_factory.mktemp("local")
    assert main([str(a) for a in video_args(clip_and_style, folder / "o.gif")]) == 0
    return folder


def _beside(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "detstyle-cache")


def test_two_shards_make_the_frames_of_one_local_run(clip_and_style, local_run, tmp_path, capsys):
    status, out, err = run_main(capsys, *video_args(clip_and_style, tmp_path / "o.gif", "--shard", "0/2"))
    assert status == 0, err
    assert out.strip() == out.strip().splitlines()[0]  # one line
    assert "shard 0/2: 2 of its 2 frames run now" in out and "2 of 4 frames are not finished" in out
    assert _beside(tmp_path) == []  # no clip, no frames folder, no flicker JSON while frames are missing

    status, out, err = run_main(capsys, *video_args(clip_and_style, tmp_path / "o.gif", "--shard", "1/2"))
    assert status == 0, err
    assert "shard 1/2: 2 of its 2 frames run now" in out and "every frame of the 4 is finished" in out
    assert _beside(tmp_path) == ["o.gif", "o_flicker.json", "o_frames"]
    assert len(cached_pngs(tmp_path / "o_frames")) == FRAMES
    assert cached_pngs(tmp_path / "o_frames") == cached_pngs(local_run / "o_frames")  # byte for byte
    record = json.loads((tmp_path / "o_flicker.json").read_text())
    reference = json.loads((local_run / "o_flicker.json").read_text())
    assert record["frames_run"] == 2 and reference["frames_run"] == FRAMES
    assert record["warping_error"] == reference["warping_error"]
    assert len(read_clip(tmp_path / "o.gif", None).frames) == FRAMES


def test_a_rerun_of_a_finished_clip_runs_no_frame(clip_and_style, local_run, capsys):
    status, out, err = run_main(capsys, *video_args(clip_and_style, local_run / "o.gif", "--overwrite"))
    assert status == 0, err
    assert "0 run, 4 from" in out


@pytest.mark.parametrize("extra, flag", [(["--engine", "ray", "--init", "prevwarped"], "--engine ray"),
                                         (["--shard", "0/2", "--temporal-weight", "5"], "--shard 0/2")])
def test_a_chained_clip_refuses_the_engine_options(clip_and_style, tmp_path, capsys, extra, flag):
    if "ray" in extra:
        pytest.importorskip("ray")  # without it, --engine ray is refused for that reason instead
    status, out, err = run_main(capsys, *video_args(clip_and_style, tmp_path / "o.gif", *extra))
    assert status == 2
    line = one_error_line(err)
    assert flag in line and "in order" in line
    assert list(tmp_path.iterdir()) == []  # refused before any work or output


@pytest.fixture(scope="module")
def ray_cluster():
    """One 2-CPU local cluster for this module's Ray test, shut down after it (as in test_ray)."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_frames_on_ray_are_the_bytes_of_one_local_run(ray_cluster, clip_and_style, local_run, tmp_path, capsys):
    status, out, err = run_main(capsys, *video_args(clip_and_style, tmp_path / "o.gif", "--engine", "ray"))
    assert status == 0, err
    assert "4 run, 0 from" in out and ray_cluster.is_initialized()
    assert cached_pngs(tmp_path / "o_frames") == cached_pngs(local_run / "o_frames")
    assert ray_cluster.available_resources().get("CPU") == 2  # the command's actors are gone
