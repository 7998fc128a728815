"""`detstyle stylize`: parse -> spec -> `transfer.core.run.run` -> write the picture and a summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from transfer.cli.options import add_run_options, chain, positive_int, progress_bar, spec_from_args
from transfer.errors import DetstyleError, UsageError

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def style_option(text: str) -> tuple[str, float]:
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


def add_command(sub, examples: str) -> None:
    p = sub.add_parser("stylize", help="stylise a content image with a style image",
                       description="Stylise CONTENT with STYLE (or several --style PATH:WEIGHT) and write OUT. "
                                   "Ctrl-C saves OUT's stem + .ckpt.npz; --resume continues from it.",
                       epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", help="content photo (any format Pillow reads; EXIF rotation honoured)")
    p.add_argument("style", nargs="?", help="style image (painting); or use --style, repeatable")
    p.add_argument("--style", dest="styles", action="append", type=style_option, default=[], metavar="PATH[:WEIGHT]",
                   help="a style image with an optional blend weight, e.g. --style a.jpg:0.7 --style b.jpg:0.3")
    p.add_argument("-o", "--output", required=True, help="output image path (.png or .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                   help="write a numbered snapshot every N steps into OUTSTEM_frames/")
    p.add_argument("--progress-gif", action="store_true",
                   help="assemble the snapshots into OUTSTEM_progress.gif (implies --save-every 10 if unset)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from OUTSTEM.ckpt.npz (the same inputs and options)")
    add_run_options(p, size=512, steps=300)
    p.set_defaults(func=cmd_stylize)


def check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise DetstyleError(f"{path}: already exists; pass --overwrite to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DetstyleError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise DetstyleError(f"{path}: output directory {directory} is not writable")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DetstyleError(f"{path}: unsupported output extension {path.suffix!r} (use .png or .jpg)")


def build_spec(args: argparse.Namespace):
    """The run spec of a `stylize` command line: input digests, backbone reference, options."""
    from transfer.backbones.load import resolve_backbone
    from transfer.io.images import image_ref

    style_options = ([(args.style, 1.0)] if args.style else []) + list(args.styles)
    if not style_options:
        raise UsageError("no style image: give STYLE or --style PATH[:WEIGHT]")
    content = image_ref(args.content)
    styles = [image_ref(path, weight) for path, weight in style_options]
    backbone = resolve_backbone(args.backbone, profile=args.profile, precision=args.precision)
    return spec_from_args(args, steps=300, content=content, styles=styles, backbone=backbone)


def _snapshotter(output: Path, every: int):
    """Callback writing OUTSTEM_frames/step_00010.png every `every` steps."""
    from transfer.io.images import save_image

    frames = output.with_name(output.stem + "_frames")
    frames.mkdir(exist_ok=True)

    def callback(info):
        if info.step % every == 0 or info.step == info.steps:
            save_image(info.image(), frames / f"step_{info.step:05d}.png")

    return frames, callback


def _report_backbone(backbone, quiet: bool) -> None:
    if quiet:
        return
    print(f"backbone: {backbone.description} [profile {backbone.profile}, {backbone.ref.precision}]", file=sys.stderr)
    if backbone.report is not None:
        print("  " + backbone.report.summary().replace("\n", "\n  "), file=sys.stderr)


def cmd_stylize(args: argparse.Namespace) -> int:
    from transfer.backbones.load import load_backbone
    from transfer.core.run import run
    from transfer.io.images import save_image
    from transfer.io.run_state import RunState

    output = Path(args.output)
    state_path = output.with_name(output.stem + ".ckpt.npz")
    check_output(output, args.overwrite or args.resume)
    spec = build_spec(args)
    resume = RunState.load(state_path) if args.resume else None
    if resume is not None:
        resume.check_matches(spec)  # before the backbone is loaded
    backbone = load_backbone(spec.backbone, seed=spec.seed)
    _report_backbone(backbone, args.quiet)
    every = args.save_every or (10 if args.progress_gif else None)
    frames, snapshot = _snapshotter(output, every) if every else (None, None)
    progress, close = progress_bar("stylize", args.quiet)
    try:
        result = run(spec, chain(progress, snapshot), state_path=state_path, resume=resume, backbone=backbone)
    finally:
        close()
    save_image(result.image, output)
    state_path.unlink(missing_ok=True)
    if args.progress_gif:
        from transfer.io.figures import progress_gif

        gif = progress_gif(sorted(frames.glob("step_*.png")), output.with_name(output.stem + "_progress.gif"))
        print(f"wrote {gif}")
    _print_summary(output, result)
    return 0


def _print_summary(output: Path, result) -> None:
    last, steps = result.history[-1], len(result.history)
    print(f"wrote {output} ({result.image.shape[1]}x{result.image.shape[0]}, {steps} steps, "
          f"{result.seconds:.1f} s, {result.seconds / max(steps, 1):.3f} s/step, "
          f"loss style {last['style']:.4g} content {last['content']:.4g} tv {last['tv']:.4g})")
