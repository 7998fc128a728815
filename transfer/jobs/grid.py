"""Style grids: every content with every style, one cached run per cell.

Why a job of its own: a grid is N x M independent runs that differ only in their two
images.  Each cell is a `RunSpec` (content bytes, style bytes, backbone id, options), so its
result is content-addressed in a `RunStore`: a rerun skips finished cells, Ctrl-C loses at
most the running cell, and a failure in a later cell keeps every earlier one.  The cells
share one loaded backbone and one `TargetCache`, so each style's statistics and each
content's features are computed once for the whole grid, not once per cell.  Batching
cells is deliberately not done: on a 2-core CPU one image already keeps the cores busy
(README, grid batching floor).

Importable without TensorFlow (the CLI builds its parser from it); TF comes in with the run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from transfer.core.features import LAYER_PRESETS
from transfer.core.spec import ImageRef, RunSpec, make_spec
from transfer.core.targets import TargetCache
from transfer.errors import DetstyleError, UsageError
from transfer.jobs.engine import EngineChoice, EngineReport, UnitObserver, run_units
from transfer.jobs.store import RunStore

if TYPE_CHECKING:  # importing the backbone module would import TensorFlow
    from transfer.backbones.load import Backbone

__all__ = ["GridCell", "GridObserver", "GridPlan", "GridResult", "IMAGE_SUFFIXES", "collect", "describe_settings",
           "image_paths", "label", "plan_grid", "run_cell", "run_cells", "run_grid"]

#: What counts as an image file when a directory is given (sorted by name, other files ignored).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def image_paths(items: Sequence[str | os.PathLike], what: str) -> list[Path]:
    """The files given, with each directory replaced by its image files (sorted by name).

    A directory without any image file is a `UsageError` naming it; a missing file is left
    for `image_ref` to report (with its own message) when the grid is planned.
    """
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UsageError(f"{path}: no {what} images in this directory (looked for {', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise UsageError(f"no {what} images given")
    return paths


def label(ref: ImageRef) -> str:
    """A cell's name for an image: its file name without the extension."""
    return Path(ref.source).stem


@dataclasses.dataclass(frozen=True)
class GridCell:
    """Row `row` (a content) x column `col` (a style), and the run that fills it."""

    row: int
    col: int
    spec: RunSpec

    @property
    def name(self) -> str:
        """`<content-stem>__<style-stem>`: the cell's file name without extension."""
        return f"{label(self.spec.content)}__{label(self.spec.styles[0])}"


@dataclasses.dataclass(frozen=True)
class GridPlan:
    """What a grid will run: its inputs and one cell per (content, style), row-major."""

    contents: tuple[ImageRef, ...]
    styles: tuple[ImageRef, ...]
    cells: tuple[GridCell, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.contents), len(self.styles)

    def finished(self, store: RunStore) -> list[GridCell]:
        """The cells whose result `store` already holds."""
        return [cell for cell in self.cells if store.record(cell.spec) is not None]


def _unique_labels(refs: Sequence[ImageRef], what: str) -> None:
    """Cells are named by file stem, so two images with one stem would overwrite each other's cells."""
    seen: dict[str, str] = {}
    for ref in refs:
        name = label(ref)
        if name in seen:
            raise UsageError(f"two {what} images are named {name!r} ({seen[name]}, {ref.source}); "
                             "cells are named after the files, so give each image once under its own name")
        seen[name] = ref.source


def plan_grid(contents: Sequence[str | os.PathLike], styles: Sequence[str | os.PathLike],
              make: Callable[..., RunSpec] = make_spec) -> GridPlan:
    """One `RunSpec` per (content, style): `make(content=image_ref(c), styles=[image_ref(s)])`.

    `make` carries every other option and the backbone, e.g.
    `functools.partial(make_spec, steps=100, backbone=resolve_backbone("vgg16-mri"))`; each
    image is hashed once.  Missing files raise `ImageError`, repeated names `UsageError`.
    """
    from transfer.io.images import image_ref

    content_refs = tuple(image_ref(path) for path in contents)
    style_refs = tuple(image_ref(path) for path in styles)
    _unique_labels(content_refs, "content")
    _unique_labels(style_refs, "style")
    cells = tuple(GridCell(row, col, make(content=c, styles=[s]))
                  for row, c in enumerate(content_refs) for col, s in enumerate(style_refs))
    return GridPlan(content_refs, style_refs, cells)


class GridObserver(UnitObserver):
    """Hooks a front end implements to show progress; the defaults do nothing.

    `start` is told before each cell run in this process (and whether the store already has
    it) and may return stylize's per-step callback; `finish` after it, with its record and
    whether it ran now (Ray runs call only `finish`, as each cell lands).
    """


@dataclasses.dataclass(frozen=True)
class GridResult:
    """Every cell's image (as stored) and record, `[row][col]`; `ran` cells were optimised by this call."""

    plan: GridPlan
    images: list[list[np.ndarray]]
    records: list[list[dict]]
    ran: int
    seconds: float


def run_cell(cell: GridCell, store: RunStore, backbone, targets, callback) -> dict:
    """Optimise one cell and store its image and record (the record marks it finished).

    The grid's `Work` (`transfer.jobs.engine`): module-level, so Ray workers import it by name.
    """
    from transfer.core import stylizer
    from transfer.core.run import load_inputs

    inputs = load_inputs(cell.spec)
    result = stylizer.stylize(inputs.content, inputs.styles, backbone, cell.spec, callback,
                              init_image=inputs.init_image, targets=targets)
    record = {"content": cell.spec.content.source, "style": cell.spec.styles[0].source, "row": cell.row,
              "col": cell.col, "seconds": round(result.seconds, 3), "steps": len(result.history),
              "final_losses": {k: float(v) for k, v in result.history[-1].items()}}
    store.save(cell.spec, result.image, record)
    return store.record(cell.spec)


def _interrupted(plan: GridPlan, store: RunStore) -> Exception:
    from transfer.io.run_state import Interrupted

    done, total = len(plan.finished(store)), len(plan.cells)
    return Interrupted(f"grid interrupted with {done} of {total} cells done (kept in {store.root}); "
                       f"run the same command again to finish the other {total - done}")


def run_cells(plan: GridPlan, store: RunStore, *, choice: EngineChoice | None = None,
              observer: GridObserver | None = None, targets: TargetCache | None = None,
              backbone: Backbone | None = None) -> EngineReport:
    """Run the cells the store lacks that `choice` gives this process (all, or one `--shard`'s), on its engine.

    Local: in row-major order, sharing `targets` (a fresh `TargetCache` by default) and
    `backbone` (loaded on first use unless given); SIGINT/SIGTERM stop the running cell (it
    is lost, the finished ones are kept) and raise `Interrupted` saying how many cells are
    done.  Ray: see `transfer.jobs.ray_engine.run_ray`.  Any other error in a cell
    propagates; finished cells stay.
    """
    return run_units(plan.cells, store, run_cell, choice=choice, observer=observer, targets=targets,
                     backbone=backbone, interrupted=lambda: _interrupted(plan, store), noun="cells")


def run_grid(plan: GridPlan, store: RunStore, *, observer: GridObserver | None = None,
             targets: TargetCache | None = None, backbone: Backbone | None = None,
             choice: EngineChoice | None = None) -> GridResult:
    """Run every cell the store lacks (see `run_cells`) and return all cells.

    With a `choice.shard`, the other shards' cells must already be finished (else `DetstyleError`).
    """
    started = time.perf_counter()
    report = run_cells(plan, store, choice=choice, observer=observer, targets=targets, backbone=backbone)
    return collect(plan, store, report.ran, time.perf_counter() - started)


def collect(plan: GridPlan, store: RunStore, ran: int = 0, seconds: float = 0.0) -> GridResult:
    """Every cell's stored image and record; a `DetstyleError` if any cell is not finished."""
    n, m = plan.shape
    records = [[store.record(plan.cells[r * m + c].spec) for c in range(m)] for r in range(n)]
    missing = sum(rec is None for row in records for rec in row)
    if missing:
        raise DetstyleError(f"{store.root}: {missing} of {n * m} cells are not in the cache (another shard's, "
                            "or removed while the grid ran); run the grid again to finish them")
    images = [[store.load(plan.cells[r * m + c].spec) for c in range(m)] for r in range(n)]
    return GridResult(plan, images, records, ran, seconds)


def describe_settings(spec: RunSpec) -> str:
    """The settings a grid's cells share, in words (the figure's title)."""
    backbone = spec.backbone
    name = Path(backbone.name).name if backbone is not None else "?"
    parts = [f"backbone {name} ({backbone.precision})" if backbone else "backbone ?"]
    parts.append(f"{spec.size} px" if spec.size else "input size")
    parts.append(_optimiser_words(spec))
    parts.append(f"recipe {spec.recipe}" if spec.recipe else _loss_words(spec))
    extras = [f"style transform {spec.style_transform}" if getattr(spec, "style_transform", None) else "",
              f"style scale {spec.style_scale:g}" if spec.style_scale not in (None, 1.0) else "",
              f"colours: {spec.preserve_colors}" if spec.preserve_colors else "",
              f"init {spec.init}" if spec.init != "content" else "", f"seed {spec.seed}"]
    return ", ".join(parts + [e for e in extras if e])


def _optimiser_words(spec: RunSpec) -> str:
    if spec.schedule != "plain":
        return f"schedule {spec.schedule}, {spec.steps} iterations"
    unit = "Adam steps" if spec.optimizer == "adam" else "L-BFGS iterations"
    scales = f" x {spec.scales} scales" if spec.scales and spec.scales > 1 else ""
    rate = f" (lr {spec.learning_rate:g})" if spec.learning_rate is not None else ""
    return f"{spec.steps} {unit}{rate}{scales}"


def _loss_words(spec: RunSpec) -> str:
    preset = next((name for name, p in LAYER_PRESETS.items() if spec.layers == p), "custom")
    return (f"layers {preset}, weights style {spec.style_weight:g} / content {spec.content_weight:g} / "
            f"tv {spec.tv_weight:g}")
