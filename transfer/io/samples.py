"""Embedded defaults: a content photo that ships with matplotlib and a generated style.

The demo must run on a machine with no image files of its own, so the content is
matplotlib's bundled `grace_hopper.jpg` and the style is painted here from a seed:
bold, curved, multi-coloured brush strokes over a dark ground (a "starry" swirl palette).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTE = [(20, 40, 110), (40, 90, 170), (90, 150, 210), (240, 200, 60), (250, 230, 140), (20, 70, 60), (200, 90, 30)]


def grace_hopper_path() -> Path:
    """Path of the photo bundled with matplotlib (no download)."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def generated_style(size: int = 512, seed: int = 0, strokes: int = 900) -> np.ndarray:
    """A painterly texture: swirling strokes following a smooth vector field, float [0,1]."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (size, size), PALETTE[0])
    draw = ImageDraw.Draw(canvas)
    centres = rng.uniform(0, size, (5, 2))
    for _ in range(strokes):
        x, y = rng.uniform(0, size, 2)
        colour = PALETTE[rng.integers(len(PALETTE))]
        jitter = rng.integers(-25, 26, 3)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
        width = int(rng.integers(max(2, size // 120), max(3, size // 45)))
        points = [(x, y)]
        for _ in range(int(rng.integers(6, 14))):
            # swirl around the nearest centre: the stroke direction is tangential
            cx, cy = centres[np.argmin(((centres - (x, y)) ** 2).sum(1))]
            angle = math.atan2(y - cy, x - cx) + math.pi / 2 + rng.normal(0, 0.2)
            x, y = x + math.cos(angle) * size / 60, y + math.sin(angle) * size / 60
            points.append((x, y))
        draw.line(points, fill=colour, width=width, joint="curve")
    canvas = canvas.filter(ImageFilter.SMOOTH)
    return np.asarray(canvas, np.float32) / 255.0
