"""Boxes, class names and scores drawn on an image with Pillow (no matplotlib state involved)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from transfer.io.images import to_uint8

#: One colour per class id (cycled): saturated, and far apart so neighbouring boxes differ.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    """The colour of class `class_id` (1-based; class 1 gets the first colour)."""
    return PALETTE[(class_id - 1) % len(PALETTE)]


def line_width(width: int, height: int) -> int:
    """Box outline width in pixels: visible on a thumbnail and on a 4K photo alike."""
    return max(2, round(min(width, height) / 150))


def draw_detections(image: np.ndarray | Image.Image, detections: Sequence) -> Image.Image:
    """A copy of `image` with each detection's box and "name 0.87" label in its class colour.

    Args:
      image: RGB float [0, 1] array or a PIL image.
      detections: objects with `label`, `class_id`, `score` and `box` (pixels: xmin, ymin,
        xmax, ymax), e.g. `detection.detect.Detection`.

    The label sits on a filled band above the box, or just inside it when the box touches
    the top edge; worst detections are drawn first so the best ones stay on top.
    """
    canvas = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    draw = ImageDraw.Draw(canvas)
    width = line_width(*canvas.size)
    font = ImageFont.load_default(size=max(10, 4 * width + 4))
    for det in sorted(detections, key=lambda d: d.score):
        colour = class_colour(det.class_id)
        x0, y0, x1, y1 = det.box
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        text = f"{det.label} {det.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        band = bottom - top + 2 * width
        y = y0 - band if y0 - band >= 0 else y0
        draw.rectangle((x0, y, x0 + right - left + 2 * width, y + band), fill=colour)
        draw.text((x0 + width - left, y + width - top), text, fill=(0, 0, 0) if sum(colour) > 380 else (255, 255, 255),
                  font=font)
    return canvas
