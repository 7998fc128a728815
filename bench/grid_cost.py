"""`python -m bench.grid_cost`: a style grid against the same cells run one by one.

Issue 18's bound: an N x M grid may cost at most 1.05 x the N·M single runs it replaces, at
the same settings.  In one process (so both pay the same warm-up), after one tiny warm-up run,
this times, in `--repeats` rounds ordered singles-grid, grid-singles, ... (so a load that drifts
during the run weighs on both sides alike)

* singles: `transfer.core.run.run(spec)` for each cell's own spec, one after the other; each
  call loads its backbone and computes its targets, as one `detstyle stylize` does (process
  start and TensorFlow's import are counted for neither side);
* the grid: `detstyle grid` with the same options, in this process (`transfer.cli.main.main`),
  into a fresh cache: planning, hashing, the runs, the figure and the cell files;

and writes `bench/results/grid_cost.json` (every time, the ratio of the totals, the settings,
the load average after each round).  The images are the first N contents and M styles of `CONTENTS` and `STYLES` in
`../shared/images`; a missing one stops the bench with its path (`bench/images.py`).

  python -m bench.grid_cost --size 128 --steps 30 --n 2 --m 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import images

#: Issue 18: the grid's time over the singles' time.
BOUND = 1.05
CONTENTS = ("tubingen.jpg", "golden_gate.jpg", "shipwreck.jpg")
STYLES = ("starry_night.jpg", "the_scream.jpg", "composition_vii.jpg")
RESULTS = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.grid_cost", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--n", type=int, default=2, choices=range(1, len(CONTENTS) + 1), help="contents (rows)")
    parser.add_argument("--m", type=int, default=2, choices=range(1, len(STYLES) + 1), help="styles (columns)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds, alternating which side goes first")
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def grid_argv(contents: list[Path], styles: list[Path], output: Path, args: argparse.Namespace) -> list[str]:
    """The `detstyle grid` command line both sides share the settings of."""
    return ["grid", "--contents", *map(str, contents), "--styles", *map(str, styles), "-o", str(output),
            "--backbone", args.backbone, "--size", str(args.size), "--steps", str(args.steps), "--quiet", "--overwrite",
            # the recorded settings (Adam in fp32, every step run), not whatever the defaults are now
            "--optimizer", "adam", "--precision", "fp32", "--plateau", "0"]


def warm_up(backbone: str) -> None:
    """One tiny run, so neither side pays TensorFlow's first-call set-up."""
    from transfer.backbones.load import load_backbone
    from transfer.core.spec import make_spec
    from transfer.core.stylizer import stylize
    from transfer.io.samples import generated_style

    style = generated_style(32, seed=0)
    stylize(style, style, load_backbone(backbone), make_spec(steps=1))


def time_singles(specs) -> list[float]:
    """Seconds of each `run(spec)`, in order."""
    from transfer.core.run import run

    seconds = []
    for spec in specs:
        start = time.perf_counter()
        run(spec)
        seconds.append(time.perf_counter() - start)
        print(f"single {len(seconds)}/{len(specs)}: {seconds[-1]:.1f} s", file=sys.stderr)
    return seconds


def time_grid(argv: list[str]) -> float:
    from transfer.cli.main import main

    start = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"error: the grid command failed with status {status}")
    print(f"grid: {seconds:.1f} s", file=sys.stderr)
    return seconds


def record(args: argparse.Namespace, contents: list[Path], styles: list[Path], singles: list[list[float]],
           grids: list[float], loads: list[float]) -> dict:
    """The file's content: `singles[r]` and `grids[r]` are round r's times; the ratio is of the totals."""
    total_singles, total_grid = sum(map(sum, singles)), sum(grids)
    return {
        "benchmark": "grid_cost",
        "command": f"python -m bench.grid_cost --size {args.size} --steps {args.steps} --n {args.n} --m {args.m}"
                   + (f" --repeats {args.repeats}" if args.repeats != 2 else "")
                   + (f" --backbone {args.backbone}" if args.backbone != "vgg16-mri" else ""),
        "settings": {"size": args.size, "steps": args.steps, "n": args.n, "m": args.m, "repeats": args.repeats,
                     "backbone": args.backbone, "optimizer": "adam", "contents": [p.name for p in contents],
                     "styles": [p.name for p in styles]},
        "single_seconds": singles,
        "grid_seconds": grids,
        "singles_total_seconds": total_singles,
        "grid_total_seconds": total_grid,
        "ratio": total_grid / total_singles,
        "round_ratios": [g / sum(r) for g, r in zip(grids, singles)],
        "bound": BOUND,
        "met": total_grid / total_singles <= BOUND,
        "load_average": loads,
        "cpu_count": os.cpu_count(),
    }


def to_json(data: dict) -> str:
    """The file's exact text: one writer, so a test can tell a hand edit from the command's output."""
    return json.dumps(data, indent=1) + "\n"


def time_round(index: int, argv_grid: list[str], specs, tmp: Path) -> tuple[list[float], float]:
    """One round: the singles and one grid (into a cache of its own), the first side alternating."""
    argv = [*argv_grid, "--cache", str(tmp / f"cache_{index}")]
    if index % 2:
        grid = time_grid(argv)
        return time_singles(specs), grid
    singles = time_singles(specs)
    return singles, time_grid(argv)


@images.stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    contents = [images.shared_image(name) for name in CONTENTS[: args.n]]
    styles = [images.shared_image(name) for name in STYLES[: args.m]]
    from transfer.cli.grid import build_plan
    from transfer.cli.main import build_parser as detstyle_parser

    warm_up(args.backbone)
    singles, grids, loads = [], [], [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="grid_cost_") as tmp:
        argv_grid = grid_argv(contents, styles, Path(tmp) / "grid.png", args)
        specs = [cell.spec for cell in build_plan(detstyle_parser().parse_args(argv_grid)).cells]
        for index in range(args.repeats):
            round_singles, grid = time_round(index, argv_grid, specs, Path(tmp))
            singles.append(round_singles)
            grids.append(grid)
            loads.append(os.getloadavg()[0])
    data = record(args, contents, styles, singles, grids, loads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "grid_cost.json"
    path.write_text(to_json(data), encoding="utf-8")
    print(f"{path}: grid {data['grid_total_seconds']:.1f} s vs singles {data['singles_total_seconds']:.1f} s = "
          f"{data['ratio']:.3f}x (bound {BOUND}x: {'met' if data['met'] else 'NOT met'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
