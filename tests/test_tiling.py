"""`--tile N` (issue 21 §3): tiled Adam, its grid, its seam metric, and the options that refuse it.

Oracles independent of the code under test: a coverage count per pixel, untiled Adam (with a tile
as large as the image the tiled run must be the same run), a hand-made step edge whose gradient
energy is worked out by hand, and the spec's documented refusals.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.robustness_cases import TINY, pair, png
from transfer.cli.main import main
from transfer.core.run import check_output_pixels
from transfer.core.spec import make_spec
from transfer.core.stylizer import stylize
from transfer.core.tiles import (borders, seam_energy, seam_ratio, step_offsets, tile_grid, tile_margin,
                                 window_side)
from transfer.errors import UsageError


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth-ish random image: tiny tests need some texture for the losses to move."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (height // 8 + 1, width // 8 + 1, 3))
    return np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:height, :width].astype(np.float32)


# ---------------------------------------------------------------- the grid


@pytest.mark.parametrize("height, width", [(64, 64), (100, 70), (200, 333), (1000, 257)])
@pytest.mark.parametrize("tile", [64, 80, 128])
def test_interiors_cover_every_pixel_exactly_once_at_every_offset(height, width, tile):
    margin = tile_margin(tile)
    for step in range(1, 9):
        offsets = step_offsets(seed=3, step=step, tile=tile)
        count = np.zeros((height, width), int)
        for t in tile_grid(height, width, tile, offsets):
            count[t.interior.top:t.interior.bottom, t.interior.left:t.interior.right] += 1
            i, w = t.interior, t.window
            assert 0 < i.bottom - i.top <= tile and 0 < i.right - i.left <= tile
            assert w.top == max(0, i.top - margin) and w.bottom == min(height, i.bottom + margin)
            assert w.left == max(0, i.left - margin) and w.right == min(width, i.right + margin)
            assert w.bottom - w.top <= window_side(tile) and w.right - w.left <= window_side(tile)
        assert (count == 1).all(), (height, width, tile, offsets)


def test_borders_move_from_step_to_step_and_repeat_for_the_same_seed_and_step():
    grids = [borders(tile_grid(300, 300, 64, step_offsets(0, step, 64))) for step in range(1, 11)]
    assert len({(tuple(r), tuple(c)) for r, c in grids}) > 5
    assert step_offsets(0, 7, 64) == step_offsets(0, 7, 64) != step_offsets(1, 7, 64)
    assert all(0 <= o < 64 for step in range(1, 50) for o in step_offsets(5, step, 64))


def test_an_axis_no_longer_than_the_tile_is_one_tile_whatever_the_offset():
    assert [(t.interior, t.window) for t in tile_grid(64, 48, 64, (17, 40))] == \
        [(t.interior, t.window) for t in tile_grid(64, 48, 64, (0, 0))]
    assert len(tile_grid(64, 48, 64, (17, 40))) == 1


def test_margin_is_an_eighth_of_the_tile_in_multiples_of_16():
    assert [tile_margin(t) for t in (64, 128, 512, 1024, 1040)] == [16, 16, 64, 128, 144]
    assert window_side(1024) == 1280


# ---------------------------------------------------------------- the seam metric


def test_seam_metric_finds_a_step_edge_at_its_column():
    """A ramp of 0.01 per pixel in both directions, plus a step of 0.5 from column 10 on.

    Every boundary's energy is 3 channels x 0.01² except column boundary 10: 3 x 0.51².
    """
    y, x = np.mgrid[0:20, 0:30]
    image = np.repeat((0.01 * (x + y) + 0.5 * (x >= 10))[..., None], 3, -1)
    on, off = seam_energy(image, rows=[], cols=[10])
    assert on == pytest.approx(3 * 0.51**2) and off == pytest.approx(3 * 0.01**2)
    assert seam_ratio(image, [], [10]) == pytest.approx(0.51**2 / 0.01**2)
    assert seam_ratio(image, [], [11]) < 1  # the step is not at column 11: that boundary is a plain one
    assert seam_ratio(image.transpose(1, 0, 2), [10], []) == pytest.approx(0.51**2 / 0.01**2)


# ---------------------------------------------------------------- tiled Adam


def test_a_tile_as_large_as_the_image_is_untiled_adam(random_backbone):
    content, style = _image(64, 64, 0), _image(64, 64, 1)
    untiled = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=6, learning_rate=0.05))
    tiled = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=6, learning_rate=0.05, tile=64))
    for a, b in zip(untiled.history, tiled.history):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-7), name
    assert np.abs(tiled.image - untiled.image).max() < 1e-4


def test_tiled_run_lowers_the_loss_and_reports_every_step(random_backbone):
    content, style = _image(96, 80, 2), _image(64, 64, 3)
    seen = []
    result = stylize(content, style, random_backbone, make_spec(optimizer="adam", steps=5, learning_rate=0.05, tile=64),
                     callback=lambda info: seen.append((info.step, info.image().shape)))
    assert seen == [(step, (96, 80, 3)) for step in range(1, 6)]
    assert result.image.shape == (96, 80, 3) and np.isfinite(result.image).all()
    assert result.history[-1]["total"] < result.history[0]["total"]


def test_tiled_adam_resumed_half_way_continues_exactly(random_backbone):
    """The grid of a step depends on the seed and the step only, so 2 + 2 steps equal 4 steps."""
    from transfer.core.optimizers import AdamState
    from transfer.core.schedules import AdamSettings
    from transfer.core.tiling import TiledObjective, run_tiled_adam

    content, style = _image(96, 96, 4), _image(64, 64, 5)
    objective = TiledObjective.build(random_backbone, make_spec(tile=64), content[None], [(style, 1.0)])
    settings = AdamSettings(0.05)
    start = AdamState.start(content[None].copy())
    whole, _ = run_tiled_adam(objective, start, 4, settings)
    half, _ = run_tiled_adam(objective, start, 2, settings)
    resumed, _ = run_tiled_adam(objective, half, 2, settings, first_step=3)
    assert resumed.t == whole.t == 4.0
    np.testing.assert_array_equal(resumed.param, whole.param)
    np.testing.assert_array_equal(resumed.v, whole.v)


# ---------------------------------------------------------------- options and limits


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "lbfgs"}, "--tile needs --optimizer adam"),
    ({"schedule": "fast"}, "--tile works with the plain schedule only"),
    ({"scales": 2}, "drop --scales 2 or --tile"),
    ({"recipe": "tutorial"}, "--recipe tutorial has its own"),
])
def test_spec_refuses_tile_with_what_cannot_be_tiled(kwargs, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        make_spec(tile=64, **kwargs)


@pytest.mark.parametrize("tile", [32, 100, 63])
def test_spec_refuses_a_tile_off_the_pooling_grid(tile):
    with pytest.raises(UsageError, match=r"--tile must be .* at least 64 and a multiple of 16"):
        make_spec(tile=tile)


def test_tile_is_part_of_the_spec():
    assert make_spec(tile=128).tile == 128 and make_spec().tile is None
    assert make_spec(tile=128).digest() != make_spec().digest()


@pytest.mark.parametrize("extra, pattern", [
    (["--tile", "100"], r"--tile must be a whole number of pixels, at least 64 and a multiple of 16 .*got 100$"),
    (["--tile", "64", "--optimizer", "lbfgs"], r"--tile needs --optimizer adam"),
    (["--tile", "64", "--limit", "output_pixels=500"], r"--tile 64: a 32x24 tile with its context margin"),
])
def test_cli_refuses_a_bad_tile_with_one_line(tmp_path, capsys, monkeypatch, extra, pattern):
    monkeypatch.chdir(tmp_path)
    status = main(["stylize", *pair(tmp_path), "-o", str(tmp_path / "out.png"), *TINY, *extra])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("detstyle")]
    assert status == 2 and "Traceback" not in err
    assert len(errors) == 1 and re.search(pattern, errors[0]), err
    assert not (tmp_path / "out.png").exists()


def test_with_tile_the_output_limit_bounds_the_window_and_image_pixels_the_output(tmp_path):
    from transfer import limits

    image = png(tmp_path / "c.png", (40, 30))
    with pytest.raises(UsageError, match="output_pixels"):
        check_output_pixels(image, 4096)
    check_output_pixels(image, 4096, tile=1024)  # a 1280² window fits 2048², the 4096x3072 output 120e6 pixels
    with limits.using(limits.Limits(image_pixels=10_000_000)), pytest.raises(UsageError, match="image_pixels"):
        check_output_pixels(image, 4096, tile=1024)
