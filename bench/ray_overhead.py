"""`python -m bench.ray_overhead`: a 2x2 grid on Ray (actor pool, plain tasks) against one process.

What it measures, on this machine, each side into a fresh cache (one run each, in this order):

* local: `transfer.jobs.grid.run_grid` in this process (TensorFlow already imported; the
  backbone loads once for the grid, as `detstyle grid` does);
* Ray start: `ray.init(num_cpus=--cpus, include_dashboard=False)` of a local cluster;
* actors: the grid's units on an `ActorPool` of `--cpus` `UnitWorker` actors (each imports
  TensorFlow and loads the backbone once, for every unit it runs);
* tasks: one plain `@ray.remote` task per unit (the backbone loads once per unit).

For each: wall seconds, CPU seconds (this process's `time.process_time()`, plus the Ray worker
processes' own CPU time that each unit reports), the backbone loads paid and their mean
seconds (the per-unit start-up cost), and the load average.  Writes
`bench/results/ray_overhead.json`; `markdown_table` renders it for the README.

  python -m bench.ray_overhead --size 64 --steps 20
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: The sides, in the order they run.
SIDES = ("local", "actors", "tasks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_overhead", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="output size in px (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="Adam steps per cell (default 20, no plateau stop)")
    parser.add_argument("--backbone", default="vgg16-mri", help="default vgg16-mri, the trained offline backbone")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def write_inputs(folder: Path) -> tuple[list[Path], list[Path]]:
    """Two contents (matplotlib's Grace Hopper and a generated picture) and two generated styles."""
    import shutil

    from transfer.io.images import save_image
    from transfer.io.samples import generated_style, grace_hopper_path

    contents = [Path(shutil.copyfile(grace_hopper_path(), folder / "hopper.jpg")),
                save_image(generated_style(128, seed=7, strokes=60), folder / "blocks.png")]
    styles = [save_image(generated_style(128, seed=s), folder / f"strokes{s}.png") for s in (1, 2)]
    return contents, styles


def plan(contents, styles, args):
    from transfer.backbones.load import resolve_backbone
    from transfer.core.spec import make_spec
    from transfer.jobs.grid import plan_grid

    make = functools.partial(make_spec, size=args.size, steps=args.steps, optimizer="adam", plateau=0,
                             backbone=resolve_backbone(args.backbone, precision="fp32"))
    return plan_grid(contents, styles, make)


def timed(run) -> dict:
    """Wall and process-CPU seconds of `run()` (which returns an `EngineReport`), with what it reports."""
    wall, cpu = time.perf_counter(), time.process_time()
    report = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    loads = list(report.backbone_loads)
    workers = report.worker_cpu_seconds or 0.0
    return {"wall_seconds": round(wall, 3), "driver_cpu_seconds": round(cpu, 3),
            "worker_cpu_seconds": report.worker_cpu_seconds, "cpu_seconds": round(cpu + workers, 3),
            "units_run": report.ran, "backbone_loads": len(loads),
            "backbone_load_seconds": [round(s, 3) for s in loads],
            "mean_backbone_load_seconds": round(sum(loads) / len(loads), 3) if loads else None,
            "backbone_load_seconds_per_unit": round(sum(loads) / report.ran, 3) if report.ran else None,
            "load_average": round(os.getloadavg()[0], 2)}


def measure(args: argparse.Namespace, folder: Path) -> dict:
    """Every side's numbers, each side into a cache of its own."""
    import ray

    from transfer.jobs.engine import run_local
    from transfer.jobs.grid import run_cell
    from transfer.jobs.ray_engine import run_ray
    from transfer.jobs.store import RunStore

    import tensorflow  # noqa: F401  (imported before timing: `detstyle` imports it before any command)

    cells = plan(*write_inputs(folder), args).cells
    sides = {"local": timed(lambda: run_local(cells, RunStore(folder / "local"), run_cell))}
    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ray_start = round(time.perf_counter() - started, 3)
        for mode in SIDES[1:]:
            sides[mode] = timed(lambda: run_ray(cells, RunStore(folder / mode), run_cell, mode=mode))
            print(f"{mode}: {sides[mode]['wall_seconds']:.1f} s", file=sys.stderr)
    finally:
        ray.shutdown()
    return {"ray_start_seconds": ray_start, "sides": sides, "same_pixels": same_pixels(folder)}


def same_pixels(folder: Path) -> bool:
    """Whether every side cached byte-identical PNGs (the same cells, the same pixels)."""
    caches = [{p.name: p.read_bytes() for p in (folder / side).glob("*.png")} for side in SIDES]
    return all(cache == caches[0] for cache in caches[1:])


def record(args: argparse.Namespace, measured: dict) -> dict:
    sides = measured["sides"]
    local = sides["local"]["wall_seconds"]
    return {
        "benchmark": "ray_overhead",
        "command": f"python -m bench.ray_overhead --size {args.size} --steps {args.steps} --cpus {args.cpus}"
                   + (f" --backbone {args.backbone}" if args.backbone != "vgg16-mri" else ""),
        "settings": {"grid": "2x2", "size": args.size, "steps": args.steps, "optimizer": "adam", "precision": "fp32",
                     "backbone": args.backbone, "ray_cpus": args.cpus, "cpu_count": os.cpu_count()},
        **measured,
        "wall_ratio_to_local": {mode: round(sides[mode]["wall_seconds"] / local, 3) for mode in SIDES[1:]},
        "wall_ratio_to_local_with_ray_start": {
            mode: round((sides[mode]["wall_seconds"] + measured["ray_start_seconds"]) / local, 3)
            for mode in SIDES[1:]},
        "faster_ray_mode": min(SIDES[1:], key=lambda mode: sides[mode]["wall_seconds"]),
    }


def markdown_table(data: dict) -> str:
    """The README's table: one row per side (pure: reads only `data`)."""
    rows = ["| 2x2 grid | wall s | x local | CPU s | backbone loads | mean load s | load s per unit |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for side in SIDES:
        s = data["sides"][side]
        ratio = "1" if side == "local" else f"{data['wall_ratio_to_local'][side]:.2f}"
        mean, per_unit = (f"{s[key]:.2f}" if s[key] is not None else "-"
                          for key in ("mean_backbone_load_seconds", "backbone_load_seconds_per_unit"))
        name = {"local": "one process", "actors": "Ray actor pool", "tasks": "Ray plain tasks"}[side]
        rows.append(f"| {name} | {s['wall_seconds']:.1f} | {ratio} | {s['cpu_seconds']:.1f} | "
                    f"{s['backbone_loads']} | {mean} | {per_unit} |")
    rows.append(f"| Ray local cluster start | {data['ray_start_seconds']:.1f} | | | | | |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ray_overhead_") as tmp:
        data = record(args, measure(args, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "ray_overhead.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(markdown_table(data), end="")
    print(f"{path}: written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
