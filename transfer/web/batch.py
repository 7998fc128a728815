"""Grids and comparisons started from the page: the CLI's plan, the CLI's files, the same library call.

Why through the commands' own code: a grid or comparison started here must be the one
`detstyle grid` / `detstyle compare` would run with the same options, so the form becomes
the Namespace those commands parse (`transfer.web.form.parse_form`, plus the image lists)
and goes through their `build_plan`; the cells run through `run_cells` / `run_comparison`
on the local engine; the figure and tables are written by the commands' own writers.  The
files land where the equivalent command line (`BatchJob.argv`) puts them inside the output
folder - `grids/grid-<id>.png` with its `_cells/` folder and `detstyle-cache/`, or
`comparisons/compare-<id>/` - so the gallery finds them, and starting the same grid again
(or resuming a stopped one) reuses every finished cell.

Stopping: the page's Stop ends the job at the next optimisation step; the running cell is
dropped (never stored half-done, like Ctrl-C in the CLI) and every finished cell stays cached.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from transfer.core.spec import RunSpec
from transfer.errors import DetstyleError, UsageError
from transfer.jobs.grid import GridObserver
from transfer.web import form

#: The batch kinds the page starts, and the folder of the output folder each one writes into.
GRID, COMPARE = "grid", "compare"
FOLDERS = {GRID: "grids", COMPARE: "comparisons"}
#: Form fields that carry several values (multi-selects); every other field has one value.
LIST_FIELDS = ("contents", "styles", "backbones", "layers")
#: A comparison on the page compares backbones: fewer than this many is refused.
MIN_BACKBONES = 2


class BatchStopped(Exception):
    """The page asked a batch job to stop (or the server is closing); finished cells are kept."""


class Progress(Protocol):
    """What a batch run tells the job queue (`transfer.web.jobs`), from the worker thread."""

    def step_callback(self, index: int) -> Callable:
        """Stylize's per-step callback for unit `index`; it raises `BatchStopped` when asked to stop."""

    def unit_done(self, index: int, name: str, image: Path, cached: bool) -> None:
        """Unit `index` is finished (`cached`: it was in the store already); `image` is its PNG."""

    def check(self) -> None:
        """Raise `BatchStopped` if the page asked to stop."""


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """A planned grid or comparison: the CLI's plan, where it writes, and the command line that matches it."""

    kind: str
    plan: object  # transfer.jobs.grid.GridPlan or transfer.jobs.compare.Plan
    output: Path  # grid: the figure; compare: the folder
    args: argparse.Namespace = dataclasses.field(compare=False)  # compare's writer reads argv from it

    @property
    def argv(self) -> list[str]:
        return list(self.args.argv)

    @property
    def units(self) -> list[tuple[str, RunSpec]]:
        """(name, spec) of every cell / run, in the plan's order."""
        if self.kind == GRID:
            return [(cell.name, cell.spec) for cell in self.plan.cells]
        from transfer.jobs.compare import result_name

        return [(result_name(run).removesuffix(".png"), run.spec) for run in self.plan.runs]

    @property
    def spec(self) -> RunSpec:
        """The first unit's spec (the settings every unit shares, but for its images and backbone)."""
        return self.units[0][1]

    @property
    def figure(self) -> Path:
        return self.output if self.kind == GRID else self.output / "comparison.png"

    def files(self) -> dict[str, Path]:
        """What the finished job offers for download, by label."""
        if self.kind == GRID:
            return {"figure": self.output}
        return {"figure": self.figure, "pdf": self.output / "comparison.pdf",
                "metrics": self.output / "metrics.json", "csv": self.output / "metrics.csv"}


# --------------------------------------------------------------- the form -> the CLI's plan
def plan_batch(kind: str, fields: Mapping[str, str], lists: Mapping[str, Sequence[str]], image_path: Callable,
               offered: tuple[str, ...], out_dir: Path) -> BatchJob:
    """The grid or comparison a form asks for; a refusal is the CLI's one-line error.

    `fields` are the single-valued fields (`detstyle stylize`'s options, as for a run),
    `lists` the multi-selects (`LIST_FIELDS`), `image_path` maps an upload id to its file.
    """
    if kind not in FOLDERS:
        raise UsageError(f"unknown batch kind {kind!r} (choose from {', '.join(FOLDERS)})")
    contents = _images(lists, "contents", image_path)
    styles = _images(lists, "styles", image_path)
    return (_plan_grid if kind == GRID else _plan_compare)(fields, lists, contents, styles, offered, out_dir)


def _images(lists: Mapping[str, Sequence[str]], name: str, image_path: Callable) -> list[str]:
    ids = list(dict.fromkeys(i for i in lists.get(name, ()) if i))
    if not ids:
        raise UsageError(f"--{name}: pick at least one image")
    return [str(image_path(i)) for i in ids]


def _option_argv(fields: Mapping[str, str], skip: tuple[str, ...] = ()) -> list[str]:
    """The run options of the form as command-line flags (for the recorded, equivalent command)."""
    names = ("backbone", *form.NUMBER_FIELDS, *form.CHOICE_FIELDS)
    argv = []
    for name in names:
        value = (fields.get(name) or "").strip()
        if value and name not in skip:
            argv += [f"--{name.replace('_', '-')}", value]
    return argv


def _plan_id(kind: str, specs: Sequence[RunSpec]) -> str:
    """`grid-<12 hex>`: the same plan gets the same name, so starting it again reuses its cells."""
    digest = hashlib.sha256("".join(spec.digest() for spec in specs).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


def _checked(specs: Sequence[RunSpec]) -> None:
    from transfer.core.run import check_output_size

    for spec in specs:
        check_output_size(spec)


def _plan_grid(fields, lists, contents, styles, offered, out_dir: Path) -> BatchJob:
    from transfer.cli import grid as cli

    fields = {**fields, "size": (fields.get("size") or "").strip() or str(cli.DEFAULT_SIZE)}
    args = form.parse_form(fields, offered)
    args.contents, args.styles = contents, styles
    plan = cli.build_plan(args)
    _checked([cell.spec for cell in plan.cells])
    output = out_dir / FOLDERS[GRID] / f"{_plan_id(GRID, [c.spec for c in plan.cells])}.png"
    args.argv = ["grid", "--contents", *contents, "--styles", *styles, "-o", str(output), *_option_argv(fields)]
    return BatchJob(GRID, plan, output, args)


def _plan_compare(fields, lists, contents, styles, offered, out_dir: Path) -> BatchJob:
    from transfer.cli import compare as cli

    backbones = list(dict.fromkeys(b for b in lists.get("backbones", ()) if b))
    if len(backbones) < MIN_BACKBONES:
        raise UsageError(f"--backbones: a comparison needs at least {MIN_BACKBONES} backbones, got "
                         f"{len(backbones)}{': ' + backbones[0] if backbones else ''}")
    missing = [b for b in backbones if b not in offered]
    if missing:
        raise UsageError(f"--backbones {', '.join(missing)}: not available here (available: {', '.join(offered)})")
    presets = list(dict.fromkeys(p for p in lists.get("layers", ()) if p)) or [cli.DEFAULT_PRESETS]
    fields = {**fields, "backbone": backbones[0], "layers": "",
              "size": (fields.get("size") or "").strip() or str(cli.DEFAULT_SIZE)}
    args = form.parse_form(fields, offered)
    args.contents, args.styles = contents, styles
    args.backbones, args.layers = ",".join(backbones), ",".join(presets)
    args.cross_matrix, args.figure_format = False, cli.FIGURE_FORMATS[0]
    plan = cli.build_plan(args)
    if plan.skipped:  # an offered backbone vanished: refuse rather than compare fewer than asked for
        raise DetstyleError("; ".join(plan.skipped))
    _checked([run.spec for run in plan.runs])
    output = out_dir / FOLDERS[COMPARE] / _plan_id(COMPARE, [run.spec for run in plan.runs])
    args.argv = ["compare", *contents, "--styles", *styles, "--backbones", args.backbones, "--layers", args.layers,
                 "-o", str(output), *_option_argv(fields, skip=("backbone", "layers"))]
    return BatchJob(COMPARE, plan, output, args)


# --------------------------------------------------------------- running (the worker thread)
def run_batch(batch: BatchJob, progress: Progress, backbone=None) -> int:
    """Run the batch's missing units and write its figure (and tables); the number of units run now.

    `backbone`: a loaded backbone a grid's cells share (a comparison loads each of its own).
    """
    return (_run_grid if batch.kind == GRID else _run_compare)(batch, progress, backbone)


class _GridWatcher(GridObserver):
    """Per-step callbacks into the job, the cell files the CLI writes, and one event per finished cell."""

    def __init__(self, cells, progress: Progress, write_cell: Callable):
        self.index = {id(cell): i for i, cell in enumerate(cells)}
        self.progress, self.write_cell = progress, write_cell

    def start(self, cell, cached: bool):
        self.progress.check()
        return None if cached else self.progress.step_callback(self.index[id(cell)])

    def finish(self, cell, record: dict, ran: bool) -> None:
        self.progress.unit_done(self.index[id(cell)], cell.name, self.write_cell(cell), not ran)


def _run_grid(batch: BatchJob, progress: Progress, backbone) -> int:
    import functools

    from transfer.cli.grid import CACHE_NAME, FIGURE_SUFFIXES, cells_dir, copy_cell, originals, write_figure
    from transfer.io.outputs import claim_directory, claim_file
    from transfer.jobs.grid import run_cells
    from transfer.jobs.store import RunStore

    plan = batch.plan
    batch.output.parent.mkdir(parents=True, exist_ok=True)
    output = claim_file(batch.output, overwrite=True, suffixes=FIGURE_SUFFIXES)  # named by the plan: same grid
    contents, styles = originals(plan)
    store = RunStore(output.parent / CACHE_NAME)
    cells = claim_directory(cells_dir(output), owner="grid", overwrite=False)
    watcher = _GridWatcher(plan.cells, progress, functools.partial(copy_cell, store, cells))
    report = run_cells(plan, store, observer=watcher, backbone=backbone)
    write_figure(plan, store, contents, styles, output)
    return report.ran


class _CompareWatcher:
    """`run_comparison`'s hooks: a unit is finished when the next one starts (or the batch ends)."""

    def __init__(self, batch: BatchJob, store, progress: Progress):
        self.names = [name for name, _ in batch.units]
        self.runs, self.store, self.progress = batch.plan.runs, store, progress
        self.current: tuple[int, bool] | None = None
        self.ran = 0

    def on_run(self, index: int, run, cached: bool) -> None:
        self.progress.check()
        self.close()
        self.current = (index, cached)
        self.ran += not cached

    def step(self, info):
        return self.progress.step_callback(self.current[0])(info)

    def close(self) -> None:
        if self.current is not None:
            index, cached = self.current
            self.progress.unit_done(index, self.names[index], self.store.image_path(self.runs[index].spec), cached)
            self.current = None


def _run_compare(batch: BatchJob, progress: Progress, backbone) -> int:
    from transfer.cli.compare import write_outputs
    from transfer.io.outputs import claim_directory
    from transfer.jobs.compare import run_comparison
    from transfer.jobs.store import RunStore

    batch.output.parent.mkdir(parents=True, exist_ok=True)
    out = claim_directory(batch.output, owner="compare", overwrite=False)
    store = RunStore(out / "runs")
    watcher = _CompareWatcher(batch, store, progress)
    records = run_comparison(batch.plan.runs, store, on_run=watcher.on_run, callback=watcher.step)
    watcher.close()
    write_outputs(out, batch.plan, store, records, None, batch.args)
    return watcher.ran
