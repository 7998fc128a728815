"""Labelled matplotlib figures (written atomically, like every output)."""

from __future__ import annotations

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
