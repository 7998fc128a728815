"""`detstyle demo`: the embedded defaults (no files needed) -> out/demo.png and out/demo_figure.png."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transfer.cli.options import add_run_options, progress_bar, resolved_precision, spec_from_args

#: The two results the demo shows side by side: the SSD article's taps, then the toolkit's default.
DEMO_LAYERS = ("article", "gatys")
DEMO_STEPS = 120


def add_command(sub) -> None:
    p = sub.add_parser("demo", help="run the embedded demo (no files needed)",
                       description="Stylise matplotlib's bundled grace_hopper.jpg with a generated style "
                                   "(or --style-image PATH), once with the article's layers and once with gatys, "
                                   "and write OUT_DIR/demo.png and OUT_DIR/demo_figure.png.")
    p.add_argument("--out-dir", default="out", help="output directory (default out/, created)")
    p.add_argument("--overwrite", action="store_true", help="replace the demo's files in OUT_DIR if they exist")
    p.add_argument("--content-image", default=None, help="content image (default: matplotlib's grace_hopper.jpg)")
    p.add_argument("--style-image", default=None, help="style image (default: generated swirl painting)")
    add_run_options(p, size=256, steps=DEMO_STEPS)
    p.set_defaults(func=cmd_demo)


def _backbone_or_control(args):
    """The chosen backbone; for the default one, the random control (with a notice) when it is missing."""
    from transfer.backbones.load import load_backbone, resolve_backbone
    from transfer.errors import DetstyleError
    from weights.errors import WeightsError

    try:
        ref = resolve_backbone(args.backbone, profile=args.profile, precision=resolved_precision(args.precision))
    except (DetstyleError, WeightsError) as exc:
        if args.backbone != "vgg16-mri":
            raise
        print(f"notice: {exc}\nnotice: falling back to the random control backbone", file=sys.stderr)
        ref = resolve_backbone("random", profile=args.profile, precision=resolved_precision(args.precision))
    return load_backbone(ref, seed=args.seed)


def _inputs(args):
    from transfer.core.run import check_output_pixels
    from transfer.io.images import array_ref, image_ref, load_image
    from transfer.io.samples import generated_style, grace_hopper_path

    content_path = args.content_image or grace_hopper_path()
    check_output_pixels(content_path, args.size, args.tile)
    content = load_image(content_path, args.size)
    if args.style_image:
        return content, image_ref(content_path), load_image(args.style_image, args.size), image_ref(args.style_image)
    style = generated_style(args.size, args.seed)
    return content, image_ref(content_path), style, array_ref(style, f"generated swirl, seed {args.seed}")


def _claim_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The demo's four files, checked before any work (the folder itself is made at the first write)."""
    from transfer.io.outputs import check_can_create, claim_file

    out_dir = Path(args.out_dir)
    check_can_create(out_dir)
    names = {layers: f"demo_{layers}.png" for layers in DEMO_LAYERS} | {"demo": "demo.png", "figure": "demo_figure.png"}
    if not out_dir.is_dir():
        return {key: out_dir / name for key, name in names.items()}
    return {key: claim_file(out_dir / name, overwrite=args.overwrite) for key, name in names.items()}


def cmd_demo(args: argparse.Namespace) -> int:
    from transfer.core.stylizer import stylize
    from transfer.errors import UsageError
    from transfer.io.figures import side_by_side
    from transfer.io.outputs import make_folder, save_result

    if args.recipe:
        raise UsageError("--recipe fixes the layers, but the demo compares two layer presets; "
                         "use `detstyle stylize --recipe` instead")
    outputs = _claim_outputs(args)
    content, content_ref, style, style_ref = _inputs(args)
    backbone = _backbone_or_control(args)
    results = {}
    for layers in DEMO_LAYERS:
        spec = spec_from_args(args, steps=DEMO_STEPS, content=content_ref, styles=[style_ref], layers=layers,
                              backbone=backbone.ref)
        progress, close = progress_bar(f"demo [{layers}]", args.quiet)
        try:
            results[layers] = stylize(content, style, backbone, spec, progress)
        finally:
            close()
    make_folder(Path(args.out_dir))  # every file is written once both runs have finished
    for layers in DEMO_LAYERS:
        save_result(results[layers].image, outputs[layers], overwrite=args.overwrite)
    save_result(results[args.layers if args.layers in results else "gatys"].image, outputs["demo"],
                overwrite=args.overwrite)
    steps, spec = len(results["gatys"].history), results["gatys"].spec
    figure = side_by_side(
        [("content", content), ("style", style),
         ("article: first five layers / block5_conv2", results["article"].image),
         ("gatys: block1..5_conv1 / block5_conv2", results["gatys"].image)],
        outputs["figure"],
        title=f"backbone {backbone.name} · {args.size}px · {steps} {spec.optimizer or spec.schedule} steps · seed {args.seed}",
    )
    seconds = sum(r.seconds for r in results.values())
    print(f"wrote {outputs['demo']} and {figure} ({seconds:.1f} s optimising, "
          f"{seconds / (2 * steps):.3f} s/step)")
    return 0
