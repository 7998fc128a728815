"""Issue 8's headline: how long `--schedule fast` takes to reach the seed-000 loop's losses at 512².

    python -m bench.headline [--size 512] [--precision bf16 fp32] [--steps 500]
                             [--figure docs/images/fast_schedule_512.jpg --reference-image PNG]

The seed-000 (TF tutorial) loop needs 35-60 min for its 1000 steps at 512² here, so its curve
is recorded once (`python -m bench.reference_curve --size 512 --steps 1000`, kept in
`bench/results/tutorial_curve_512.json`).  This command, in one run:

1. times `--timing-steps` tutorial steps *now*, so the tutorial's time to step m is estimated on
   today's machine load as `first step + (m - 1) x median step` (the recorded run's own clock is
   reported next to it);
2. runs the fast schedule for each `--precision`, scoring the image with the seed-000 loss every
   `--score-every` L-BFGS iterations, clock paused (scoring is the bench's cost, not ours);
3. for milestones m = 100, 250, 500, 750, 1000 tutorial steps: the tutorial's loss at m, the
   tutorial's time to it, ours, and the ratio.  A milestone ours does not reach says so.

The defaults are those of the committed `bench/results/fast_schedule_512.json` (a test holds
them together).  Writes `bench/results/fast_schedule_<size>.json` and prints a Markdown table.  With
`--reference-image` (a PNG `bench.reference_curve` saved) it also writes a side-by-side figure of
the tutorial's image and the fast result, both with their seed-000 loss.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.images import require_file, stops_on_missing_image  # noqa: E402
from bench.reference_curve import MILESTONES, matching_curve, milestones, target_at  # noqa: E402
from bench.report import to_json  # noqa: E402  (the one writer of results files)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def time_tutorial(content, style, backbone, yardstick, steps: int) -> tuple[float, float, float]:
    """(first step s, median later step s, loss after `steps`) of the seed-000 loop, measured now."""
    from bench import reference_tutorial
    from bench.probe import Probe

    probe = Probe(max_steps=steps, yardstick=yardstick, eval_every=steps)
    probe.run(lambda p: reference_tutorial.run(content, style, backbone, p))
    if probe.error or not probe.curve:
        raise RuntimeError(f"the tutorial loop failed: {probe.error}")
    return probe.times[0], probe.step_ms() / 1000.0, probe.curve[-1][2]


def run_fast(content, style, backbone, yardstick, steps: int, score_every: int, target: float):
    """The fast schedule under a probe: (probe, last scored image)."""
    from bench import ours
    from bench.probe import Probe

    last: dict = {}

    class KeepingProbe(Probe):
        def score(self, image_fn, now=None):
            def keep():
                last["image"] = image_fn()
                return last["image"]
            return super().score(keep, now)

    probe = KeepingProbe(yardstick=yardstick, eval_every=score_every, target=target)
    loop = ours.runner({"recipe": "tutorial", "schedule": "fast", "steps": steps})
    probe.run(lambda p: loop(content, style, backbone, p))
    if probe.error:
        raise RuntimeError(f"the fast schedule failed: {probe.error}")
    return probe, last.get("image")


def markdown(record: dict) -> str:
    """The milestone table; the tutorial's seconds are extrapolated from its timed steps, and say so."""
    lines = ["| tutorial steps | seed-000 loss | tutorial s (extrapolated) | " +
             " | ".join(f"fast {p} s | ratio" for p in record["runs"]) + " |",
             "|---:|---:|---:|" + "---:|---:|" * len(record["runs"])]
    for i, m in enumerate(record["runs"][next(iter(record["runs"]))]["milestones"]):
        cells = [f"{m['tutorial_steps']}", f"{m['loss'] / 1e6:.3f} M", f"{m['tutorial_seconds_estimated']:.0f}"]
        for run in record["runs"].values():
            row = run["milestones"][i]
            cells += [f"{row['ours_seconds']:.0f}", f"{row['speedup']:.1f}×"] if row["ours_seconds"] else \
                ["not reached", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)



def new_record(args: argparse.Namespace, backbone_name: str, pair: dict, target: float, first_s: float,
               step_s: float, loss_now: float, curve: dict) -> dict:
    """The record before any run: settings, the target, and the tutorial's timing now and when recorded."""
    return {
        "size": args.size, "backbone": backbone_name, "images": pair, "steps_budget": args.steps,
        "score_every": args.score_every, "target_1000": target,
        "tutorial_now": {"timed_steps": args.timing_steps, "first_step_seconds": first_s, "step_seconds": step_s,
                         "loss_after_timed_steps": loss_now,
                         "recorded_loss_after_timed_steps": curve["own_loss_before_step"][args.timing_steps]},
        "tutorial_recorded": {"seconds_to_1000": curve["seconds"][-1], "load_average": curve.get("load_average")},
        "runs": {},
    }


def run_record(probe, rows: list[dict]) -> dict:
    """One precision's entry: its clock, final loss, milestones and scored curve (seconds to 0.01 s)."""
    return {
        "seconds": probe.times[-1], "iterations": len(probe.times), "stop_reason": probe.stop_reason,
        "final_loss": probe.curve[-1][2], "final_terms": probe.last_terms, "load_average": probe.load,
        "milestones": rows, "curve": [[round(t, 2), s, loss] for t, s, loss in probe.curve],
    }


def build_parser() -> argparse.ArgumentParser:
    """The options; their defaults reproduce the committed `fast_schedule_512.json`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=500, help="the fast schedule's budget (L-BFGS iterations)")
    parser.add_argument("--score-every", type=int, default=20)
    parser.add_argument("--timing-steps", type=int, default=4, help="tutorial steps timed now (first = setup)")
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, default=None, help="side-by-side JPEG (needs --reference-image)")
    parser.add_argument("--reference-image", type=Path, default=None,
                        help="the tutorial's image after 1000 steps (written by bench.reference_curve)")
    return parser


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.figure and args.reference_image:  # checked now, not after half an hour of runs
        require_file(args.reference_image)

    from bench import images
    from bench.probe import load_now
    from bench.yardstick import Yardstick
    from transfer.backbones.load import load_backbone
    from transfer.backbones.precision import with_precision

    backbone = load_backbone(args.backbone)
    curve, why_not = matching_curve(args.size, backbone.name, max(MILESTONES))
    if curve is None:
        log(f"error: {why_not} (35-60 min at 512²)")
        return 1
    content, style = images.pair(args.size)
    yardstick = Yardstick(content, style, backbone)
    target = target_at(curve, max(MILESTONES))

    log(f"timing {args.timing_steps} seed-000 steps at {args.size}² now")
    first_s, step_s, loss_now = time_tutorial(content, style, backbone, yardstick, args.timing_steps)
    log(f"  first step {first_s:.1f} s, then {step_s:.2f} s/step")
    record = new_record(args, backbone.name, images.describe(), target, first_s, step_s, loss_now, curve)
    finals = {}
    for precision in args.precision:
        log(f"fast schedule, {precision}, budget {args.steps} iterations")
        probe, image = run_fast(content, style, with_precision(backbone, precision), yardstick, args.steps,
                                args.score_every, target)
        rows = milestones(curve, first_s, step_s, probe.curve)
        record["runs"][precision] = run_record(probe, rows)
        finals[precision] = (image, probe.curve[-1][2], probe.times[-1])
        log(f"  {precision}: {probe.curve[-1][2]:,.0f} after {len(probe.times)} iterations, {probe.times[-1]:.0f} s")
    record["load_average_end"] = load_now()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fast_schedule_{args.size}.json"
    path.write_text(to_json(record))
    table = markdown(record)
    (args.out / f"fast_schedule_{args.size}.md").write_text(table + "\n")
    print(table)
    log(f"wrote {path}")
    if args.figure and args.reference_image:
        write_figure(args, backbone.name, content, style, yardstick, finals)
    return 0


def write_figure(args, backbone_name: str, content, style, yardstick, finals: dict) -> None:
    import numpy as np
    from PIL import Image

    from transfer.io.figures import side_by_side

    reference = np.asarray(Image.open(args.reference_image).convert("RGB"), np.float32) / 255.0
    panels = [("content", content), ("style", style),
              (f"seed-000 loop, 1000 steps\nloss {yardstick(reference) / 1e6:.3f} M", reference)]
    for precision, (image, loss, seconds) in finals.items():
        panels.append((f"--schedule fast ({precision}), {seconds:.0f} s\nloss {loss / 1e6:.3f} M", image))
    png = args.figure.with_suffix(".png")
    side_by_side(panels, png, title=f"{args.size}² · backbone {backbone_name} · seed-000 loss for all",
                 panel_height=3.0)
    Image.open(png).convert("RGB").save(args.figure, quality=85)
    png.unlink()
    log(f"wrote {args.figure}")


if __name__ == "__main__":
    sys.exit(main())
