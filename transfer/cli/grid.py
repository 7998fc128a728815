"""`detstyle grid`: parse -> one spec per cell -> `transfer.jobs.grid.run_cells` -> the figure and cell files.

Every stylize run option works (`add_run_options`, `spec_from_args`), with the same
refusals.  Finished cells live in a content-addressed cache beside the output
(`detstyle-cache/`, shared by every grid written to that folder), so rerunning the same
command skips them; the figure and `OUTSTEM_cells/` are renderings of that cache.  An
existing figure is replaced only with `--overwrite`; the cells folder carries a marker, so a
rerun after an interruption refills it, while a foreign folder of that name is refused.
The cells run in this process, on Ray (`--engine ray`), or one `--shard i/n` at a time; the
figure is written by the run that finds every cell finished.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from transfer.cli.options import (add_engine_options, add_run_options, progress_bar, resolved_precision,
                                  spec_from_args)

#: Figure formats (matplotlib writes them; JPEG keeps a README figure small).
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
#: The cache's folder name, beside the output.
CACHE_NAME = "detstyle-cache"
DEFAULT_SIZE, DEFAULT_STEPS = 256, 300

EXAMPLES = """\
examples:
  detstyle grid --contents photos/ --styles paintings/ -o grid.png --steps 100
  detstyle grid --contents a.jpg b.jpg --styles s.jpg t.jpg -o grid.jpg --backbone random --size 128
  detstyle grid --contents photos/ --styles paintings/ -o /shared/grid.png --engine ray --address auto
  detstyle grid --contents photos/ --styles paintings/ -o /shared/grid.png --shard $SLURM_ARRAY_TASK_ID/8
"""


def add_command(sub) -> None:
    p = sub.add_parser("grid", help="every content with every style: one labelled figure and one image per cell",
                       description="Stylise every content with every style. Writes OUT (styles on the top row, "
                                   "contents down the left column, settings in the title) and each cell as "
                                   "OUTSTEM_cells/<content>__<style>.png. Finished cells are cached in "
                                   f"OUTDIR/{CACHE_NAME}/ (or --cache): a rerun skips them, Ctrl-C loses at most "
                                   "the running cell.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contents", nargs="+", required=True, metavar="FILE|DIR",
                   help="content photos; a directory means every image file in it (sorted by name)")
    p.add_argument("--styles", nargs="+", required=True, metavar="FILE|DIR",
                   help="style images; a directory means every image file in it (sorted by name)")
    p.add_argument("-o", "--output", required=True, help=f"the figure ({', '.join(FIGURE_SUFFIXES)})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing figure (finished cells are reused either way)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help=f"where finished cells are kept (default: {CACHE_NAME}/ beside the output)")
    add_run_options(p, size=DEFAULT_SIZE, steps=DEFAULT_STEPS)
    add_engine_options(p)
    p.set_defaults(func=cmd_grid)


def cells_dir(output: Path) -> Path:
    return output.with_name(output.stem + "_cells")


class _Progress:
    """Grid observer: a bar over cells (i/N·M, ETA) above stylize's per-step bar; writes each cell's file."""

    def __init__(self, total: int, finished: int, quiet: bool, write_cell):
        self.quiet, self.write_cell = quiet, write_cell
        self.close_steps = _nothing
        self.cells = None
        if not quiet:
            from tqdm import tqdm

            self.cells = tqdm(total=total, initial=finished, desc="grid", unit="cell", dynamic_ncols=True,
                              file=sys.stderr)

    def start(self, cell, cached: bool):
        if cached:
            return None
        callback, self.close_steps = progress_bar(cell.name, self.quiet)
        return callback

    def finish(self, cell, record: dict, ran: bool) -> None:
        self.close_steps()
        self.close_steps = _nothing
        self.write_cell(cell)
        if ran and self.cells is not None:
            self.cells.update(1)

    def close(self) -> None:
        self.close_steps()
        if self.cells is not None:
            self.cells.close()


def _nothing() -> None:
    return None


def copy_cell(store, directory: Path, cell) -> Path:
    """The cell's PNG, byte for byte the cached one (written atomically)."""
    import shutil

    from transfer.io.images import atomic_write

    source = store.image_path(cell.spec)
    return atomic_write(directory / f"{cell.name}.png", functools.partial(shutil.copyfile, source))


def originals(plan) -> tuple[list, list]:
    """(label, image) of every content and style at the run's size; also proves each one decodes."""
    from transfer.io.images import load_ref
    from transfer.jobs.grid import label

    size = plan.cells[0].spec.size
    contents = [(label(ref), load_ref(ref, size)) for ref in plan.contents]
    styles = [(label(ref), load_ref(ref, size)) for ref in plan.styles]
    return contents, styles


def build_plan(args: argparse.Namespace):
    """The grid's cells: one spec per (content, style) with this command line's options."""
    from transfer.backbones.load import resolve_backbone
    from transfer.jobs.grid import image_paths, plan_grid

    contents = image_paths(args.contents, "content")
    styles = image_paths(args.styles, "style")
    backbone = resolve_backbone(args.backbone, profile=args.profile, precision=resolved_precision(args.precision))
    make = functools.partial(spec_from_args, args, steps=DEFAULT_STEPS, backbone=backbone)
    return plan_grid(contents, styles, make)


def cmd_grid(args: argparse.Namespace) -> int:
    from transfer.core.run import check_output_size
    from transfer.io.outputs import claim_directory, claim_file
    from transfer.jobs.engine import EngineChoice
    from transfer.jobs.grid import run_cells
    from transfer.jobs.store import RunStore

    choice = EngineChoice.from_options(args.engine, args.address, args.shard)
    output = claim_file(args.output, overwrite=args.overwrite, suffixes=FIGURE_SUFFIXES)
    plan = build_plan(args)
    for cell in plan.cells:
        check_output_size(cell.spec)
    contents, styles = originals(plan)
    store = RunStore(args.cache or output.parent / CACHE_NAME)
    cells = claim_directory(cells_dir(output), owner="grid", overwrite=args.overwrite)
    mine = choice.select(plan.cells)
    progress = _Progress(len(mine), sum(store.record(c.spec) is not None for c in mine), args.quiet,
                         functools.partial(copy_cell, store, cells))
    started = time.perf_counter()
    try:
        report = run_cells(plan, store, choice=choice, observer=progress)
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    if choice.shard is not None:
        print(_shard_line(choice.shard, plan, mine, report.ran, store))
        if len(plan.finished(store)) < len(plan.cells):
            return 0
        for cell in plan.cells:  # the other shards' cells, into this run's cells folder
            copy_cell(store, cells, cell)
    write_figure(plan, store, contents, styles, output)
    reused = len(plan.cells) - report.ran
    print(f"wrote {output} ({plan.shape[0]}x{plan.shape[1]} cells: {report.ran} run in {seconds:.1f} s, "
          f"{reused} from {store.root}) and {len(plan.cells)} cell images in {cells}/")
    return 0


def write_figure(plan, store, contents, styles, output: Path) -> None:
    from transfer.io.figures import grid_figure, save_figure
    from transfer.jobs.grid import collect, describe_settings

    result = collect(plan, store)
    figure = grid_figure(contents, styles, result.images, title=describe_settings(plan.cells[0].spec))
    save_figure(figure, output)


def _shard_line(shard, plan, mine: list, ran: int, store) -> str:
    """What a shard did and what is left, in one line."""
    left = len(plan.cells) - len(plan.finished(store))
    did = f"shard {shard}: {ran} of its {len(mine)} cells run now, {len(mine) - ran} were already cached"
    if not left:
        return f"{did}; every cell of the {plan.shape[0]}x{plan.shape[1]} grid is finished, writing the figure"
    return (f"{did}; {left} of {len(plan.cells)} cells are not finished yet (other shards'): the figure is "
            f"written by the run that finds every cell finished (rerun any shard, or the command without --shard)")
