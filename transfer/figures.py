"""Labelled matplotlib figures (written atomically, like every output)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transfer.images import atomic_write


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], path: str | Path, title: str = "",
                 panel_height: float = 3.2) -> Path:
    """One row of images with a caption under each, saved as PNG/PDF by extension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [img.shape[1] / img.shape[0] for _, img in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_height * sum(widths) + 0.4, panel_height + 0.8),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (caption, img) in zip(axes[0], panels):
        ax.imshow(np.clip(img, 0, 1))
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    suffix = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=suffix))
    finally:
        plt.close(fig)
