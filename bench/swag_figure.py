"""SWAG's effect on a ResNet50 run: the README's `docs/images/swag_resnet50.jpg`.

`python -m bench.swag_figure` stylises `tubingen.jpg` with `starry_night.jpg` (both from
`../shared/images`) at 256 px on the seeded random ResNet50 control (`random-resnet50`), once
with this toolkit's Gram loss on the raw activations and once with `--style-transform swag`
(Wang et al., CVPR 2021: a softmax of each style tap before its Gram matrix); every other
field of the two run specs is the same.  Why the random control: no trained ResNet50 weights
install offline, so this shows what the transform does to the loss a ResNet defines, not what
a trained ResNet would paint.  1.5-2.2 minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.images import STYLE, shared_image, stops_on_missing_image

CONTENT = "tubingen.jpg"
BACKBONE = "random-resnet50"
DEFAULT_OUTPUT = Path("docs/images/swag_resnet50.jpg")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.swag_figure", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="longest side in pixels (default 256)")
    p.add_argument("--steps", type=int, default=150, help="Adam steps per run (default 150)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random ResNet50 (default 0)")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"figure path (default {DEFAULT_OUTPUT})")
    return p


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    from transfer import load_backbone, load_image, make_spec, resolve_backbone, stylize
    from transfer.io.figures import side_by_side

    args = _parser().parse_args(argv)
    content = load_image(shared_image(CONTENT), max_side=args.size)
    style = load_image(shared_image(STYLE), max_side=args.size)
    ref = resolve_backbone(BACKBONE)
    backbone = load_backbone(ref, seed=args.seed)
    panels = [(f"content: {CONTENT}", content), (f"style: {STYLE}", style)]
    for transform, label in ((None, "Gram of raw activations"), ("swag", "--style-transform swag")):
        spec = make_spec(steps=args.steps, backbone=ref, style_transform=transform, seed=args.seed,
                         optimizer="adam", plateau=0)  # the recorded figure's settings
        start = time.perf_counter()
        result = stylize(content, [(style, 1.0)], backbone, spec)
        seconds = time.perf_counter() - start
        last = result.history[-1]
        print(f"{label}: {seconds:.0f} s, final style {last['style']:.4g}, content {last['content']:.4g}")
        panels.append((f"{BACKBONE}: {label}", result.image))
    title = f"{BACKBONE} (seed {args.seed}, untrained), {args.size} px, {args.steps} Adam steps each"
    side_by_side(panels, args.output, title=title, panel_height=2.6)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
