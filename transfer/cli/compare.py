"""`detstyle compare`: parse -> one spec per (content, style, backbone, preset) -> run -> figure + metrics.

Output in OUT_DIR: each result PNG, `comparison.png` and `comparison.pdf` (rows = content x
style, columns = the inputs then backbone x preset), `metrics.json` and `metrics.csv` (per
run: backbone name and sha256, preset, time, steps, final losses, quality metrics), with the
exact command and the package version, `comparison.md` (the table the README quotes);
`runs/` holds the content-addressed cache.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import sys
from pathlib import Path

from transfer.cli.options import (add_engine_options, add_run_options, progress_bar, resolved_precision,
                                  spec_from_args)
from transfer.core.features import LAYER_PRESETS
from transfer.errors import DetstyleError, UsageError

DEFAULT_BACKBONES = "vgg16-mri,random"
DEFAULT_PRESETS = "gatys"
FIGURE_FORMATS = ("png", "jpg")
CAPTION = ("random: a seeded VGG16, He-normal then LSUV-calibrated to unit activation variance, the best "
           "untrained weights can do (a control, not trained weights). Metrics: transfer.quality, scored by "
           "a judge network that is none of the compared backbones.")


def add_command(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare backbones (and layer presets) on the same inputs, with metrics",
        description="Stylise every CONTENT with every --styles image on every backbone and preset, at identical "
                    "settings, and write OUT_DIR/comparison.png|.pdf, metrics.json, metrics.csv and each result. "
                    "A backbone whose file is absent is skipped with a notice naming the file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  detstyle compare photo.jpg --styles starry.jpg scream.jpg "
               "--backbones vgg16-mri,random,ssd300_mAP_77.43_v2.pth --layers gatys,article -o cmp/\n"
               "  detstyle compare photo.jpg --styles starry.jpg -o /shared/cmp/ --engine ray --address auto")
    p.add_argument("contents", nargs="+", metavar="CONTENT", help="content photos")
    p.add_argument("--styles", nargs="+", required=True, metavar="STYLE", help="style images")
    p.add_argument("--backbones", default=DEFAULT_BACKBONES,
                   help=f"comma-separated registry names or weights files (default {DEFAULT_BACKBONES})")
    p.add_argument("--layers", default=DEFAULT_PRESETS,
                   help=f"comma-separated layer presets ({', '.join(LAYER_PRESETS)}; default {DEFAULT_PRESETS})")
    p.add_argument("--cross-matrix", action="store_true",
                   help="also score each backbone's output with every compared backbone's own style loss")
    p.add_argument("--figure-format", choices=FIGURE_FORMATS, default="png",
                   help="raster format of comparison.* (default png; jpg is about a tenth the size); a PDF is "
                        "always written too")
    p.add_argument("-o", "--out-dir", required=True,
                   help="output directory (created; reruns reuse finished runs and rewrite the figures and tables)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing non-empty folder that `detstyle compare` did not make")
    add_run_options(p, size=256, steps=200, one_backbone=False)
    add_engine_options(p)
    p.set_defaults(func=cmd_compare)


def _list(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UsageError(f"--{what}: give at least one")
    return list(dict.fromkeys(items))


def build_plan(args: argparse.Namespace):
    """The comparison's runs (one spec each) and the notices for skipped backbones."""
    from transfer.io.images import image_ref
    from transfer.jobs.compare import Plan, plan_comparison, resolve_backbones

    presets = _list(args.layers, "layers")
    contents = [image_ref(path) for path in args.contents]
    styles = [image_ref(path) for path in args.styles]
    refs, skipped = resolve_backbones(_list(args.backbones, "backbones"), profile=args.profile,
                                      precision=resolved_precision(args.precision))
    if not refs:
        raise DetstyleError("no backbone to compare: " + "; ".join(skipped))

    def make(content, style, ref, preset):
        return spec_from_args(args, steps=200, content=content, styles=[style], layers=preset, backbone=ref)

    return Plan(plan_comparison(contents, styles, refs, presets, make), skipped)


def cmd_compare(args: argparse.Namespace) -> int:
    from transfer.core.run import check_output_size
    from transfer.io.outputs import claim_directory
    from transfer.jobs.compare import cross_matrix, run_comparison
    from transfer.jobs.engine import EngineChoice
    from transfer.jobs.store import RunStore

    choice = EngineChoice.from_options(args.engine, args.address, args.shard)
    plan = build_plan(args)
    for run in plan.runs:
        check_output_size(run.spec)
    out = claim_directory(args.out_dir, owner="compare", overwrite=args.overwrite)
    for notice in plan.skipped:
        print(f"notice: {notice}", file=sys.stderr)
    store = RunStore(out / "runs")
    progress, close = progress_bar("compare", args.quiet)
    try:
        records = run_comparison(plan.runs, store, callback=progress, choice=choice,
                                 on_run=None if args.quiet else _announce(len(plan.runs)))
    finally:
        close()
    left = sum(record is None for record in records)
    if choice.shard is not None:
        print(f"shard {choice.shard}: {len(choice.select(plan.runs))} of the {len(plan.runs)} runs are this shard's; "
              + (f"{left} runs are not finished yet (other shards'): the figure and tables are written by the run "
                 "that finds every run finished" if left else "every run is finished, writing the figure and tables"))
    if left:
        return 0
    cross = cross_matrix(plan.runs, store, seed=args.seed) if args.cross_matrix else None
    write_outputs(out, plan, store, records, cross, args)
    _print_table(records)
    print(f"wrote {out / ('comparison.' + args.figure_format)}, comparison.pdf, metrics.json, metrics.csv, "
          "comparison.md")
    return 0


def _announce(total: int):
    def on_run(index, run, cached):
        state = "cached" if cached else "running"
        print(f"[{index + 1}/{total}] {state}: {Path(run.content.source).name} × {Path(run.style.source).name}, "
              f"{run.backbone}, {run.preset}", file=sys.stderr)

    return on_run


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("detstyle")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def write_outputs(out: Path, plan, store, records: list[dict], cross, args: argparse.Namespace) -> None:
    from transfer.io.figures import image_table
    from transfer.io.images import atomic_write, save_image
    from transfer.jobs.compare import figure_panels, markdown_table, metrics_rows, result_name

    for run in plan.runs:
        save_image(store.load(run.spec), out / result_name(run))
    spec = plan.runs[0].spec
    title = (f"{spec.size}px · {spec.steps} {spec.optimizer or spec.schedule} steps · seed {spec.seed} · "
             f"same settings for every backbone")
    row_labels, column_labels, images = figure_panels(plan.runs, store)
    image_table(row_labels, column_labels, images, [out / f"comparison.{args.figure_format}", out / "comparison.pdf"],
                title=title, caption=CAPTION)
    payload = {"command": "detstyle " + shlex.join(args.argv), "version": _version(), "skipped": plan.skipped,
               "runs": records}
    if cross is not None:
        payload["cross_backbone"] = cross
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    rows = metrics_rows(records)
    atomic_write(out / "metrics.csv", lambda tmp: Path(tmp).write_text(_csv(rows)))
    table = markdown_table(records)
    atomic_write(out / "comparison.md", lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _print_table(records: list[dict]) -> None:
    keys = [k for k in records[0]["metrics"] if isinstance(records[0]["metrics"][k], (int, float))]
    print("backbone".ljust(18) + "preset".ljust(10) + "".join(k.rjust(12) for k in keys) + "s/step".rjust(9))
    for record in records:
        values = "".join(f"{record['metrics'][k]:12.4g}" for k in keys)
        print(f"{Path(record['backbone']).name[:17]:<18}{record['preset']:<10}{values}{record['seconds_per_step']:9.3f}")
