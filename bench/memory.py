"""Peak memory of a stylisation at large sizes (issue 8: 2048² must fit in 16 GiB on CPU).

    python -m bench.memory [--size 2048] [--steps 2] [--variants adam fast fast-bf16]

Each variant runs in a fresh child process (`stylize` on the bench's pair at `--size`, `--steps`
iterations), so its peak RSS (the child's own `ru_maxrss`, reported when it ends) is its own.
Writes `bench/results/memory_<size>.json` and prints one line per variant.  No time limits are
claimed here; the per-step time is reported only so a reader can plan a run, and only from two
consecutive steps of one stage (`step_seconds`); a row without one says why (`step_seconds_note`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import images
from bench.report import to_json  # the one writer of results files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: variant -> (make_spec options, precision)
VARIANTS = {
    "adam": ({"optimizer": "adam", "plateau": 0}, "fp32"),
    "lbfgs": ({"optimizer": "lbfgs", "plateau": 0}, "fp32"),
    "fast": ({"recipe": "tutorial", "schedule": "fast"}, "fp32"),
    "fast-bf16": ({"recipe": "tutorial", "schedule": "fast"}, "bf16"),
}

CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench import images, ours
from transfer.backbones.load import load_backbone
from transfer.core.stylizer import stylize
size, steps, overrides, precision = json.loads(sys.argv[1])
content, style = images.pair(size)
backbone = load_backbone("vgg16-mri", precision=precision)
times = []
start = time.perf_counter()
stylize(content, style, backbone, ours.make_spec_for(overrides, steps),
        callback=lambda info: times.append((time.perf_counter() - start, info.stage)))
print(json.dumps({"seconds": times, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def step_seconds(marks: list[tuple[float, int]]) -> float | None:
    """Median time between callbacks of the same stage; None when no stage had two steps.

    Steps that straddle a stage change include that stage's set-up and tracing, so they are left out.
    """
    gaps = sorted(b[0] - a[0] for a, b in zip(marks, marks[1:]) if a[1] == b[1])
    return gaps[len(gaps) // 2] if gaps else None


def no_step_note(marks: list[tuple[float, int]]) -> str:
    """Why `step_seconds` found no steady step, from the same marks (a short fast-schedule budget
    gives every stage one iteration, so each step starts a stage)."""
    if len(marks) < 2:
        return "no steady step time: fewer than two steps"
    return "no steady step time: every step began a new stage (its set-up and tracing included)"


def child_row(variant: str, size: int, steps: int, wall: float, exit_code: int, stdout: str, stderr: str) -> dict:
    """One variant's row from its child process's exit code and output (pure, so tests can build one)."""
    overrides, precision = VARIANTS[variant]
    row = {"variant": variant, "size": size, "steps": steps, "precision": precision, "overrides": overrides,
           "wall_seconds": wall, "exit_code": exit_code}
    if exit_code != 0:
        row["error"] = (stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        return row
    report = json.loads(stdout.strip().splitlines()[-1])
    marks = [tuple(mark) for mark in report["seconds"]]
    row["first_step_seconds"] = marks[0][0]
    row["step_seconds"] = step_seconds(marks)
    row["peak_rss_mib"] = report["peak_rss_kib"] / 1024  # Linux reports ru_maxrss in KiB
    if row["step_seconds"] is None:
        row["step_seconds_note"] = no_step_note(marks)
    return row


def measure(size: int, steps: int, variant: str) -> dict:
    """Run one variant in a fresh child process and return its row."""
    overrides, precision = VARIANTS[variant]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([size, steps, overrides, precision])],
                          cwd=ROOT, capture_output=True, text=True)
    return child_row(variant, size, steps, time.perf_counter() - started, done.returncode, done.stdout, done.stderr)


def record(size: int, load_average: float, rows: list[dict]) -> dict:
    """The file's content: the size, the load when the runs ended, one row per variant."""
    return {"size": size, "load_average": load_average, "rows": rows}



@images.stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["fast-bf16", "fast", "adam"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    images.shared_image(images.STYLE)  # before any child starts: each would fail on it
    rows = []
    for variant in args.variants:
        print(f"{variant} at {args.size}², {args.steps} steps ...", file=sys.stderr, flush=True)
        row = measure(args.size, args.steps, variant)
        rows.append(row)
        peak = f"{row['peak_rss_mib']:,.0f} MiB" if row.get("peak_rss_mib") else row.get("error") or "—"
        per_step = f"{row['step_seconds']:.1f} s/step" if row.get("step_seconds") else "no steady step"
        print(f"{variant}: peak RSS {peak}, {per_step}, "
              f"{row['wall_seconds']:.0f} s in all", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"memory_{args.size}.json"
    path.write_text(to_json(record(args.size, os.getloadavg()[0], rows)))
    print(f"wrote {path}", file=sys.stderr)
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
