"""Record the seed-000 (tutorial) loop's loss curve once, so targets can be read from it.

The 1000-step tutorial run at 512² takes 35-60 min on 2 CPU cores, far longer than the
bench's time budget, so it is run once (in the background) and its curve kept:

    nohup python -m bench.reference_curve --size 512 --steps 1000 &

Writes `<out>/tutorial_curve_<size>.json`: the loop's own loss at every step (the loss
`train_step` returns is that of the image *before* its update: entry k is the loss after k
steps), the wall time at the end of every step, and the yardstick terms every
`--score-every` steps (clock paused while scoring), plus the images at every 100th scored
step as PNGs next to it (`tutorial_<size>_step<k>.png`) for side-by-side pictures.  The
pair is the bench's (`bench.images.pair`), the backbone `vgg16-mri` unless told.
`bench.run` (full mode) reads its target from `bench/results/tutorial_curve_512.json`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.images import stops_on_missing_image  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def curve_path(size: int, out: Path = DEFAULT_OUT) -> Path:
    return Path(out) / f"tutorial_curve_{size}.json"


def load_curve(size: int, out: Path = DEFAULT_OUT) -> dict | None:
    """The recorded curve at this size, or None when none was recorded."""
    path = curve_path(size, out)
    return json.loads(path.read_text()) if path.is_file() else None


def target_at(curve: dict, steps: int) -> float | None:
    """The yardstick loss after `steps` tutorial steps (scored steps only)."""
    for row in curve["scored"]:
        if row["step"] == steps:
            return row["total"]
    return None


def matching_curve(size: int, backbone_name: str, steps: int, out: Path = DEFAULT_OUT) -> tuple[dict | None, str]:
    """(the recorded curve, "") when it is for this backbone and the bench's pair and reaches `steps`;
    otherwise (None, why not).  The curve gets a `path` entry."""
    from bench import images

    path = curve_path(size, out)
    curve = load_curve(size, out)
    if curve is None:
        return None, f"no recorded curve {path}; run `python -m bench.reference_curve --size {size} --steps {steps}` once"
    if curve["backbone"] != backbone_name or curve["images"] != images.describe() or target_at(curve, steps) is None:
        return None, f"the recorded curve {path} is for another backbone, pair or step count"
    curve["path"] = str(path)
    return curve, ""


#: Tutorial step counts whose recorded losses a run is timed to (`milestones`).
MILESTONES = (100, 250, 500, 750, 1000)


def first_time_at_or_below(curve: list[tuple[float, int, float]], loss: float) -> tuple[float, int] | None:
    """(seconds, step) of the first scored point `(seconds, step, loss)` at or below `loss`, or None."""
    for seconds, step, value in curve:
        if value <= loss:
            return seconds, step
    return None


def milestones(tutorial_curve: dict, first_step_s: float, step_s: float,
               ours_curve: list[tuple[float, int, float]]) -> list[dict]:
    """One row per milestone: the tutorial's loss and (estimated) time at m steps, and ours to that loss."""
    scored = {row["step"]: row["total"] for row in tutorial_curve["scored"]}
    recorded = tutorial_curve["seconds"]
    rows = []
    for m in MILESTONES:
        if m not in scored:
            continue
        tutorial_s = first_step_s + (m - 1) * step_s
        hit = first_time_at_or_below(ours_curve, scored[m])
        rows.append({
            "tutorial_steps": m, "loss": scored[m], "tutorial_seconds_estimated": tutorial_s,
            "tutorial_seconds_recorded": recorded[m - 1] if len(recorded) >= m else None,
            "ours_seconds": hit[0] if hit else None, "ours_iterations": hit[1] if hit else None,
            "speedup": tutorial_s / hit[0] if hit else None,
        })
    return rows


#: What the record says about the loop it timed.
LOOP = "bench.reference_tutorial.run (seed 000: Adam 0.02, b1 0.99, eps 0.1, 30 x L1 TV)"


def new_record(size: int, steps: int, backbone_name: str, pair: dict, started: float) -> dict:
    """The record before the first step; `write` fills the per-step lists and `wall_seconds`."""
    return {"size": size, "steps": steps, "backbone": backbone_name, "images": pair, "loop": LOOP,
            "started": started, "own_loss_before_step": [], "seconds": [], "scored": [], "load_average": []}


def to_json(record: dict) -> str:
    """The file's exact text (one line: the curve is long): one writer, so a test can tell a hand edit."""
    return json.dumps(record)


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--score-every", type=int, default=50)
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from bench import images, reference_tutorial
    from bench.probe import Probe
    from bench.yardstick import Yardstick
    from transfer.backbones.load import load_backbone
    from transfer.io.images import save_image

    backbone = load_backbone(args.backbone)
    content, style = images.pair(args.size)
    yardstick = Yardstick(content, style, backbone)
    args.out.mkdir(parents=True, exist_ok=True)
    path = curve_path(args.size, args.out)
    record = new_record(args.size, args.steps, backbone.name, images.describe(), time.time())
    wall = time.perf_counter()

    def write(probe: Probe) -> None:
        record["own_loss_before_step"] = list(probe.own_losses)
        record["seconds"] = [round(t, 3) for t in probe.times]
        record["wall_seconds"] = time.perf_counter() - wall
        path.write_text(to_json(record))

    class CurveProbe(Probe):
        def score(self, image_fn, now=None):
            loss = super().score(image_fn, now)
            paused = time.perf_counter()
            step = len(self.times)
            record["scored"].append({"step": step, "seconds": self.elapsed(), **self.last_terms})
            if step % 100 == 0 or step == args.steps:
                save_image(image_fn(), args.out / f"tutorial_{args.size}_step{step}.png")
            record["load_average"].append(os.getloadavg()[0])
            write(self)
            self._paused += time.perf_counter() - paused
            print(f"step {step}: {loss:,.0f} at {self.elapsed():.0f} s", file=sys.stderr, flush=True)
            return loss

    probe = CurveProbe(max_steps=args.steps, yardstick=yardstick, eval_every=args.score_every)
    probe.run(lambda p: reference_tutorial.run(content, style, backbone, p))
    if probe.error:
        print(probe.error, file=sys.stderr)
        return 1
    write(probe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
