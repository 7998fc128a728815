"""Options shared by `stylize` and `demo`, and the one place a `RunSpec` is built from them.

Every choice list comes from its registry (layer presets, recipes, schedules, optimisers,
profiles, precisions, backbones).  Options that have a toolkit default are parsed as `None`
when not given, so `make_spec` can tell "given" from "default" and refuse a flag the run
would ignore instead of dropping it.  No TensorFlow is imported here: `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from transfer.backbones.architectures import ALL_PRESETS, ARCHITECTURES
from transfer.core.schedules import SCHEDULE_NAMES, SCHEDULES
from transfer.core.spec import (COLOUR_METHODS, DEFAULTS, INIT_CHOICES, OPTIMIZERS, PLATEAU_WINDOW, PRECISIONS, RunSpec,
                                make_spec)
from transfer.core.style_transforms import STYLE_TRANSFORMS
from transfer.seeds.registry import RECIPE_NAMES, RECIPE_SETTINGS
from weights.registry import PREPROCESSING_PROFILES, REGISTRY

#: What `--init` accepts by name; anything else is an image path (the spec's "image" init).
INIT_NAMES = tuple(name for name in INIT_CHOICES if name != "image")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


def add_run_options(parser: argparse.ArgumentParser, size: int, steps: int, *, one_backbone: bool = True) -> None:
    """The options that make up a run spec (what to optimise, the loss, the schedule).

    `one_backbone=False` leaves out `--backbone` and `--layers` for commands that take lists
    of them (`compare`).
    """
    g = parser.add_argument_group("what to optimise")
    g.add_argument("--size", type=positive_int, default=size,
                   help=f"longest side of the output in pixels (default {size}); cost grows with size^2")
    g.add_argument("--steps", type=positive_int, default=None,
                   help=f"at most this many optimiser iterations at each scale (default {steps}, or the recipe's; "
                        "--plateau may end the last scale sooner); with a named --schedule: the whole schedule's "
                        "budget (default: the schedule's own)")
    if one_backbone:
        g.add_argument("--backbone", default="vgg16-mri",
                       help=f"registry name ({', '.join(REGISTRY)}; default vgg16-mri, the trained VGG16 that installs "
                            "offline; random, random-vgg19 and random-resnet50 are the seeded controls of each "
                            "architecture) or a weights file (.pth, .h5, .onnx, .weights.h5)")
    g.add_argument("--profile", choices=sorted(PREPROCESSING_PROFILES), default=None,
                   help="input preprocessing; default: the backbone's own (caffe for VGG16 weights, "
                        "rgb_mean for ssd.pytorch)")
    g.add_argument("--precision", choices=[AUTO_PRECISION, *PRECISIONS], default=AUTO_PRECISION,
                   help="compute precision of the backbone: auto (default: bf16 on a GPU or a CPU with AVX512-BF16 "
                        "or AMX, fp32 otherwise), fp32, or bf16 (mixed: variables, Grams and losses stay fp32; "
                        "measured 1.76x faster per loss+gradient evaluation than fp32 at 512 px on a 2-core "
                        "AVX512-BF16 CPU, bench/results/floors.json; emulated, hence slower, on CPUs without it)")
    _add_objective_options(parser, one_backbone)
    _add_schedule_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed: noise init and the random backbone (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_objective_options(parser: argparse.ArgumentParser, with_layers: bool = True) -> None:
    g = parser.add_argument_group("the loss (normalised: the same weights work at any size and backbone)")
    if with_layers:
        g.add_argument("--layers", choices=list(ALL_PRESETS), default=None,
                       help=f"layer preset of the backbone's architecture ({_presets_help()}). VGG16: gatys "
                            "(block1..5_conv1 style, block5_conv2 content), article (the SSD article: first five "
                            "layers for style, layer -2 for content), gatys-b4")
    g.add_argument("--style-layers", default=None, help="comma-separated layer names replacing the preset's style taps")
    g.add_argument("--content-layers", default=None, help="comma-separated layer names replacing the content taps")
    g.add_argument("--style-weight", type=non_negative_float, default=None,
                   help=f"weight of the relative Gram-matrix error (default {DEFAULTS['style_weight']})")
    g.add_argument("--content-weight", type=non_negative_float, default=None,
                   help=f"weight of the relative content-feature error (default {DEFAULTS['content_weight']}); "
                        "raise it to keep more of the photo")
    g.add_argument("--tv-weight", type=non_negative_float, default=None,
                   help=f"weight of the total-variation smoothness term (default {DEFAULTS['tv_weight']})")
    recipes = "; ".join(f"{name}: {s.description}" for name, s in RECIPE_SETTINGS.items()).replace("%", "%%")
    g.add_argument("--recipe", choices=list(RECIPE_NAMES), default=None,
                   help=f"reproduce one seed document exactly ({recipes}). A recipe fixes the loss, its weights, "
                        "layers (those options are then refused); its optimiser, step size, init and budget are defaults that "
                        "--optimizer, --learning-rate, --init and --steps replace")
    transforms = "; ".join(f"{name}: {t.description}" for name, t in STYLE_TRANSFORMS.items())
    g.add_argument("--style-transform", choices=list(STYLE_TRANSFORMS), default=None,
                   help=f"transform each style tap before its Gram matrix ({transforms}); default none. "
                        "Refused with --recipe")
    g.add_argument("--style-scale", type=non_negative_float, default=None,
                   help="style image size relative to the output's longest side at each scale (default 1.0); "
                        "smaller = finer brush strokes")
    g.add_argument("--preserve-colors", choices=list(COLOUR_METHODS), default=None,
                   help="keep the photo's colours: luminance (transfer luminance only, put back the photo's "
                        "chroma) or histogram (recolour the style to the photo's colour statistics first)")


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("optimiser and schedule")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help="lbfgs (default: scipy L-BFGS-B, box-bounded, no step size; measured the fastest route to a "
                        "given loss of the default objective, bench/results/default_speed_512.json) or adam (one "
                        "compiled step per iteration; resumes exactly; the one --tile uses)")
    g.add_argument("--learning-rate", type=non_negative_float, default=None,
                   help=f"Adam's step size in pixel units of a [0,1] image (default {DEFAULTS['learning_rate']}); "
                        "needs --optimizer adam")
    g.add_argument("--plateau", type=non_negative_float, default=None, metavar="SHARE",
                   help=f"stop before --steps once the mean loss of the last {PLATEAU_WINDOW} steps is less than SHARE "
                        f"below the {PLATEAU_WINDOW} before (default {DEFAULTS['plateau']} with this toolkit's loss, "
                        "off with a --recipe or a named --schedule; 0 turns it off)")
    g.add_argument("--scales", type=positive_int, default=None,
                   help="pyramid levels, coarse to fine, ratio sqrt(2) (default 1); e.g. 3 at --size 512 "
                        "runs 256, 362, 512 px, each level starting from the upsampled previous result")
    named = "; ".join(f"{name}: {s.description}" for name, s in SCHEDULES.items())
    g.add_argument("--schedule", choices=list(SCHEDULE_NAMES), default=None,
                   help=f"plain (default: --scales levels of --optimizer) or a named schedule ({named}); a named "
                        "schedule picks its own optimiser, step sizes and sizes, so --optimizer, --learning-rate "
                        "and --scales are refused with it. Measured at 512 px with --recipe tutorial: reaches the "
                        "TF tutorial loop's 500-step loss 2.5x sooner in fp32, 4.3x with --precision bf16 (the "
                        "tutorial's time extrapolated from its timed steps; bench/results/fast_schedule_512.json)")
    g.add_argument("--init", default=None,
                   help=f"start from: {', '.join(INIT_NAMES)} (default content), or an image path")
    g.add_argument("--tile", type=positive_int, default=None, metavar="N",
                   help="optimise the output in N x N tiles, one at a time, so peak memory follows the tile and not "
                        "the image: for outputs that do not fit otherwise (--limit output_pixels then bounds the tile "
                        "plus its context margin of N/8 px, rounded up to a multiple of 16, on each side; the whole "
                        "output is bounded by image_pixels). "
                        "The grid moves by a seeded random offset every step so no seam stays in one place, and the "
                        "style statistics are the whole style's. N >= 64 and a multiple of 16; plain schedule, "
                        "Adam, one scale, the default loss. Costs up to 1.56x the pixels per step plus one content "
                        "forward pass per tile. Default: the whole image at once. bench/results/tiling.json "
                        "measures it (python -m bench.tiling)")


def _presets_help() -> str:
    """`vgg16: gatys (default), article, ...; resnet50: stages (default)`, from the registry."""
    return "; ".join(f"{name}: " + ", ".join(p + (" (default)" if p == a.default_layers else "") for p in a.presets)
                     for name, a in ARCHITECTURES.items())


#: `--precision auto`: resolved by `resolved_precision` to what this machine computes natively.
AUTO_PRECISION = "auto"


def resolved_precision(precision: str) -> str:
    """fp32 or bf16: `auto` becomes what the hardware computes natively (the spec records the result)."""
    if precision != AUTO_PRECISION:
        return precision
    from transfer.backbones.precision import automatic_precision

    return automatic_precision()


def spec_from_args(args: argparse.Namespace, *, steps: int, content=None, styles=(), layers: str | None = None,
                   backbone=None) -> RunSpec:
    """The run spec these options describe (with the inputs' and backbone's references)."""
    init_image = None
    init = args.init
    if init is not None and init not in INIT_NAMES:
        from transfer.io.images import image_ref

        init_image, init = image_ref(init), None
    return make_spec(
        recipe=args.recipe, layers=layers or getattr(args, "layers", None), style_layers=_names(args.style_layers),
        content_layers=_names(args.content_layers), style_weight=args.style_weight,
        content_weight=args.content_weight, tv_weight=args.tv_weight, style_scale=args.style_scale,
        preserve_colors=args.preserve_colors, style_transform=getattr(args, "style_transform", None),
        schedule=args.schedule,
        steps=args.steps or (None if (args.recipe or args.schedule not in (None, "plain")) else steps),
        optimizer=args.optimizer, learning_rate=args.learning_rate, scales=args.scales, init=init, seed=args.seed,
        plateau=args.plateau,
        tile=getattr(args, "tile", None),
        size=args.size, content=content, styles=styles, init_image=init_image, backbone=backbone,
    )


def progress_bar(label: str, quiet: bool):
    """A tqdm callback showing the losses, the stage size and the time left; and its closer."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = None

    def callback(info):
        nonlocal bar
        if bar is None:  # the total is known from the first step (it depends on the stages)
            bar = tqdm(total=info.steps, desc=label, unit="step", dynamic_ncols=True, file=sys.stderr)
        elif info.step <= bar.n:  # the next run of a batch job (compare, grid) started
            bar.reset(total=info.steps)
        bar.update(info.step - bar.n)
        post = {k: f"{v:.4g}" for k, v in info.losses.items() if k != "total"}
        post["px"] = f"{info.size[1]}x{info.size[0]}"
        bar.set_postfix(post, refresh=False)

    return callback, lambda: bar is not None and bar.close()


def chain(*callbacks):
    """One callback calling each given one; the run stops when any of them asks to."""
    live = [c for c in callbacks if c is not None]
    return (lambda info: any([c(info) for c in live])) if live else None


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """`--engine`, `--address`, `--shard`: where a batch job's units run (`transfer.jobs.engine`).

    `--shard` stays text here and is parsed by `EngineChoice.from_options`, so a bad value is
    one `detstyle: error:` line (exit 2) like every other refusal.
    """
    from transfer.jobs.engine import ENGINES

    g = parser.add_argument_group("scale-out (each unit is one cached run; any mix of engines shares the cache)")
    g.add_argument("--engine", choices=list(ENGINES), default=ENGINES[0],
                   help="local (default): one unit after another in this process; ray: the units as Ray work, "
                        "one actor per free CPU (or GPU: num_gpus=1 each) that loads the backbone once "
                        "(optional extra: pip install 'detstyle[ray]')")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: an existing cluster (auto, HOST:6379 or ray://HOST:10001); default: "
                        "start a local one for this command. The cache folder must be shared by every node")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="run only shard I (from 0) of N: the units whose position in the plan is I modulo N, "
                        "e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT or $JOB_COMPLETION_INDEX/N. Results go "
                        "to the shared cache; the run that finds every unit finished writes the final output")
