"""Dev trial (issue 21 §2): exact-TV forward-backward splitting vs `--schedule fast` vs the tutorial.

    python -m bench.proximal_trial --size 256 --steps 150 [--methods proximal fast tutorial]
                                   [--dual-iterations 10] [--shrink 0.2] [--accelerate]

On `bench.images.pair(size)` with the `vgg16-mri` backbone, each method runs `--steps`
iterations under a `bench.probe.Probe` that scores the image with the seed-000 loss
(`bench.yardstick.Yardstick`) every `--score-every` iterations, clock paused:

* `proximal`: `transfer.core.proximal.run_proximal` (FASTA, exact L1 TV) on the tutorial recipe,
  stopped after N loss+gradient evaluations (backtracks included);
* `fast`: `bench.ours.runner({"recipe": "tutorial", "schedule": "fast", "steps": N})`: N L-BFGS
  iterations (up to 3N evaluations; the runner does not report them);
* `tutorial`: the seed-000 loop itself (`bench.reference_tutorial.run`), N Adam steps.

It prints, per method, the yardstick loss reached, its TV share and the time to reach the
tutorial loop's own losses at a few of its steps, and writes
`bench/results/proximal_trial_<size>.json`.  A dev measurement, not a committed benchmark.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.images import stops_on_missing_image  # noqa: E402
from bench.probe import Probe  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
METHODS = ("proximal", "fast", "tutorial")


def to_json(record: dict) -> str:
    """The file's exact text: one writer, so a test can tell a hand edit from the command's output."""
    return json.dumps(record, indent=1) + "\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _ProbeCallback:
    """`run_proximal`'s callback reporting each iteration (and its evaluations) to a probe;
    stops the run once `budget` loss+gradient evaluations are spent (the tutorial's count)."""

    def __init__(self, probe: Probe, budget: int):
        self.probe, self.budget = probe, budget

    def __call__(self, step: int, losses: dict, seconds: float, current) -> bool:
        self.probe.step(lambda: current()[0], loss=losses["total"], evaluations=int(losses["evaluations"]))
        return self.probe.evaluations >= self.budget


def proximal_loop(settings, steps: int):
    """A loop with the reference loops' signature running `run_proximal` on the tutorial recipe."""
    from transfer.core.objective import build_objective
    from transfer.core.proximal import run_proximal
    from transfer.core.spec import make_spec

    def run(content: np.ndarray, style: np.ndarray, backbone, probe: Probe) -> None:
        objective = build_objective(backbone, make_spec(recipe="tutorial"), content[None], [(style, 1.0)])
        run_proximal(objective, objective.to_param(content[None]), steps, settings=settings,
                     callback=_ProbeCallback(probe, steps))

    return run


def make_loop(method: str, steps: int, settings):
    if method == "proximal":
        return proximal_loop(settings, steps)
    if method == "fast":
        from bench import ours

        return ours.runner({"recipe": "tutorial", "schedule": "fast", "steps": steps})
    from bench import reference_tutorial

    return reference_tutorial.run


def _traced(loop, content, style, backbone):
    """The loop as `Probe.run` wants it, printing the traceback of a failure (the probe keeps one line)."""
    import traceback

    from bench.probe import StopRun

    def run(probe: Probe) -> None:
        try:
            loop(content, style, backbone, probe)
        except StopRun:
            raise
        except Exception:
            traceback.print_exc()
            raise

    return run


def measure(method: str, steps: int, score_every: int, settings, content, style, backbone, yardstick) -> dict:
    """One method under a probe: its yardstick curve, evaluations and final TV share."""
    loop = make_loop(method, steps, settings)
    probe = Probe(max_steps=steps + 1 if method == "fast" else steps, yardstick=yardstick, eval_every=score_every)
    probe.run(_traced(loop, content, style, backbone))
    if probe.error:
        raise RuntimeError(f"{method} failed: {probe.error}")
    terms = probe.last_terms or {}
    return {
        "curve": [[round(s, 3), k, loss] for s, k, loss in probe.curve],
        "steps": len(probe.times),
        "evaluations": probe.evaluations if method != "fast" else None,  # ours.runner does not report them
        "seconds": round(probe.times[-1], 2) if probe.times else None,
        "final": terms,
        "tv_share": terms["tv"] / terms["total"] if terms else None,
    }


def time_to(curve: list, target: float) -> float | None:
    """Clock seconds at which a scored curve first reaches `target`; None if never."""
    return next((s for s, _, loss in curve if loss <= target), None)


def milestones(record: dict, at: tuple[int, ...]) -> list[dict]:
    """For the tutorial loop's loss at each step in `at`: every method's time to reach it."""
    reference = {k: loss for _, k, loss in record["methods"]["tutorial"]["curve"]}
    rows = []
    for k in at:
        if k not in reference:
            continue
        row = {"tutorial_step": k, "target": reference[k]}
        for method, result in record["methods"].items():
            row[method] = time_to(result["curve"], reference[k])
        rows.append(row)
    return rows


def table(record: dict) -> str:
    methods = list(record["methods"])
    lines = [f"| method | steps | evaluations | seconds | final yardstick | TV share |", "|---|---|---|---|---|---|"]
    for m in methods:
        r = record["methods"][m]
        lines.append(f"| {m} | {r['steps']} | {r['evaluations']} | {r['seconds']} | "
                     f"{r['final'].get('total', float('nan')):.4g} | {r['tv_share']:.2f} |")
    if record.get("milestones"):
        lines += ["", "| tutorial step | its loss | " + " | ".join(f"{m} s" for m in methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        for row in record["milestones"]:
            cells = " | ".join("-" if row[m] is None else f"{row[m]:.1f}" for m in methods)
            lines.append(f"| {row['tutorial_step']} | {row['target']:.4g} | {cells} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.proximal_trial", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--score-every", type=int, default=10)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--dual-iterations", type=int, default=10)
    parser.add_argument("--shrink", type=float, default=0.2)
    parser.add_argument("--first-move", type=float, default=0.02)
    parser.add_argument("--accelerate", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from bench.images import pair
    from bench.yardstick import Yardstick
    from transfer.backbones.load import load_backbone
    from transfer.core.proximal import ProximalSettings

    settings = ProximalSettings(dual_iterations=args.dual_iterations, shrink=args.shrink,
                                first_move=args.first_move, accelerate=args.accelerate)
    content, style = pair(args.size)
    backbone = load_backbone("vgg16-mri")
    yardstick = Yardstick(content, style, backbone)
    record = {"size": args.size, "steps": args.steps, "score_every": args.score_every,
              "proximal_settings": dataclasses.asdict(settings), "load_start": os.getloadavg()[0], "methods": {}}
    for method in args.methods:
        log(f"{method}: {args.steps} iterations at {args.size}px")
        record["methods"][method] = measure(method, args.steps, args.score_every, settings, content, style,
                                            backbone, yardstick)
        log(f"  {record['methods'][method]['seconds']} s, final {record['methods'][method]['final'].get('total')}")
    record["load_end"] = os.getloadavg()[0]
    if "tutorial" in record["methods"]:
        record["milestones"] = milestones(record, tuple(sorted({10, 20, 50, 100, args.steps})))
    output = args.output or RESULTS / f"proximal_trial_{args.size}.json"
    output.write_text(to_json(record))
    print(table(record))
    log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
