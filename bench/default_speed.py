"""Issue 21 §1: how much sooner a candidate default reaches the loss today's default reaches.

    python -m bench.default_speed [--size 512] [--pairs C:S ...] [--candidates NAME ...]

For each pair (`bench.images.SPEED_PAIRS` unless `--pairs`; every method gets the very same
arrays, see `bench.images.named_pair`), in one process:

1. the *baseline* — today's default until issue 21: Adam, step 0.02, 300 steps, fp32 — runs to
   its end; its image is scored every `--score-every` steps by the default objective in fp32
   (`bench.yardstick.ObjectiveYardstick`, clock paused).  Its last score is the pair's target.
2. each candidate (`CANDIDATES`: run-spec options and a precision) runs until a score reaches
   the target, its own budget ends, or `--cap-seconds` pass; scored every `--score-every`
   steps the same way (a pyramid's coarse scales are not scored: another size, another loss).
3. per pair: each method's seconds to the target, the ratio to the baseline's seconds, its
   final score, and the quality metrics of its final image (`transfer.quality.metrics.score`:
   judge Gram and SWD style distances and palette distance, lower is closer to the style;
   luminance SSIM and edge correlation with the photo, higher keeps more of it).

Writes `bench/results/default_speed_<size>.json` (one writer, `to_json`) and prints a Markdown
table.  Ratios are from one run: absolute times on this shared machine move 2x with its load.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import images  # noqa: E402
from bench.report import to_json  # noqa: E402  (the one writer of results files)

RESULTS = Path(__file__).resolve().parent / "results"

#: Today's default before issue 21, spelled out (DEFAULTS may move; this must not).
BASELINE = {"spec": {"optimizer": "adam", "learning_rate": 0.02, "steps": 300, "scales": 1, "plateau": 0},
            "precision": "fp32"}
#: name -> run-spec options (`steps` is the candidate's own budget) and the backbone's precision.
#: `run_to_end`: the candidate runs to its own end (budget or plateau) so its final picture and
#: total time are what a user gets; the others stop at the target.
CANDIDATES: dict[str, dict] = {
    "default": {"spec": {}, "precision": "auto", "run_to_end": True},  # what `detstyle stylize` runs now
    "adam-bf16": {"spec": {"optimizer": "adam", "learning_rate": 0.02, "steps": 300, "plateau": 0},
                  "precision": "bf16"},  # the precision lever alone
    "lbfgs-fp32": {"spec": {"optimizer": "lbfgs", "steps": 300, "plateau": 0}, "precision": "fp32"},  # the optimiser alone
    "lbfgs-bf16": {"spec": {"optimizer": "lbfgs", "steps": 300, "plateau": 0}, "precision": "bf16"},
    "pyramid-bf16": {"spec": {"schedule": "pyramid", "steps": 600}, "precision": "bf16"},  # crowsonkb's pyramid
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_precision(precision: str) -> str:
    """`auto` is what `detstyle stylize` picks on this machine; fp32 and bf16 are themselves."""
    if precision != "auto":
        return precision
    from transfer.backbones.precision import automatic_precision

    return automatic_precision()


def run_method(method: dict, content, style, backbone, yardstick, target: float | None, score_every: int,
               cap_seconds: float | None):
    """One method under a probe: (probe, its last image)."""
    from bench.probe import Probe
    from transfer.backbones.precision import with_precision
    from transfer.core.spec import make_spec
    from transfer.core.stylizer import stylize

    spec = make_spec(**method["spec"])
    net = with_precision(backbone, resolve_precision(method["precision"]))
    probe = Probe(yardstick=yardstick, eval_every=score_every, target=target, max_seconds=cap_seconds,
                  stop_at_target=not method.get("run_to_end", False))
    final: dict = {}

    def loop(p: Probe) -> None:
        result = stylize(content, style, net, spec, callback=lambda info: p.step(info.image, info.losses["total"]))
        final["image"] = result.image
        p.stop_reason = result.stop_reason  # budget or plateau: how the run ended by itself
        p.score(lambda: result.image)  # the returned picture, scored whatever step it ended on

    probe.run(loop)
    if probe.error:
        raise RuntimeError(f"{method}: {probe.error}")
    return probe, final.get("image")


def method_record(method: dict, probe, image, content, style, baseline_seconds: float | None) -> dict:
    """Seconds to the target, the ratio, the final score and the quality metrics of the last image."""
    from transfer.quality.metrics import score

    reached = probe.reached[0] if probe.reached else None
    row = {"precision": resolve_precision(method["precision"]),
           "seconds_to_target": reached, "steps_to_target": probe.reached[1] if probe.reached else None,
           "speedup": baseline_seconds / reached if reached and baseline_seconds else None,
           "seconds": probe.times[-1] if probe.times else None, "steps": len(probe.times),
           "final_loss": probe.curve[-1][2] if probe.curve else None, "stop_reason": probe.stop_reason,
           "load_average": probe.load, "curve": [list(point) for point in probe.curve]}
    if image is not None:
        row["quality"] = {k: v for k, v in score(image, content, style).items()}
    return row


def run_pair(name: str, args, backbone) -> dict:
    from bench.yardstick import ObjectiveYardstick
    from transfer.core.spec import make_spec

    content, style = images.named_pair(name, args.size)
    yardstick = ObjectiveYardstick(content, style, backbone, make_spec(**BASELINE["spec"]))
    log(f"{name}: baseline (Adam 0.02, 300 steps, fp32)")
    probe, image = run_method(BASELINE, content, style, backbone, yardstick, None, args.score_every, None)
    target, base_seconds = probe.curve[-1][2], probe.times[-1]
    record = {"target": target, "baseline": method_record(BASELINE, probe, image, content, style, None), "candidates": {}}
    record["baseline"]["seconds_to_target"] = base_seconds
    log(f"  target {target:.5f} after {base_seconds:.0f} s")
    for candidate in args.candidates:
        probe, image = run_method(CANDIDATES[candidate], content, style, backbone, yardstick, target,
                                  args.score_every, args.cap_seconds)
        row = method_record(CANDIDATES[candidate], probe, image, content, style, base_seconds)
        record["candidates"][candidate] = row
        log(f"  {candidate}: {row['seconds_to_target'] or 'not reached'} s to target "
            f"({row['speedup'] and round(row['speedup'], 2)}x), final {row['final_loss']:.5f}")
    return record


def markdown(record: dict) -> str:
    """One row per pair and method: time to the target, the ratio, the whole run and its picture's metrics."""
    lines = ["| pair | method | s to target | ratio | whole run | final loss | judge Gram | palette | SSIM |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for pair, data in record["pairs"].items():
        for name, row in [("baseline", data["baseline"]), *data["candidates"].items()]:
            q = row.get("quality", {})
            reached = f"{row['seconds_to_target']:.0f}" if row["seconds_to_target"] else "not reached"
            ratio = f"{row['speedup']:.1f}×" if row.get("speedup") else "–"
            whole = f"{row['seconds']:.0f} s, {row['steps']} steps ({row['stop_reason']})"
            lines.append(f"| {pair} | {name} ({row['precision']}) | {reached} | {ratio} | {whole} | "
                         f"{row['final_loss']:.5f} | {q.get('judge_gram', float('nan')):.3f} | "
                         f"{q.get('palette_swd', float('nan')):.4f} | {q.get('ssim', float('nan')):.3f} |")
    return "\n".join(lines)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pairs", nargs="+", default=list(images.SPEED_PAIRS[:2]), metavar="CONTENT:STYLE")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=["default"])
    parser.add_argument("--score-every", type=int, default=5)
    parser.add_argument("--cap-seconds", type=float, default=None, help="stop a candidate after this long")
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


@images.stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    for name in args.pairs:  # every image checked before the first long run
        images.named_pair(name, 16)
    from bench.hardware import device_info
    from bench.probe import load_now
    from transfer.backbones.load import load_backbone

    backbone = load_backbone(args.backbone)
    record = {"size": args.size, "backbone": backbone.name, "score_every": args.score_every,
              "cap_seconds": args.cap_seconds,
              "baseline": BASELINE, "candidates": {c: CANDIDATES[c] for c in args.candidates},
              "device": device_info(), "pairs": {}}
    for name in args.pairs:
        record["pairs"][name] = run_pair(name, args, backbone)
    record["load_average_end"] = load_now()
    record["wall_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"default_speed_{args.size}.json"
    path.write_text(to_json(record))
    print(markdown(record))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
