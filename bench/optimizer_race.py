"""Adam vs L-BFGS vs multi-scale on one pair at one size: loss against wall time.

Issue 5's question: which optimiser reaches the loss that Adam reaches after N steps, and
how fast?  Every method minimises the same objective (this toolkit's normalised loss) with
the same backbone; multi-scale runs are compared on their final-scale losses, which are
the same objective at the same size.  Writes bench/results/optimizer_race_<size>.json and
the final images.

  python -m bench.optimizer_race --size 512 --adam-steps 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def run(method: str, content, style, backbone, size: int, steps: int, scales: int, optimizer: str, out: Path):
    from transfer.config import StyleConfig
    from transfer.images import save_image
    from transfer.stylizer import stylize

    trace = []
    start = time.perf_counter()

    def record(info):
        trace.append({"step": info.step, "scale": info.scale, "t": time.perf_counter() - start, **info.losses})

    cfg = StyleConfig(steps=steps, optimizer=optimizer, scales=scales)
    result = stylize(content, style, backbone, cfg, record)
    save_image(result.image, out / f"race_{method}_{size}.png")
    print(f"{method}: {time.perf_counter() - start:.1f} s, final loss {trace[-1]['total']:.5g}", file=sys.stderr)
    return {"method": method, "optimizer": optimizer, "scales": scales, "steps_per_scale": steps,
            "seconds": time.perf_counter() - start, "final": trace[-1], "trace": trace}


def time_to_reach(trace: list[dict], target: float, last_scale: int) -> float | None:
    for row in trace:
        if row["scale"] == last_scale and row["total"] <= target:
            return row["t"]
    return None


def figure(out: Path, size: int, destination: Path | None = None) -> Path:
    """Content, style and each method's result with its time and loss, from a finished race."""
    from PIL import Image

    from transfer.figures import side_by_side
    from transfer.images import load_image

    data = json.loads((out / f"optimizer_race_{size}.json").read_text())
    summary = data["summary"]
    panels = [("content", load_image(SHARED / summary["content"], 256)),
              ("style", load_image(SHARED / summary["style"], 256))]
    for row in summary["rows"]:
        image = np.asarray(Image.open(out / f"race_{row['method']}_{size}.png"), np.float32) / 255.0
        panels.append((f"{row['method']}: {row['seconds']:.0f} s, loss {row['final']['total']:.4f}", image))
    return side_by_side(panels, destination or out / f"optimizer_race_{size}.jpg",
                        title=f"{size}px, backbone {summary['backbone']}, same objective for all")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--adam-steps", type=int, default=500)
    parser.add_argument("--lbfgs-steps", type=int, default=250)
    parser.add_argument("--ms-steps", type=int, default=100, help="L-BFGS iterations per scale (3 scales)")
    parser.add_argument("--content", default=str(SHARED / "tubingen.jpg"))
    parser.add_argument("--style", default=str(SHARED / "starry_night.jpg"))
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--figure-only", default=None, metavar="PATH",
                        help="draw the figure of a finished race in --out to PATH and exit")
    args = parser.parse_args(argv)
    if args.figure_only:
        print(figure(Path(args.out), args.size, Path(args.figure_only)))
        return 0

    from transfer.backbones import load_backbone
    from transfer.images import load_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    content, style = load_image(args.content, args.size), load_image(args.style, args.size)
    backbone = load_backbone(args.backbone)
    runs = [
        run("adam", content, style, backbone, args.size, args.adam_steps, 1, "adam", out),
        run("lbfgs", content, style, backbone, args.size, args.lbfgs_steps, 1, "lbfgs", out),
        run("lbfgs_3scales", content, style, backbone, args.size, args.ms_steps, 3, "lbfgs", out),
    ]
    target = runs[0]["final"]["total"]
    for r in runs:
        r["seconds_to_adam_final_loss"] = time_to_reach(r["trace"], target, r["scales"] - 1)
    summary = {"size": args.size, "content": Path(args.content).name, "style": Path(args.style).name,
               "backbone": args.backbone, "target_loss": target,
               "rows": [{k: v for k, v in r.items() if k != "trace"} for r in runs]}
    path = out / f"optimizer_race_{args.size}.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    figure(out, args.size)
    for r in summary["rows"]:
        print(f"{r['method']:>14}: {r['seconds']:7.1f} s  final {r['final']['total']:.5g}  "
              f"to Adam-{args.adam_steps} loss: {r['seconds_to_adam_final_loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
