"""`detstyle stylize`: parse -> spec -> `transfer.core.run.run` -> write the picture and a summary."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from transfer.cli.options import add_run_options, chain, positive_int, progress_bar, resolved_precision, spec_from_args
from transfer.errors import DivergenceError, OutputExists, UsageError

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


def build_spec(args: argparse.Namespace):
    """The run spec of a `stylize` command line: input digests, backbone reference, options."""
    from transfer.backbones.load import resolve_backbone
    from transfer.io.images import image_ref

    style_options = ([(args.style, 1.0)] if args.style else []) + list(args.styles)
    if not style_options:
        raise UsageError("no style image: give STYLE or --style PATH[:WEIGHT]")
    content = image_ref(args.content)
    styles = [image_ref(path, weight) for path, weight in style_options]
    backbone = resolve_backbone(args.backbone, profile=args.profile, precision=resolved_precision(args.precision))
    return spec_from_args(args, steps=300, content=content, styles=styles, backbone=backbone)


def _snapshotter(frames: Path, every: int):
    """Callback writing FRAMES/step_00010.png every `every` steps."""
    from transfer.io.images import save_image

    frames.mkdir(exist_ok=True)

    def callback(info):
        if info.step % every == 0 or info.step == info.steps:
            save_image(info.image(), frames / f"step_{info.step:05d}.png")

    return callback


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """Every path a `stylize` run writes, claimed before the run starts."""

    image: Path
    state: Path  # OUTSTEM.ckpt.npz: the resumable state while the run works
    frames: Path | None
    gif: Path | None

    @classmethod
    def claim(cls, args: argparse.Namespace) -> _Outputs:
        from transfer.io.outputs import claim_file, claim_side_output

        image = claim_file(args.output, overwrite=args.overwrite, suffixes=OUTPUT_SUFFIXES)
        state = image.with_name(image.stem + ".ckpt.npz")
        if state.exists() and not (args.resume or args.overwrite):
            raise OutputExists(f"{state}: the resumable state of an interrupted run is here; continue it with "
                               "--resume, or pass --overwrite to discard it")
        snapshots = args.save_every or args.progress_gif
        frames = image.with_name(image.stem + "_frames") if snapshots else None
        gif = image.with_name(image.stem + "_progress.gif") if args.progress_gif else None
        for path, folder in ((frames, True), (gif, False)):
            if path is not None:
                claim_side_output(path, overwrite=args.overwrite or args.resume, folder=folder)
        return cls(image, state, frames, gif)


def _report_backbone(backbone, quiet: bool) -> None:
    if quiet:
        return
    print(f"backbone: {backbone.description} [profile {backbone.profile}, {backbone.ref.precision}]", file=sys.stderr)
    if backbone.report is not None:
        print("  " + backbone.report.summary().replace("\n", "\n  "), file=sys.stderr)


def cmd_stylize(args: argparse.Namespace) -> int:
    from transfer.backbones.load import load_backbone
    from transfer.core.run import check_output_size, run
    from transfer.io.outputs import save_result
    from transfer.io.run_state import RunState

    outputs = _Outputs.claim(args)
    spec = build_spec(args)
    check_output_size(spec)
    resume = RunState.load(outputs.state) if args.resume else None
    if resume is not None:
        resume.check_matches(spec)  # before the backbone is loaded
    backbone = load_backbone(spec.backbone, seed=spec.seed)
    _report_backbone(backbone, args.quiet)
    every = args.save_every or (10 if args.progress_gif else None)
    snapshot = _snapshotter(outputs.frames, every) if every else None
    progress, close = progress_bar("stylize", args.quiet)
    try:
        result = run(spec, chain(progress, snapshot), state_path=outputs.state, resume=resume, backbone=backbone)
    except DivergenceError as exc:
        outputs.state.unlink(missing_ok=True)  # resuming would diverge the same way
        raise _with_last_good(exc, outputs.image) from None
    finally:
        close()
    save_result(result.image, outputs.image, overwrite=args.overwrite)
    outputs.state.unlink(missing_ok=True)
    if outputs.gif is not None:
        from transfer.io.figures import progress_gif

        print(f"wrote {progress_gif(sorted(outputs.frames.glob('step_*.png')), outputs.gif)}")
    _print_summary(outputs.image, result)
    return 0


def _with_last_good(exc: DivergenceError, output: Path) -> DivergenceError:
    """The divergence error, with the last good image written next to OUTPUT (and its path said)."""
    from transfer.io.outputs import keep_elsewhere

    kept = keep_elsewhere(exc.last_good_image, output, "last-good")
    what = "the start image" if exc.step <= 1 else f"step {exc.step - 1}"
    where = f"the last good image ({what}) was written to {kept}" if kept else "the last good image could not be written"
    return DivergenceError(f"{exc}; {where}", exc.last_good_image, exc.step)


def _print_summary(output: Path, result) -> None:
    last, steps = result.history[-1], len(result.history)
    ended = " (the loss reached a plateau)" if result.stop_reason == "plateau" else ""
    print(f"wrote {output} ({result.image.shape[1]}x{result.image.shape[0]}, {steps} steps{ended}, "
          f"{result.seconds:.1f} s, {result.seconds / max(steps, 1):.3f} s/step, "
          f"loss style {last['style']:.4g} content {last['content']:.4g} tv {last['tv']:.4g})")
