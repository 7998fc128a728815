"""Issue 21 §2: each lever on the tutorial's loss, alone and combined, against fp32 and bf16 baselines.

    python -m bench.levers [--size 512] [--methods fast pyramid prox ...] [--precision bf16]

The seed-000 (TF tutorial) loop's curve at this size is recorded once
(`bench/results/tutorial_curve_<size>.json`, `python -m bench.reference_curve`); its loss after m
steps does not depend on the machine's load, its time does.  So, in one run:

1. `--timing-steps` tutorial steps are timed *now*, in fp32 and with the backbone in bf16 (the
   fair baseline for bf16 methods: the same loop, Grams and losses in fp32).  The tutorial's time
   to step m is *extrapolated* as `first step + (m - 1) x median step`.  The bf16 loop's losses
   are taken as the fp32 curve's (within 0.5 % step for step, performance-facts.md); its loss
   after the timed steps is recorded next to the fp32 one as a check.
2. every method (`METHODS`, all minimising the tutorial's loss through `stylize`) runs with each
   `--precision`, scored with the seed-000 loss every `--score-every` iterations (clock paused),
   until it reaches the tutorial's 1000-step loss, spends its budget, or passes the floor's time
   (1/5 of the fp32 tutorial's extrapolated time to 1000 steps: a method still above the loss by
   then has missed the floor, so running on measures nothing the issue asks).
3. per method and milestone m (100, 250, 500, 750, 1000 tutorial steps): seconds to the
   tutorial's loss after m steps, and the ratios against the fp32 and the bf16 tutorial loop.

Writes `bench/results/levers_<size>.json` (one writer, `to_json`) and prints a Markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.images import stops_on_missing_image  # noqa: E402
from bench.reference_curve import MILESTONES, first_time_at_or_below, matching_curve, target_at  # noqa: E402
from bench.report import to_json  # noqa: E402  (the one writer of results files)

RESULTS = Path(__file__).resolve().parent / "results"

#: name -> `make_spec` options of a method minimising the tutorial's loss (the lever it isolates in the name).
#: The exact-TV proximal method is measured on its own by `bench.proximal_trial` (256 px): it lost to `fast`
#: at every budget there, so it is not a `stylize` schedule and not raced here.
METHODS: dict[str, dict] = {
    "fast": {"recipe": "tutorial", "schedule": "fast", "steps": 500},  # L-BFGS, smoothed TV (issue 8)
    "pyramid": {"recipe": "tutorial", "schedule": "pyramid", "steps": 1000},  # crowsonkb's pyramid, Adam
}
#: The floor: the tutorial's 1000-step loss within this share of the fp32 tutorial's time.
FLOOR_SHARE = 0.2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def time_baselines(content, style, backbone, yardstick, steps: int) -> dict:
    """The tutorial loop timed now in fp32 and bf16: first step, median step, loss after `steps`."""
    from bench.headline import time_tutorial
    from transfer.backbones.precision import with_precision

    timings = {}
    for precision in ("fp32", "bf16"):
        first_s, step_s, loss = time_tutorial(content, style, with_precision(backbone, precision), yardstick, steps)
        timings[precision] = {"first_step_seconds": first_s, "step_seconds": step_s, "loss_after_timed_steps": loss}
        log(f"  tutorial {precision}: first step {first_s:.1f} s, then {step_s:.2f} s/step")
    return timings


def tutorial_seconds(timing: dict, steps: int) -> float:
    """Extrapolated: the first step (set-up and tracing included) plus the median step for the rest."""
    return timing["first_step_seconds"] + (steps - 1) * timing["step_seconds"]


def run_method(name: str, precision: str, content, style, backbone, yardstick, target: float, cap: float,
               score_every: int):
    """One method under a probe scored by the tutorial's loss; the probe stops it at the target or cap."""
    from bench import ours
    from bench.probe import Probe
    from transfer.backbones.precision import with_precision

    probe = Probe(yardstick=yardstick, eval_every=score_every, target=target, max_seconds=cap)
    loop = ours.runner(METHODS[name])
    probe.run(lambda p: loop(content, style, with_precision(backbone, precision), p))
    if probe.error:
        raise RuntimeError(f"{name} ({precision}) failed: {probe.error}")
    return probe


def milestone_rows(curve: dict, timings: dict, ours: list) -> list[dict]:
    """Per milestone: the loss, both baselines' extrapolated seconds, ours and the two ratios."""
    rows = []
    for m in MILESTONES:
        loss = target_at(curve, m)
        if loss is None:
            continue
        hit = first_time_at_or_below(ours, loss)
        fp32, bf16 = (tutorial_seconds(timings[p], m) for p in ("fp32", "bf16"))
        rows.append({"tutorial_steps": m, "loss": loss, "tutorial_fp32_seconds": fp32, "tutorial_bf16_seconds": bf16,
                     "seconds": hit[0] if hit else None, "iterations": hit[1] if hit else None,
                     "vs_fp32": fp32 / hit[0] if hit else None, "vs_bf16": bf16 / hit[0] if hit else None})
    return rows


def markdown(record: dict) -> str:
    lines = ["| method | precision | " + " | ".join(f"{m} steps" for m in record["milestones"]) + " | final loss |",
             "|---|---|" + "---:|" * len(record["milestones"]) + "---:|"]
    for key, run in record["runs"].items():
        name, precision = key.split("/")
        cells = []
        for row in run["milestones"]:
            cells.append(f"{row['seconds']:.0f} s ({row['vs_fp32']:.1f}× / {row['vs_bf16']:.1f}×)"
                         if row["seconds"] else "not reached")
        lines.append(f"| {name} | {precision} | " + " | ".join(cells) + f" | {run['final_loss'] / 1e6:.3f} M |")
    return "\n".join(lines)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["bf16"])
    parser.add_argument("--score-every", type=int, default=5)
    parser.add_argument("--timing-steps", type=int, default=4)
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    from bench import images
    from bench.hardware import device_info
    from bench.probe import load_now
    from bench.yardstick import Yardstick
    from transfer.backbones.load import load_backbone

    backbone = load_backbone(args.backbone)
    curve, why_not = matching_curve(args.size, backbone.name, max(MILESTONES))
    if curve is None:
        log(f"error: {why_not}")
        return 1
    content, style = images.pair(args.size)
    yardstick = Yardstick(content, style, backbone)
    target = target_at(curve, max(MILESTONES))
    log(f"timing {args.timing_steps} tutorial steps at {args.size}² in fp32 and bf16")
    timings = time_baselines(content, style, backbone, yardstick, args.timing_steps)
    cap = FLOOR_SHARE * tutorial_seconds(timings["fp32"], max(MILESTONES))
    record = {"size": args.size, "backbone": backbone.name, "images": images.describe(), "target_1000": target,
              "score_every": args.score_every, "timing_steps": args.timing_steps, "floor_seconds": cap,
              "milestones": list(MILESTONES),
              "methods": {m: METHODS[m] for m in args.methods}, "tutorial_now": timings,
              "recorded_loss_after_timed_steps": curve["own_loss_before_step"][args.timing_steps],
              "device": device_info(), "runs": {}}
    for name in args.methods:
        for precision in args.precision:
            log(f"{name} ({precision}), stopped at the 1000-step loss or after {cap:.0f} s")
            probe = run_method(name, precision, content, style, backbone, yardstick, target, cap, args.score_every)
            record["runs"][f"{name}/{precision}"] = {
                "seconds": probe.times[-1], "iterations": len(probe.times), "evaluations": probe.evaluations,
                "stop_reason": probe.stop_reason, "final_loss": probe.curve[-1][2], "final_terms": probe.last_terms,
                "load_average": probe.load, "milestones": milestone_rows(curve, timings, probe.curve),
                "curve": [list(point) for point in probe.curve]}
            log(f"  {probe.curve[-1][2]:,.0f} after {len(probe.times)} iterations, {probe.times[-1]:.0f} s "
                f"({probe.stop_reason})")
    record["load_average_end"] = load_now()
    record["wall_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"levers_{args.size}.json"
    path.write_text(to_json(record))
    print(markdown(record))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
