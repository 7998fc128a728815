"""Labelled matplotlib figures (written atomically, like every output)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transfer.io.images import atomic_write


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], path: str | Path, title: str = "",
                 panel_height: float = 3.2) -> Path:
    """One row of images with a caption under each, saved as PNG/PDF by extension.

    Uses a bare `Figure` (the object-oriented API, no pyplot): nothing global changes, so
    no backend switch and no figure registry, and it is safe in a server's threads.
    """
    from matplotlib.figure import Figure

    widths = [img.shape[1] / img.shape[0] for _, img in panels]
    fig = Figure(figsize=(panel_height * sum(widths) + 0.4, panel_height + 0.8))
    axes = fig.subplots(1, len(panels), gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (caption, img) in zip(axes[0], panels):
        ax.imshow(np.clip(img, 0, 1))
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    suffix = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=suffix))


def progress_gif(frames: Sequence[str | Path], path: str | Path, seconds_per_frame: float = 0.15) -> Path:
    """Assemble snapshot PNGs (any sizes: coarse scales are upsampled) into a looping GIF."""
    from PIL import Image

    from transfer.errors import DetstyleError

    if not frames:
        raise DetstyleError(f"{path}: no snapshots to assemble (use --save-every N)")
    images = [Image.open(f).convert("RGB") for f in frames]
    size = images[-1].size
    images = [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in images]
    durations = [int(seconds_per_frame * 1000)] * (len(images) - 1) + [1500]  # linger on the result
    return atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                         append_images=images[1:], duration=durations, loop=0))


def image_table(row_labels: Sequence[str], column_labels: Sequence[str], images: Sequence[Sequence[np.ndarray]],
                paths: Sequence[str | Path], title: str = "", caption: str = "", cell_inches: float = 2.0) -> list[Path]:
    """A labelled table of images (rows x columns), written to every path (PNG, PDF, ... by extension).

    The object-oriented matplotlib API only (`Figure`), so nothing process-wide changes.
    """
    from matplotlib.figure import Figure

    n_rows, n_cols = len(images), len(column_labels)
    fig = Figure(figsize=(cell_inches * n_cols + 1.2, cell_inches * n_rows + 1.0 + 0.3 * bool(caption)))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(images):
        for c, img in enumerate(row):
            ax = axes[r][c]
            ax.imshow(np.clip(img, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    return [atomic_write(path, functools.partial(_save_figure, fig, Path(path).suffix.lstrip(".") or "png"))
            for path in paths]


def _save_figure(fig, fmt: str, tmp: str) -> None:
    fig.savefig(tmp, dpi=110, format=fmt)


def grid_figure(contents: Sequence[tuple[str, np.ndarray]], styles: Sequence[tuple[str, np.ndarray]],
                cells: Sequence[Sequence[np.ndarray]], title: str = "", cell_inches: float = 2.0):
    """A style grid: styles along the top row, contents down the left column, `cells[row][col]` inside.

    (N+1) x (M+1) panels of equal width; each row is as tall as its tallest image needs, and
    every image keeps its aspect ratio.  The originals are labelled with their names, the corner
    is empty, the title is wrapped to the figure's width.  Returns the `matplotlib.figure.Figure`
    (object API only: no pyplot, no backend switch, nothing global); `save_figure` writes it.
    """
    import textwrap

    from matplotlib.figure import Figure

    n, m = len(contents), len(styles)
    heights = [max(_aspect(img) for _, img in styles)] + [_aspect(img) for _, img in contents]
    width = cell_inches * (m + 1)
    title = textwrap.fill(title, width=max(30, int(width * 13))) if title else ""
    title_inches = 0.2 * (title.count("\n") + 1) + 0.15 if title else 0.0
    fig = Figure(figsize=(width, cell_inches * sum(heights) + 0.3 + title_inches), layout="constrained")
    axes = fig.subplots(n + 1, m + 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    axes[0][0].axis("off")
    for col, (name, image) in enumerate(styles, start=1):
        _panel(axes[0][col], image, title=name)
        axes[0][col].set_anchor("S")  # a shorter style sits just above its column
    for row, (name, image) in enumerate(contents, start=1):
        _panel(axes[row][0], image, ylabel=name)
        for col in range(1, m + 1):
            _panel(axes[row][col], cells[row - 1][col - 1])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _aspect(image: np.ndarray) -> float:
    return image.shape[0] / image.shape[1]


def _panel(ax, image: np.ndarray, title: str = "", ylabel: str = "") -> None:
    """One image without ticks or frame; a label on top (styles) or at the left (contents)."""
    ax.imshow(np.clip(image, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)


def save_figure(fig, path: str | Path, dpi: int = 100, jpeg_quality: int = 85) -> Path:
    """Write a `Figure` atomically; the format follows the extension (JPEG at `jpeg_quality`)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    options = {"pil_kwargs": {"quality": jpeg_quality, "optimize": True}} if fmt in ("jpg", "jpeg") else {}
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt, **options))
