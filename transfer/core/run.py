"""Run a `RunSpec` end to end: load what it names, check it is what was named, stylise.

This is the library call behind `detstyle stylize` (and any front end that holds only a
spec: a grid cell, a web request): every input is loaded from the spec's references and
refused if its bytes changed since the spec was made.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from transfer.core.spec import RunSpec
from transfer.errors import UsageError
from transfer.io.images import load_ref
from transfer.io.run_state import RunState


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """The pixels a spec names, at the spec's size."""

    content: np.ndarray
    styles: list[tuple[np.ndarray, float]]
    init_image: np.ndarray | None


def load_inputs(spec: RunSpec) -> RunInputs:
    if spec.content is None or not spec.styles:
        raise UsageError("the run spec names no content or no style image")
    content = load_ref(spec.content, spec.size)
    styles = [(load_ref(ref, spec.size), ref.weight) for ref in spec.styles]
    init_image = load_ref(spec.init_image) if spec.init_image is not None else None
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
