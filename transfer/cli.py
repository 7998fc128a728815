"""The `detstyle` command: a thin shell over `transfer` functions.

Every user error ends in one line `detstyle: error: ...` and a non-zero exit status
(2 for usage errors, 1 for everything else); `--debug` shows the traceback instead.
TensorFlow is imported only when a command needs it, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# Quiet TensorFlow's C++ start-up logging unless the user asked for it (set before import).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXAMPLES = """\
examples:
  detstyle demo                                   # embedded defaults -> out/demo.png + out/demo_figure.png
  detstyle stylize photo.jpg painting.jpg -o out.png --size 512 --steps 300
  detstyle stylize photo.jpg painting.jpg -o out.png --layers article   # the SSD article's design
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone random --seed 3
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone ssd300_mAP_77.43_v2.pth
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _style_spec(text: str) -> tuple[str, float]:
    """`path` or `path:weight` (the weight is a positive number)."""
    path, sep, weight = text.rpartition(":")
    if sep and path and not weight.startswith(("\\", "/")):
        try:
            value = float(weight)
        except ValueError:
            return text, 1.0  # a ':' that is part of the path
        if not value > 0:
            raise argparse.ArgumentTypeError(f"style weight must be > 0 in {text!r}")
        return path, value
    return text, 1.0


def _add_style_options(parser: argparse.ArgumentParser, size: int, steps: int) -> None:
    """Options shared by `stylize` and `demo`."""
    from transfer.config import StyleConfig  # no TensorFlow import: --help stays instant
    from transfer.schedules import SCHEDULES

    d = StyleConfig()
    g = parser.add_argument_group("what to optimise")
    g.add_argument("--size", type=_positive_int, default=size,
                   help=f"longest side of the output in pixels (default {size}); cost grows with size^2")
    g.add_argument("--steps", type=_positive_int, default=None,
                   help=f"optimiser iterations at each scale (default {steps}, or the recipe's); with "
                        "--schedule fast: the whole schedule's budget (default: the schedule's own)")
    g.add_argument("--backbone", default="vgg16-mri",
                   help="vgg16-mri (trained, offline; default), random (seeded control), ssd300-voc, "
                        "vgg16-imagenet, or a weights file path (.pth, .h5, .onnx, .weights.h5)")
    g.add_argument("--profile", choices=["caffe", "rgb_mean", "unit"], default=None,
                   help="input preprocessing; default: the backbone's own (caffe for VGG16 weights, "
                        "rgb_mean for ssd.pytorch)")
    g.add_argument("--layers", default="gatys",
                   help="layer preset: gatys (block1..5_conv1 style, block5_conv2 content; default), "
                        "article (the SSD article: first five layers for style, layer -2 for content), gatys-b4")
    g.add_argument("--style-layers", default=None, help="comma-separated layer names overriding the preset's style taps")
    g.add_argument("--content-layers", default=None, help="comma-separated layer names overriding the content tap")
    g.add_argument("--recipe", choices=["tutorial", "keras", "article", "coursera"], default=None,
                   help="reproduce one seed document exactly (loss, layers, weights, optimiser, init): "
                        "tutorial=TF tutorial, keras=Keras L-BFGS example, article=SSD-backbone article, "
                        "coursera=course notes. Overrides the loss options below")
    w = parser.add_argument_group("loss weights (normalised: the same values work at any size and backbone)")
    w.add_argument("--style-weight", type=_non_negative_float, default=d.style_weight,
                   help=f"weight of the relative Gram-matrix error (default {d.style_weight})")
    w.add_argument("--content-weight", type=_non_negative_float, default=d.content_weight,
                   help=f"weight of the relative content-feature error (default {d.content_weight}); "
                        "raise it to keep more of the photo")
    w.add_argument("--tv-weight", type=_non_negative_float, default=d.tv_weight,
                   help=f"weight of the total-variation smoothness term (default {d.tv_weight})")
    o = parser.add_argument_group("optimiser and schedule")
    o.add_argument("--optimizer", choices=["adam", "lbfgs"], default=d.optimizer,
                   help="adam (default; one compiled step) or lbfgs (scipy L-BFGS-B, box-bounded)")
    o.add_argument("--learning-rate", type=_non_negative_float, default=d.learning_rate,
                   help=f"Adam step size in pixel units of a [0,1] image (default {d.learning_rate})")
    o.add_argument("--scales", type=_positive_int, default=d.scales,
                   help="pyramid levels, coarse to fine, ratio sqrt(2) (default 1); e.g. 3 at --size 512 "
                        "runs 256, 362, 512 px, each level starting from the upsampled previous result")
    o.add_argument("--schedule", choices=sorted(SCHEDULES), default=None,
                   help="fast: L-BFGS on a smoothed total variation whose smoothing shrinks stage by stage, "
                        "at full size (coarse scales were measured and lose the fine texture). Reaches the TF "
                        "tutorial loop's loss in fewer evaluations (measured 2-3x at 512 px; see bench/results); "
                        "--optimizer, --learning-rate and --scales are then not used")
    o.add_argument("--style-scale", type=_non_negative_float, default=d.style_scale,
                   help="style image size relative to the output's longest side at each scale (default 1.0); "
                        "smaller = finer brush strokes")
    o.add_argument("--init", default=d.init,
                   help="start from: content (default), noise (seeded), style, or an image path")
    o.add_argument("--preserve-colors", choices=["luminance", "histogram"], default=None,
                   help="keep the photo's colours: luminance (transfer luminance only, put back the photo's "
                        "chroma) or histogram (recolour the style to the photo's colour statistics first)")
    o.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="compute precision of the backbone: fp32 (default) or bf16 (mixed: variables and "
                        "losses in fp32; ~1.6-1.9x faster where the CPU/GPU has bf16 units)")
    o.add_argument("--seed", type=int, default=d.seed, help="random seed: noise init and random backbone (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detstyle",
        description="Neural style transfer with the backbone of an object detector (SSD300/VGG16). "
                    "Images are optimised pixel by pixel so their VGG16 features match a content photo "
                    "and their Gram matrices match a style image.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stylize", help="stylise a content image with a style image",
                       description="Stylise CONTENT with STYLE (or several --style PATH:WEIGHT) and write OUT. "
                                   "Ctrl-C saves OUT's stem + .ckpt.npz; --resume continues from it.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", help="content photo (any format Pillow reads; EXIF rotation honoured)")
    p.add_argument("style", nargs="?", help="style image (painting); or use --style, repeatable")
    p.add_argument("--style", dest="styles", action="append", type=_style_spec, default=[], metavar="PATH[:WEIGHT]",
                   help="a style image with an optional blend weight, e.g. --style a.jpg:0.7 --style b.jpg:0.3")
    p.add_argument("-o", "--output", required=True, help="output image path (.png or .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="write a numbered snapshot every N steps into OUTSTEM_frames/")
    p.add_argument("--progress-gif", action="store_true",
                   help="assemble the snapshots into OUTSTEM_progress.gif (implies --save-every 10 if unset)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from OUTSTEM.ckpt.npz (same inputs and options)")
    _add_style_options(p, size=512, steps=300)
    p.set_defaults(func=cmd_stylize, default_steps=300)

    p = sub.add_parser("demo", help="run the embedded demo (no files needed)",
                       description="Stylise matplotlib's bundled grace_hopper.jpg with a generated style "
                                   "(or --style-image PATH), once with the article's layers and once with gatys, "
                                   "and write OUT_DIR/demo.png and OUT_DIR/demo_figure.png.")
    p.add_argument("--out-dir", default="out", help="output directory (default out/)")
    p.add_argument("--content-image", default=None, help="content image (default: matplotlib's grace_hopper.jpg)")
    p.add_argument("--style-image", default=None, help="style image (default: generated swirl painting)")
    _add_style_options(p, size=256, steps=120)
    p.set_defaults(func=cmd_demo, default_steps=120)

    from transfer.cli_weights import add_weights_commands

    add_weights_commands(sub)
    return parser


def _config_from_args(args, layers: str | None = None):
    from transfer.config import StyleConfig
    from transfer.recipes import apply_recipe

    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip()) if s else None  # noqa: E731
    init = args.init if args.init in ("content", "noise", "style") else "content"
    config = StyleConfig(
        steps=args.steps or args.default_steps, layers=layers or args.layers,
        style_layers=split(args.style_layers), content_layers=split(args.content_layers),
        style_weight=args.style_weight, content_weight=args.content_weight, tv_weight=args.tv_weight,
        optimizer=args.optimizer, learning_rate=args.learning_rate, scales=args.scales,
        style_scale=args.style_scale, init=init, preserve_colors=args.preserve_colors, seed=args.seed,
        schedule=args.schedule,
    )
    if args.recipe:
        config = apply_recipe(args.recipe, config, keep_steps=args.steps is not None)
    if args.schedule and args.steps is None:
        from transfer.schedules import SCHEDULES

        config = dataclasses.replace(config, steps=SCHEDULES[args.schedule].default_steps)
    config.validate()
    return config


def _progress(args, total: int, label: str):
    """A tqdm bar showing the losses and the scale; returns (callback, close)."""
    if args.quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="step", dynamic_ncols=True, file=sys.stderr)

    def callback(info):
        bar.update(info.step - bar.n)
        post = {k: f"{v:.4g}" for k, v in info.losses.items() if k != "total"}
        post["px"] = f"{info.size[1]}x{info.size[0]}"
        bar.set_postfix(post, refresh=False)

    return callback, bar.close


def _chain(*callbacks):
    live = [c for c in callbacks if c is not None]
    return (lambda info: any([c(info) for c in live])) if live else None


def _run(args, content, style, backbone, label: str, layers: str | None = None, config=None, **kwargs):
    from transfer.schedules import stages_for
    from transfer.stylizer import stylize

    config = config or _config_from_args(args, layers)
    height, width = content.shape[-3:-1]
    progress, close = _progress(args, sum(stage.steps for stage in stages_for(config, height, width)), label)
    try:
        return stylize(content, style, backbone, config, _chain(progress, kwargs.pop("callback", None)), **kwargs)
    finally:
        close()


def _check_output(path: Path, overwrite: bool) -> None:
    from transfer.errors import DetstyleError

    if path.exists() and not overwrite:
        raise DetstyleError(f"{path}: already exists; pass --overwrite to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DetstyleError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise DetstyleError(f"{path}: output directory {directory} is not writable")
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"):
        raise DetstyleError(f"{path}: unsupported output extension {path.suffix!r} (use .png or .jpg)")


def _load_backbone(args, fallback_to_random: bool = False):
    from transfer.backbones import load_backbone
    from transfer.errors import DetstyleError

    try:
        backbone = load_backbone(args.backbone, profile=args.profile, seed=args.seed)
    except DetstyleError as exc:
        if not fallback_to_random:
            raise
        print(f"notice: {exc}\nnotice: falling back to the random control backbone", file=sys.stderr)
        backbone = load_backbone("random", profile=args.profile, seed=args.seed)
    from transfer.backbones import with_precision

    backbone = with_precision(backbone, args.precision)
    if not args.quiet:
        print(f"backbone: {backbone.description} [profile {backbone.profile}]", file=sys.stderr)
        if backbone.report is not None:
            print("  " + backbone.report.summary().replace("\n", "\n  "), file=sys.stderr)
    return backbone


def _snapshotter(output: Path, every: int):
    """Callback writing OUTSTEM_frames/step_00010.png every `every` steps."""
    from transfer.images import save_image

    frames = output.with_name(output.stem + "_frames")
    frames.mkdir(exist_ok=True)

    def callback(info):
        if info.step % every == 0 or info.step == info.steps:
            save_image(info.image(), frames / f"step_{info.step:05d}.png")

    return frames, callback


def cmd_stylize(args) -> int:
    from transfer.errors import DetstyleError
    from transfer.images import atomic_write, load_image, save_image
    from transfer.resume import RunState

    output = Path(args.output)
    state_path = output.with_name(output.stem + ".ckpt.npz")
    _check_output(output, args.overwrite or args.resume)
    style_specs = ([(args.style, 1.0)] if args.style else []) + list(args.styles)
    if not style_specs:
        raise DetstyleError("no style image: give STYLE or --style PATH[:WEIGHT]")
    content = load_image(args.content, args.size)
    styles = [(load_image(path, args.size), weight) for path, weight in style_specs]
    init_image = None
    if args.init not in ("content", "noise", "style"):
        init_image = load_image(args.init)
    config = _config_from_args(args)
    resume = None
    if args.resume:
        resume = RunState.load(state_path)
        if resume.config != config.to_dict():
            changed = sorted(k for k in resume.config if resume.config[k] != config.to_dict().get(k))
            raise DetstyleError(f"{state_path}: saved with different options ({', '.join(changed)}); "
                                "resume with the same command line")
    backbone = _load_backbone(args)
    every = args.save_every or (10 if args.progress_gif else None)
    frames, snapshot = _snapshotter(output, every) if every else (None, None)
    result = _run(args, content, styles, backbone, "stylize", config=config, callback=snapshot,
                  init_image=init_image, state_path=state_path, resume=resume)
    save_image(result.image, output)
    state_path.unlink(missing_ok=True)
    if args.progress_gif:
        from transfer.figures import progress_gif

        gif = progress_gif(sorted(frames.glob("step_*.png")), output.with_name(output.stem + "_progress.gif"))
        print(f"wrote {gif}")
    last = result.history[-1]
    steps = len(result.history)
    print(f"wrote {output} ({result.image.shape[1]}x{result.image.shape[0]}, {steps} steps, "
          f"{result.seconds:.1f} s, {result.seconds / max(steps, 1):.3f} s/step, "
          f"loss style {last['style']:.4g} content {last['content']:.4g} tv {last['tv']:.4g})")
    return 0


def cmd_demo(args) -> int:
    from transfer.figures import side_by_side
    from transfer.images import load_image, save_image
    from transfer.samples import generated_style, grace_hopper_path

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    content = load_image(args.content_image or grace_hopper_path(), args.size)
    style = load_image(args.style_image, args.size) if args.style_image else generated_style(args.size, args.seed)
    backbone = _load_backbone(args, fallback_to_random=args.backbone == "vgg16-mri")
    results = {}
    for layers in ("article", "gatys"):
        results[layers] = _run(args, content, style, backbone, f"demo [{layers}]", layers)
        save_image(results[layers].image, out_dir / f"demo_{layers}.png")
    save_image(results[args.layers if args.layers in results else "gatys"].image, out_dir / "demo.png")
    steps = len(results["gatys"].history)
    figure = side_by_side(
        [("content", content), ("style", style),
         ("article: first five layers / block5_conv2", results["article"].image),
         ("gatys: block1..5_conv1 / block5_conv2", results["gatys"].image)],
        out_dir / "demo_figure.png",
        title=f"backbone {backbone.name} · {args.size}px · {steps} {args.optimizer} steps · seed {args.seed}",
    )
    seconds = sum(r.seconds for r in results.values())
    print(f"wrote {out_dir / 'demo.png'} and {figure} ({seconds:.1f} s optimising, "
          f"{seconds / (2 * steps):.3f} s/step)")
    return 0


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probing) muted.

    TF 2.21 logs through absl before any Python setting applies, so the only reliable
    switch is to point file descriptor 2 elsewhere for the duration of the import.
    """
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not args.debug:
        _import_tensorflow_quietly()
    from transfer.errors import DetstyleError
    from weights.errors import WeightsError

    from transfer.resume import Interrupted

    try:
        return args.func(args)
    except Interrupted as exc:
        print(f"detstyle: {exc}", file=sys.stderr)
        return 130
    except (DetstyleError, WeightsError) as exc:
        if args.debug:
            raise
        print(f"detstyle: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("detstyle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
