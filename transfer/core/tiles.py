"""Tile geometry for optimising a large output in pieces (`--tile N`, issue 21 §3), and the seam metric.

Pure Python and NumPy (no TensorFlow), so the spec's validation and the `--limit` checks can use
it before anything heavy is imported.  The optimiser itself is `transfer.core.tiling`.

The grid: each step, the output is cut into interiors of at most `tile` px a side, shifted by a
random offset drawn from the run's seed and the step number, so a tile border never stays in one
place (a fixed border would leave a seam) and a resumed run draws the same grids.  The interiors
partition the image: every pixel takes exactly one Adam update per step.  Each interior is seen by
the network inside a window that adds up to `tile_margin(tile)` px of real neighbouring pixels on
every side (clipped at the image's edges), so the convolutions near an interior's edge see the
image, not zero padding.  Peak memory follows the largest window, `window_side(tile)` squared.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: The smallest tile: VGG16 pools four times, and a tile's Gram matrices need some texture to average.
MIN_TILE = 64
#: Tiles are a multiple of the backbone's total stride, so tile borders fall on its pooling grid.
TILE_MULTIPLE = 16


def tile_margin(tile: int) -> int:
    """Context pixels on each side of an interior: an eighth of the tile, rounded up to a multiple of 16.

    Why an eighth: the margin costs at most (1 + 2 / 8)² = 1.56x the pixels of a bare tile, and a
    margin wider than the shallow layers' receptive fields is what keeps a border from being seen
    as an image edge (zero padding) by the taps that shape fine texture.
    """
    return max(TILE_MULTIPLE, -(-(tile // 8) // TILE_MULTIPLE) * TILE_MULTIPLE)


def window_side(tile: int) -> int:
    """The largest window the network sees: the tile and its margin on both sides."""
    return tile + 2 * tile_margin(tile)


@dataclasses.dataclass(frozen=True)
class Box:
    """Rows `[top, bottom)` and columns `[left, right)` of an image."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def slices(self) -> tuple[slice, slice, slice]:
        """Index of a `(B, H, W, C)` array: every image of the batch, this box's pixels."""
        return slice(None), slice(self.top, self.bottom), slice(self.left, self.right)

    def within(self, outer: Box) -> Box:
        """This box in the coordinates of `outer` (which contains it)."""
        return Box(self.top - outer.top, self.bottom - outer.top, self.left - outer.left, self.right - outer.left)


@dataclasses.dataclass(frozen=True)
class Tile:
    """What one tile updates (`interior`) and what the network sees to compute it (`window`)."""

    interior: Box
    window: Box


def step_offsets(seed: int, step: int, tile: int) -> tuple[int, int]:
    """The grid's (row, column) shift for `step`, each in `[0, tile)`.

    Drawn from a generator seeded by `(seed, step)`, not one stream: the shift of step k does not
    depend on how many steps ran before, so a resumed run cuts exactly the tiles it would have.
    """
    row, col = np.random.default_rng([seed, step]).integers(0, tile, size=2)
    return int(row), int(col)


def axis_spans(length: int, tile: int, offset: int) -> list[tuple[int, int]]:
    """`[start, end)` spans of at most `tile` that cover `0..length` once, cut at `offset + k * tile`.

    An axis no longer than the tile is one span whatever the offset: there is no border to move.
    """
    if length <= tile:
        return [(0, length)]
    cuts = [0, *range(offset or tile, length, tile), length]
    return [(a, b) for a, b in zip(cuts, cuts[1:])]


def tile_grid(height: int, width: int, tile: int, offsets: tuple[int, int] = (0, 0)) -> list[Tile]:
    """The tiles of one step, row by row: interiors partition the image, windows add the margin."""
    margin = tile_margin(tile)
    tiles = []
    for top, bottom in axis_spans(height, tile, offsets[0]):
        for left, right in axis_spans(width, tile, offsets[1]):
            window = Box(max(0, top - margin), min(height, bottom + margin),
                         max(0, left - margin), min(width, right + margin))
            tiles.append(Tile(Box(top, bottom, left, right), window))
    return tiles


def borders(tiles: list[Tile]) -> tuple[list[int], list[int]]:
    """Rows and columns where a tile border lies inside the image (a pixel index `k`: between `k - 1` and `k`)."""
    rows = sorted({t.interior.top for t in tiles} - {0})
    cols = sorted({t.interior.left for t in tiles} - {0})
    return rows, cols


def seam_energy(image: np.ndarray, rows: list[int], cols: list[int]) -> tuple[float, float]:
    """Mean squared neighbour difference across the given borders, and across every other boundary.

    `image` is `(H, W, 3)`.  The gradient energy of a boundary is the squared difference of the two
    pixels it separates, summed over the channels (the part of |∇I|² that a seam shows up in).
    Borders are column boundaries `cols` (between column k - 1 and k) and row boundaries `rows`;
    "elsewhere" is every other column and row boundary of the image.  A visible seam makes the
    first number larger than the second; an image without seams has a ratio near 1.
    """
    image = np.asarray(image, np.float64)
    dx = np.square(np.diff(image, axis=1)).sum(-1)  # (H, W-1): column boundary k sits at index k - 1
    dy = np.square(np.diff(image, axis=0)).sum(-1)  # (H-1, W)
    col_mask = np.zeros(dx.shape[1], bool)
    col_mask[np.asarray(cols, int) - 1] = True
    row_mask = np.zeros(dy.shape[0], bool)
    row_mask[np.asarray(rows, int) - 1] = True
    on = np.concatenate([dx[:, col_mask].ravel(), dy[row_mask].ravel()])
    off = np.concatenate([dx[:, ~col_mask].ravel(), dy[~row_mask].ravel()])
    return float(on.mean()), float(off.mean())


def seam_ratio(image: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Gradient energy on the borders over gradient energy elsewhere (see `seam_energy`)."""
    on, off = seam_energy(image, rows, cols)
    return on / off
