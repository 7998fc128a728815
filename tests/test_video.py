"""`detstyle video`: flow, warping, occlusion, the flicker metric, the temporal term, the job, clips, the CLI.

Oracles: hand-computed shifts and sums, the known displacement of a synthetic pan, files made
by the real writers read back, and counted optimiser runs.  Tiny sizes and the random backbone:
the claims here (less flicker with a warm start and the temporal term, resume) do not need
trained weights.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bench.flicker import panning_clip
from transfer.core.spec import RunSpec, make_spec
from transfer.errors import UsageError
from transfer.io.images import array_ref, load_image
from transfer.io.run_state import Interrupted
from transfer.io.samples import grace_hopper_path
from transfer.jobs.store import RunStore
from transfer.video.flow import FLOW_METHODS, consistent, inside, motion, optical_flow, warp
from transfer.video.frames import Clip, read_clip, with_inset, write_clip
from transfer.video.metrics import warping_error

PAN = 3


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(grace_hopper_path(), 160)


@pytest.fixture(scope="module")
def pan(photo) -> list[np.ndarray]:
    """A 4-frame pan, 3 px per frame, 48x36 px: frame t(y, x) = frame t-1(y, x + 3)."""
    return panning_clip(photo, 4, 48, PAN)


@pytest.fixture(scope="module")
def backbone():
    from transfer.backbones.load import load_backbone

    return load_backbone("random", seed=0)


# -- warping and occlusion ---------------------------------------------------------------------

def test_integer_shift_warp_is_exact_on_the_interior():
    rng = np.random.default_rng(0)
    b = rng.uniform(size=(10, 12, 3)).astype(np.float32)
    flow = np.zeros((10, 12, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, 3  # sample b at (y + 2, x + 3)
    warped = warp(b, flow)
    np.testing.assert_array_equal(warped[:8, :9], b[2:, 3:])
    assert not np.allclose(warped[:8, :9], b[:8, :9])  # it did move


def test_mask_flags_the_uncovered_strip_of_a_known_shift():
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 1] = PAN
    back = -flow
    mask = inside(flow) & consistent(flow, back)
    assert mask[:, : 10 - PAN].all() and not mask[:, 10 - PAN :].any()


def test_round_trip_that_does_not_return_is_occluded():
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 1] = 2
    back = np.zeros_like(flow)  # b -> a says "nothing moved": a -> b -> a misses by 2 px (4 > 0.01*4 + 0.5)
    assert not consistent(flow, back).any()


@pytest.mark.parametrize("method", [m for m, f in FLOW_METHODS.items() if f.available()])
def test_flow_recovers_a_known_pan(method, photo):
    a, b = panning_clip(photo, 2, 96, PAN)[::-1]  # a = frame 1, b = frame 0: a(y, x) = b(y, x + 3)
    flow = optical_flow(a, b, method)
    interior = flow[8:-8, 8 : -8 - PAN]
    assert np.median(interior[..., 0]) == pytest.approx(0, abs=0.25)
    assert np.median(interior[..., 1]) == pytest.approx(PAN, abs=0.25)


def test_computed_motion_mask_flags_the_new_strip(pan):
    move = motion(pan[1], pan[0], "tvl1")
    assert move.mask[:, -PAN:].mean() < 0.1  # content that entered the frame
    assert move.mask[:, : -PAN - 2].mean() > 0.9


# -- the flicker metric and the temporal term ---------------------------------------------------

def test_warping_error_hand_values():
    previous = np.zeros((4, 4, 3), np.float32)
    zero = np.zeros((4, 4, 2), np.float32)
    mask = np.ones((4, 4), np.float32)
    assert warping_error(previous, previous, zero, mask) == 0.0
    current = previous.copy()
    current[..., 0] = 0.3  # channel mean of the squared difference: 0.09 / 3
    current[:2, :, 0] = 0.9  # masked out below
    mask[:2] = 0
    assert warping_error(current, previous, zero, mask) == pytest.approx(0.03)


def test_temporal_term_hand_value_and_total():
    import tensorflow as tf

    from transfer.core.temporal import TemporalObjective, TemporalTarget, temporal_loss

    pixels = tf.fill((1, 2, 2, 3), 0.5)
    mask = np.array([[1, 0], [0, 0]], np.float32)
    value = temporal_loss(pixels, tf.zeros((1, 2, 2, 3)), tf.constant(mask[None, ..., None]))
    assert float(value[0]) == pytest.approx(3 * 0.25 / 12)  # one pixel of three channels, over D = 2*2*3

    class Base:
        lower = 0.0

        def terms(self, param):
            return {"style": tf.constant([1.0]), "total": tf.constant([1.0])}

    wrapped = TemporalObjective(Base(), TemporalTarget(np.zeros((2, 2, 3), np.float32), mask), 8.0)
    terms = wrapped.terms(pixels)
    assert float(terms["total"][0]) == pytest.approx(1.0 + 8.0 * 0.0625) and wrapped.lower == 0.0


def test_temporal_fields_hash_distinctly_and_refuse_what_is_meaningless():
    ref = array_ref(np.zeros((2, 2, 3), np.float32), "t")
    other = array_ref(np.ones((2, 2, 3), np.float32), "t")
    plain = make_spec()
    assert "temporal_weight" not in plain.to_dict()  # unset video fields leave every other digest alone
    with_term = dataclasses.replace(plain, temporal_target=ref, temporal_mask=ref, temporal_weight=1.0)
    variants = [with_term, dataclasses.replace(with_term, temporal_target=other),
                dataclasses.replace(with_term, temporal_weight=2.0)]
    assert len({plain.digest(), *(v.digest() for v in variants)}) == 4
    assert RunSpec.from_dict(json.loads(with_term.to_json())) == with_term
    for bad in (dict(temporal_target=ref, temporal_weight=1.0), dict(temporal_target=ref, temporal_mask=ref,
                                                                       temporal_weight=0.0)):
        with pytest.raises(UsageError):
            dataclasses.replace(plain, **bad)
    with pytest.raises(UsageError, match="recipe"):
        dataclasses.replace(make_spec(recipe="tutorial"), temporal_target=ref, temporal_mask=ref, temporal_weight=1.0)


# -- the job --------------------------------------------------------------------------------

def _base(pan, style, steps=8) -> RunSpec:
    from transfer.backbones.load import resolve_backbone

    return make_spec(steps=steps, styles=[array_ref(style, "style")], backbone=resolve_backbone("random"),
                     plateau=0)


class _Counting:
    """Wraps `stylize`, counting the optimiser runs and which frames they were."""

    def __init__(self, fail_at: int | None = None):
        self.frames: list[str] = []
        self.fail_at = fail_at

    def __call__(self, content, *args, **kwargs):
        from transfer.core.stylizer import stylize

        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise Interrupted("stopped")
        self.frames.append(args[2].content.source.rsplit("#", 1)[1])
        return stylize(content, *args, **kwargs)


def _run(pan, style, backbone, root, settings, counter=None, steps=8):
    from transfer.video.job import run_video

    return run_video(Clip(pan, 10.0, "pan"), [(style, 1.0)], backbone, _base(pan, style, steps), settings,
                     RunStore(root), stylize=counter)


def test_warm_start_and_temporal_term_lower_flicker(pan, backbone, tmp_path):
    from transfer.io.samples import generated_style
    from transfer.video.job import VideoSettings

    style = generated_style(48, seed=1)
    plain = _run(pan, style, backbone, tmp_path / "a", VideoSettings("content", flow="tvl1"), steps=30)
    warm = _run(pan, style, backbone, tmp_path / "c", VideoSettings("prevwarped", 10, 100.0, "tvl1"), steps=30)
    assert warm.flicker["output_mean"] * 2 < plain.flicker["output_mean"]
    assert plain.flicker["input_mean"] == warm.flicker["input_mean"]  # the same clip, the same flow


def test_resume_skips_finished_frames_and_redoes_a_damaged_one(pan, backbone, tmp_path):
    from transfer.io.samples import generated_style
    from transfer.video.job import VideoSettings

    style = generated_style(48, seed=1)
    settings = VideoSettings("prevwarped", 3, 10.0, "tvl1")
    first = _Counting(fail_at=2)
    with pytest.raises(Interrupted, match="2 finished frame"):  # Ctrl-C in frame 3 loses frame 3 only
        _run(pan, style, backbone, tmp_path, settings, first)
    second = _Counting()
    result = _run(pan, style, backbone, tmp_path, settings, second)
    assert second.frames == ["frame00002", "frame00003"] and result.ran == 2
    again = _Counting()
    _run(pan, style, backbone, tmp_path, settings, again)
    assert again.frames == []
    RunStore(tmp_path).image_path(result.specs[-1]).write_bytes(b"\x89PNG broken")
    repaired = _Counting()
    _run(pan, style, backbone, tmp_path, settings, repaired)
    assert repaired.frames == ["frame00003"]


def test_frame_by_frame_is_a_list_of_independent_specs(pan, tmp_path):
    from transfer.io.samples import generated_style
    from transfer.video.job import independent_specs

    style = generated_style(48, seed=1)
    specs = independent_specs(_base(pan, style), Clip(pan, 10.0, "pan"), 4, RunStore(tmp_path))
    assert [s.steps for s in specs] == [8, 4, 4, 4]
    assert all(s.init == "content" and s.temporal_weight is None for s in specs)
    assert len({s.digest() for s in specs}) == len(pan)


def test_a_frame_unit_loads_its_exact_frame_from_its_spec_alone(pan, tmp_path):
    """What a Ray worker or another shard sees: the file the spec names holds the decoded frame, pixel for pixel."""
    from transfer.io.images import load_ref
    from transfer.io.samples import generated_style
    from transfer.video.job import frame_units

    clip = Clip([np.round(f * 255) / 255 for f in pan], 10.0, "pan")  # 8-bit, as read_clip decodes
    units = frame_units(_base(pan, generated_style(48, seed=1)), clip, 4, RunStore(tmp_path))
    again = frame_units(_base(pan, generated_style(48, seed=1)), clip, 4, RunStore(tmp_path))
    assert [u.spec for u in again] == [u.spec for u in units]  # files found, not rewritten under new names
    assert len(list((tmp_path / "inputs").glob("*.png"))) == len(pan)
    for unit, frame in zip(units, clip.frames):
        np.testing.assert_array_equal(load_ref(unit.spec.content), frame.astype(np.float32))


# -- clips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, tolerance", [(".gif", 0.06), (".mp4", 0.08), ("", 0.0)])
def test_clip_round_trip(pan, tmp_path, suffix, tolerance):
    path = tmp_path / f"clip{suffix}"
    if suffix:
        write_clip(pan, path, 5.0)
    else:
        from transfer.io.images import save_image

        path.mkdir()
        for t, frame in enumerate(pan):
            save_image(frame, path / f"f{t:02d}.png")
    clip = read_clip(path, None)
    assert len(clip.frames) == len(pan) and clip.frames[0].shape == pan[0].shape
    error = max(float(np.abs(a - b).mean()) for a, b in zip(clip.frames, pan))
    assert error <= tolerance + 1 / 255
    if suffix == ".gif":
        assert clip.fps == pytest.approx(5.0)


def test_inset_puts_the_original_in_the_corner():
    styled, original = np.zeros((20, 40, 3), np.float32), np.full((20, 40, 3), 0.5, np.float32)
    out = with_inset(styled, original, share=0.25)  # 5 x 10 px inset, a white pixel frame around it
    assert np.allclose(out[-5:, -10:], 0.5, atol=1 / 255) and np.allclose(out[-6, -11:], 1.0) and not out[:14, :29].any()


# -- the command line -----------------------------------------------------------------------

@pytest.fixture()
def gif(pan, tmp_path):
    return write_clip(pan, tmp_path / "pan.gif", 5.0)


def _cli(argv):
    from transfer.cli.main import main

    return main(argv)


@pytest.mark.parametrize("extra, message", [
    (["--temporal-weight", "0"], "adds nothing"),
    (["--recipe", "tutorial", "--temporal-weight", "5"], "recipe"),
    (["--tile", "64", "--optimizer", "adam", "--temporal-weight", "5"], "tile"),
    (["--optimizer", "lbfgs", "--learning-rate", "0.1"], "ignored"),
])
def test_cli_refuses_meaningless_options(gif, tmp_path, capsys, extra, message):
    style = tmp_path / "style.png"
    from transfer.io.images import save_image
    from transfer.io.samples import generated_style

    save_image(generated_style(32), style)
    status = _cli(["video", str(gif), "-o", str(tmp_path / "o.gif"), "--style", str(style), "--backbone", "random",
                   *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "o.gif").exists()


@pytest.mark.parametrize("inp, out", [("missing.gif", "o.gif"), ("pan.avi", "o.gif"), ("pan.gif", "o.avi")])
def test_cli_refuses_bad_paths(gif, tmp_path, capsys, inp, out):
    (tmp_path / "pan.avi").write_bytes(b"x")
    status = _cli(["video", str(tmp_path / inp), "-o", str(tmp_path / out), "--style", str(gif)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("detstyle: error:")


def test_cli_writes_clip_frames_and_flicker_json_and_resumes(gif, tmp_path, capsys):
    from transfer.io.images import save_image
    from transfer.io.samples import generated_style

    style = save_image(generated_style(32), tmp_path / "style.png")
    argv = ["video", str(gif), "-o", str(tmp_path / "o.gif"), "--style", str(style), "--backbone", "random",
            "--size", "40", "--steps", "3", "--init", "prevwarped", "--temporal-weight", "10", "--flow", "tvl1",
            "--inset", "--quiet"]
    assert _cli(argv) == 0
    record = json.loads((tmp_path / "o_flicker.json").read_text())
    assert record["frames"] == 4 and record["frames_run"] == 4 and record["settings"]["later_steps"] == 1
    assert len(record["warping_error"]["output_per_frame"]) == 3
    assert len(read_clip(tmp_path / "o.gif", None).frames) == 4
    assert sorted(p.name for p in (tmp_path / "o_frames").glob("*.png"))[-1] == "frame_00003.png"
    assert _cli(argv) == 1  # the outputs exist: refused without --overwrite, before any work
    assert _cli([*argv, "--overwrite"]) == 0
    assert json.loads((tmp_path / "o_flicker.json").read_text())["frames_run"] == 0
    capsys.readouterr()


def test_flicker_table_renders_the_measured_ratios():
    from bench.flicker import render_table

    def run(label, seconds, cpu, error):
        return {"label": label, "total_seconds": seconds, "total_cpu_seconds": cpu,
                "warping_error": {"output_mean": error, "input_mean": 1e-6}}

    data = {"runs": {"frame_by_frame": run("(a)", 100.0, 80.0, 0.02), "warm": run("(b)", 40.0, 40.0, 0.01),
                     "warm_temporal": run("(c)", 50.0, 20.0, 0.005)},
            "settings": {"frames": 10, "size": 64, "pan": 2, "content": "c.jpg", "style": "s.jpg", "backbone": "b",
                         "steps": 10, "later_steps": 3, "temporal_weight": 5.0, "flow": "dis"},
            "bound": {"error_ratio_at_least": 2.0, "time_ratio_at_most": 0.6}, "met": True,
            "time_ratio_c_over_a": 0.5, "cpu_time_ratio_c_over_a": 0.25, "error_ratio_a_over_c": 4.0,
            "flow_methods": {"dis": {"available": True, "seconds": 0.2, "pairs": 10, "endpoint_error_px": 0.01}}}
    table = render_table(data)
    rows = [line for line in table.splitlines() if line.startswith("| (")]
    assert len(rows) == 3 and "| 10.00 |" in rows[0]  # 100 s over 10 frames
    assert "4.0x lower error, 0.50x wall, 0.25x CPU" in rows[2] and "2.0x lower error" in rows[1]
    assert "dis 20 ms/pair" in table and ": met" in table
