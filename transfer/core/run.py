"""Run a `RunSpec` end to end: load what it names, check it is what was named, stylise.

This is the library call behind `detstyle stylize` (and any front end that holds only a
spec: a grid cell, a web request): every input is loaded from the spec's references and
refused if its bytes changed since the spec was made.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from transfer import limits
from transfer.core.spec import RunSpec
from transfer.errors import UsageError
from transfer.io.images import image_size, load_ref
from transfer.io.run_state import RunState


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """The pixels a spec names, at the spec's size."""

    content: np.ndarray
    styles: list[tuple[np.ndarray, float]]
    init_image: np.ndarray | None


def check_output_size(spec: RunSpec) -> None:
    """Refuse an output above `--limit output_pixels`, from the content's header, before any decoding."""
    if spec.content is not None and spec.size is not None:
        check_output_pixels(spec.content.source, spec.size, spec.tile)


def check_output_pixels(content_path: str | os.PathLike, size: int, tile: int | None = None) -> None:
    """`content_path` resized to `size` on its longest side fits the limits (header only).

    Untiled, the output is what the network sees at once, so it must fit `--limit output_pixels`.
    With `--tile`, the network sees one window (the tile and its context margin) at a time: the
    window must fit `output_pixels`, and the whole output, held as a few full-size arrays, `image_pixels`.
    """
    width, height = image_size(content_path)
    scale = size / max(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    if tile is not None:
        _check_tiled(size, tile, out_w, out_h)
    elif out_w * out_h > limits.current().output_pixels:
        raise UsageError(f"--size {size}: " + limits.refusal(f"a {out_w}x{out_h} output", out_w * out_h,
                                                             "output_pixels"))


def _check_tiled(size: int, tile: int, out_w: int, out_h: int) -> None:
    from transfer.core.tiles import window_side

    side = window_side(tile)
    win_w, win_h = min(out_w, side), min(out_h, side)
    if win_w * win_h > limits.current().output_pixels:
        raise UsageError(f"--tile {tile}: " + limits.refusal(f"a {win_w}x{win_h} tile with its context margin",
                                                             win_w * win_h, "output_pixels"))
    if out_w * out_h > limits.current().image_pixels:
        raise UsageError(f"--size {size}: " + limits.refusal(f"a {out_w}x{out_h} tiled output", out_w * out_h,
                                                             "image_pixels"))


def load_inputs(spec: RunSpec) -> RunInputs:
    """The spec's images at its size, once the output size is known to be within the limits."""
    if spec.content is None or not spec.styles:
        raise UsageError("the run spec names no content or no style image")
    check_output_size(spec)
    content = load_ref(spec.content, spec.size)
    styles = [(load_ref(ref, spec.size), ref.weight) for ref in spec.styles]
    # an init is resized to the output anyway: decoding it at that size keeps a huge photo cheap
    init_image = load_ref(spec.init_image, spec.size) if spec.init_image is not None else None
    return RunInputs(content, styles, init_image)


def run(spec: RunSpec, callback=None, *, state_path: str | os.PathLike | None = None,
        resume: RunState | None = None, backbone=None):
    """Stylise what `spec` names; `backbone` may be passed when already loaded for this spec."""
    from transfer.backbones.load import load_backbone
    from transfer.core.stylizer import stylize

    if resume is not None:
        resume.check_matches(spec)  # before anything heavy is loaded
    inputs = load_inputs(spec)
    backbone = backbone or load_backbone(spec.backbone, seed=spec.seed)
    return stylize(inputs.content, inputs.styles, backbone, spec, callback, init_image=inputs.init_image,
                   state_path=state_path, resume=resume)
