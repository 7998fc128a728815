"""`detstyle pipeline`: train a detector from a backbone, then compare style transfer before and after.

One command for the README's figure: train an SSD300 on a VOC set starting from `--init`
(into OUT_DIR/detector/), then run `detstyle compare` itself (`transfer.cli.compare.cmd_compare`:
the same job, figure, metrics and table) on every content x style pair with two backbones -- the init
as it was and the trained `.pth` -- and measure how far each VGG16 conv layer moved
(`transfer.jobs.pipeline.layer_movement`).

OUT_DIR: detector/ (the training run), runs/ (the stylisation cache), each result PNG,
comparison.png|.pdf, metrics.json|.csv, comparison.md, layer_movement.md|.json.  After Ctrl-C
the same command with --resume continues the training and reuses finished stylisations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transfer.cli.compare import DEFAULT_PRESETS, FIGURE_FORMATS
from transfer.cli.detector import add_train_options
from transfer.cli.options import add_run_options
from transfer.core.features import LAYER_PRESETS

DETECTOR_DIR = "detector"


def add_command(sub) -> None:
    # "resolve": the detector's --init (added last) replaces the stylisation's start-image --init,
    # which the comparison does not offer (every run starts from its content, as `compare` does).
    p = sub.add_parser(
        "pipeline", help="train a detector from a backbone, then compare style transfer before and after",
        description="Train an SSD300 on VOC_DIR starting from --init (OUT_DIR/detector/), stylise every --content "
                    "with every --styles image with the init and with the trained detector's backbone at identical "
                    "settings, and write the comparison figure and metrics (as `detstyle compare`) and how far each "
                    "conv layer's weights moved (layer_movement.md|.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
        epilog="examples:\n"
               "  detstyle make-voc shapes/ --images 200\n"
               "  detstyle pipeline --data shapes/ --init vgg16-mri --train-steps 2000 --batch-size 8 \\\n"
               "      --content photo.jpg --styles starry.jpg scream.jpg --size 256 --steps 200 -o figure/\n"
               "  detstyle pipeline ... -o figure/ --resume     # after Ctrl-C: the same command plus --resume")
    p.add_argument("--content", dest="contents", nargs="+", required=True, metavar="CONTENT", help="content photos")
    p.add_argument("--styles", nargs="+", required=True, metavar="STYLE", help="style images")
    p.add_argument("--layers", default=DEFAULT_PRESETS,
                   help=f"comma-separated layer presets ({', '.join(LAYER_PRESETS)}; default {DEFAULT_PRESETS})")
    p.add_argument("--figure-format", choices=FIGURE_FORMATS, default="png",
                   help="raster format of comparison.* (default png); a PDF is always written too")
    p.add_argument("-o", "--out-dir", required=True, help="output folder (created)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder the pipeline did not make, or start its training again")
    add_run_options(p, size=256, steps=200, one_backbone=False)
    add_train_options(p, prefix="train-")
    p.set_defaults(func=cmd_pipeline)


def _compare_args(args: argparse.Namespace, backbones: list[str]) -> argparse.Namespace:
    """The options as `detstyle compare` would have them: these backbones, runs starting from the content.

    `overwrite=True` only because OUT_DIR is claimed by the pipeline (its own marker, or the user's
    --overwrite) before `compare` claims it again for its files.  The pipeline's two runs go in this
    process (`--engine local`): the detector it just trained is a local file.
    """
    from transfer.jobs.engine import LOCAL

    return argparse.Namespace(**{**vars(args), "backbones": ",".join(backbones), "init": None,
                                 "cross_matrix": False, "overwrite": True, "engine": LOCAL, "address": None,
                                 "shard": None})


def _movement(args: argparse.Namespace, final: Path, out: Path) -> list[tuple[str, float]]:
    """Each VGG16 conv layer's change from the detector's start (`--init`) to the trained weights."""
    from transfer.backbones.load import load_backbone
    from transfer.jobs.detector import start_backbone
    from transfer.jobs.pipeline import layer_movement, write_movement

    rows = layer_movement(start_backbone(args.init, args.seed), load_backbone(str(final)).model)
    write_movement(rows, out, args.init, str(final))
    return rows


def cmd_pipeline(args: argparse.Namespace) -> int:
    from transfer.cli.compare import build_plan, cmd_compare
    from transfer.cli.detector import check_training, print_training, run_training
    from transfer.core.run import check_output_size
    from transfer.io.outputs import claim_directory

    out = Path(args.out_dir)
    for run in build_plan(_compare_args(args, [args.init])).runs:  # images, options, init: refused before any work
        check_output_size(run.spec)
    training = check_training(args, out / DETECTOR_DIR)
    out = claim_directory(out, owner="pipeline", overwrite=args.overwrite)
    outcome = run_training(training, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    print_training(outcome)
    cmd_compare(_compare_args(args, [args.init, str(outcome.final)]))
    rows = _movement(args, outcome.final, out)
    print("layer".ljust(14) + "relative L2 change")
    for name, value in rows:
        print(f"{name:<14}{value:.4g}")
    print(f"wrote {out / 'layer_movement.md'}, layer_movement.json")
    return 0
