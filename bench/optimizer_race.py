"""Adam vs L-BFGS vs multi-scale on one pair at one size: loss against wall time.

Issue 5's question: which optimiser reaches the loss that Adam reaches after N steps, and
how fast?  Every method minimises the same objective (this toolkit's normalised loss) with
the same backbone; multi-scale runs are compared on their final-scale losses, which are
the same objective at the same size.  Writes bench/results/optimizer_race_<size>.json and
the final images.  Times to a loss come from every step; the file keeps every `TRACE_EVERY`-th
step of each trace (and the last), so it stays small.  The images are `../shared/images`
(tubingen × starry_night) unless `--content` / `--style` say otherwise; a missing one stops the
race with its path, never a substitute.

  python -m bench.optimizer_race --size 512 --adam-steps 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench import images
from bench.report import to_json  # the one writer of results files

#: The committed file keeps steps 1, 1 + TRACE_EVERY, ... of each trace, and its last step.
TRACE_EVERY = 5


def run(method: str, content, style, backbone, size: int, steps: int, scales: int, optimizer: str, out: Path):
    from transfer.core.spec import make_spec
    from transfer.io.images import save_image
    from transfer.core.stylizer import stylize

    trace = []
    start = time.perf_counter()

    def record(info):
        trace.append({"step": info.step, "scale": info.stage, "t": time.perf_counter() - start, **info.losses})

    cfg = make_spec(steps=steps, optimizer=optimizer, scales=scales)
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


def thin(trace: list[dict], every: int = TRACE_EVERY) -> list[dict]:
    """Steps 1, 1 + every, ... and the last: the curve's shape and its end, at a fifth of the size."""
    return [row for i, row in enumerate(trace) if (row["step"] - 1) % every == 0 or i == len(trace) - 1]


def race_record(size: int, content: str, style: str, backbone: str, runs: list[dict]) -> dict:
    """The file's content from full traces: times to Adam's final loss first, then thinned traces."""
    target = runs[0]["final"]["total"]
    kept = [{**r, "trace": thin(r["trace"]),
             "seconds_to_adam_final_loss": time_to_reach(r["trace"], target, r["scales"] - 1)} for r in runs]
    summary = {"size": size, "content": content, "style": style, "backbone": backbone, "target_loss": target,
               "trace_every": TRACE_EVERY, "rows": [{k: v for k, v in r.items() if k != "trace"} for r in kept]}
    return {"summary": summary, "runs": kept}



def figure(out: Path, size: int, destination: Path | None = None) -> Path:
    """Content, style and each method's result with its time and loss, from a finished race."""
    from PIL import Image

    from transfer.io.figures import side_by_side
    from transfer.io.images import load_image

    data = json.loads((out / f"optimizer_race_{size}.json").read_text())
    summary = data["summary"]
    panels = [("content", load_image(images.shared_image(summary["content"]), 256)),
              ("style", load_image(images.shared_image(summary["style"]), 256))]
    for row in summary["rows"]:
        image = np.asarray(Image.open(out / f"race_{row['method']}_{size}.png"), np.float32) / 255.0
        panels.append((f"{row['method']}: {row['seconds']:.0f} s, loss {row['final']['total']:.4f}", image))
    return side_by_side(panels, destination or out / f"optimizer_race_{size}.jpg",
                        title=f"{size}px, backbone {summary['backbone']}, same objective for all")


@images.stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--adam-steps", type=int, default=500)
    parser.add_argument("--lbfgs-steps", type=int, default=250)
    parser.add_argument("--ms-steps", type=int, default=100, help="L-BFGS iterations per scale (3 scales)")
    parser.add_argument("--content", type=Path, default=None, help="default: ../shared/images/tubingen.jpg")
    parser.add_argument("--style", type=Path, default=None, help=f"default: ../shared/images/{images.STYLE}")
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--figure-only", default=None, metavar="PATH",
                        help="draw the figure of a finished race in --out to PATH and exit")
    args = parser.parse_args(argv)
    if args.figure_only:
        print(figure(Path(args.out), args.size, Path(args.figure_only)))
        return 0
    content_path = images.require_file(args.content) if args.content else images.shared_image("tubingen.jpg")
    style_path = images.require_file(args.style) if args.style else images.shared_image(images.STYLE)

    from transfer.backbones.load import load_backbone
    from transfer.io.images import load_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    content, style = load_image(content_path, args.size), load_image(style_path, args.size)
    backbone = load_backbone(args.backbone)
    runs = [
        run("adam", content, style, backbone, args.size, args.adam_steps, 1, "adam", out),
        run("lbfgs", content, style, backbone, args.size, args.lbfgs_steps, 1, "lbfgs", out),
        run("lbfgs_3scales", content, style, backbone, args.size, args.ms_steps, 3, "lbfgs", out),
    ]
    record = race_record(args.size, content_path.name, style_path.name, args.backbone, runs)
    path = out / f"optimizer_race_{args.size}.json"
    path.write_text(to_json(record))
    figure(out, args.size)
    for r in record["summary"]["rows"]:
        print(f"{r['method']:>14}: {r['seconds']:7.1f} s  final {r['final']['total']:.5g}  "
              f"to Adam-{args.adam_steps} loss: {r['seconds_to_adam_final_loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
