"""Tiled Adam (`--tile N`, issue 21 §3): peak memory of a huge output, and whether tile borders show.

    python -m bench.tiling [--size 4096] [--tile 1024] [--steps 2] [--seam-size 1024] [--seam-tile 512]
                           [--seam-steps 8]

(a) Memory: `stylize` with `--tile` at `--size`² in a fresh child process (as `bench.memory` runs its
variants), `--steps` iterations of the default objective on `vgg16-mri`, tubingen.jpg x
starry_night.jpg from ../shared/images, both centre squares resized once to the size.  Reports the
child's peak RSS (`ru_maxrss`) and the time of one steady step (between the first two callbacks).
(b) Seams: the same pair at `--seam-size`, the same start, `--seam-steps` Adam steps tiled
(`--seam-tile`) and untiled.  The seam metric (`transfer.core.tiles.seam_energy`) divides the
gradient energy across tile borders by that across every other pixel boundary, for the tiled
output and for the untiled one at the same borders; borders are the last step's grid and the
union of every step's.  Writes `bench/results/tiling.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import images
from bench.report import to_json  # the one writer of results files
from bench.memory import step_seconds

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONTENT, STYLE = "tubingen.jpg", "starry_night.jpg"
BACKBONE = "vgg16-mri"

CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench.tiling import pair
from transfer.backbones.load import load_backbone
from transfer.core.spec import make_spec
from transfer.core.stylizer import stylize
size, tile, steps = json.loads(sys.argv[1])
content, style = pair(size)
backbone = load_backbone("vgg16-mri")
marks = []
start = time.perf_counter()
stylize(content, style, backbone, make_spec(steps=steps, tile=tile),
        callback=lambda info: marks.append((time.perf_counter() - start, info.stage)))
print(json.dumps({"seconds": marks, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """tubingen x starry_night, centre squares resized once to `size`² (`MissingImage` when absent)."""
    from transfer.io.images import load_image, resize_array

    content = images._centre_square(load_image(images.shared_image(CONTENT)))
    style = images._centre_square(load_image(images.shared_image(STYLE)))
    return resize_array(content, (size, size)), resize_array(style, (size, size))


def memory_row(size: int, tile: int, steps: int, wall: float, exit_code: int, stdout: str, stderr: str) -> dict:
    """The child's row from its exit code and output (pure, so a test can build one)."""
    row = {"size": size, "tile": tile, "steps": steps, "wall_seconds": wall, "exit_code": exit_code}
    if exit_code != 0:
        row["error"] = (stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        return row
    report = json.loads(stdout.strip().splitlines()[-1])
    marks = [tuple(mark) for mark in report["seconds"]]
    row["first_step_seconds"] = marks[0][0]
    row["step_seconds"] = step_seconds(marks)
    row["peak_rss_mib"] = report["peak_rss_kib"] / 1024  # Linux reports ru_maxrss in KiB
    return row


def measure_memory(size: int, tile: int, steps: int) -> dict:
    """One tiled run in a fresh process, so its peak RSS is its own."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([size, tile, steps])], cwd=ROOT,
                          capture_output=True, text=True)
    return memory_row(size, tile, steps, time.perf_counter() - started, done.returncode, done.stdout, done.stderr)


def seam_row(tiled: np.ndarray, untiled: np.ndarray, last: tuple[list[int], list[int]],
             every: tuple[list[int], list[int]]) -> dict:
    """The seam ratios of both outputs at the last grid's borders and at every border used."""
    from transfer.core.tiles import seam_ratio

    return {"last_rows": last[0], "last_cols": last[1], "all_rows": every[0], "all_cols": every[1],
            "tiled_ratio_last": seam_ratio(tiled, *last), "untiled_ratio_last": seam_ratio(untiled, *last),
            "tiled_ratio_all": seam_ratio(tiled, *every), "untiled_ratio_all": seam_ratio(untiled, *every)}


def measure_seams(size: int, tile: int, steps: int) -> dict:
    """The same short run tiled and untiled from the same start; the seam metric and losses of both."""
    from transfer.backbones.load import load_backbone
    from transfer.core.objective import build_objective
    from transfer.core.spec import make_spec
    from transfer.core.stylizer import stylize
    from transfer.core.tiles import borders, step_offsets, tile_grid

    content, style = pair(size)
    backbone = load_backbone(BACKBONE)
    runs = {}
    untiled, tiled = make_spec(steps=steps, optimizer="adam", plateau=0), make_spec(steps=steps, tile=tile, plateau=0)
    for name, spec in (("untiled", untiled), ("tiled", tiled)):  # both Adam, the whole budget
        started = time.perf_counter()
        runs[name] = (stylize(content, style, backbone, spec), time.perf_counter() - started)
    grids = [tile_grid(size, size, tile, step_offsets(0, step, tile)) for step in range(1, steps + 1)]
    every = [borders(grid) for grid in grids]
    union = (sorted({r for rows, _ in every for r in rows}), sorted({c for _, cols in every for c in cols}))
    row = {"size": size, "tile": tile, "steps": steps}
    row |= seam_row(runs["tiled"][0].image, runs["untiled"][0].image, every[-1], union)
    judge = build_objective(backbone, make_spec(), content[None], [(style, 1.0)])
    for name, (result, seconds) in runs.items():
        row[f"{name}_loss"] = whole_image_loss(judge, result.image)
        row[f"{name}_seconds"] = seconds
    return row


def whole_image_loss(objective, image: np.ndarray) -> float:
    """The untiled objective's total loss of an output (a tiled run reports the mean of its tiles' losses)."""
    import tensorflow as tf

    return float(tf.reduce_mean(objective.terms(tf.constant(objective.to_param(image[None])))["total"]))


def record(memory: dict, seams: dict, load_average: float) -> dict:
    return {"content": CONTENT, "style": STYLE, "backbone": BACKBONE, "memory": memory, "seams": seams,
            "load_average": load_average}



@images.stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seam-size", type=int, default=1024)
    parser.add_argument("--seam-tile", type=int, default=512)
    parser.add_argument("--seam-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pair(16)  # both images present, before a child starts
    print(f"tiled {args.size}², tile {args.tile}, {args.steps} steps ...", file=sys.stderr, flush=True)
    memory = measure_memory(args.size, args.tile, args.steps)
    print(json.dumps(memory), flush=True)
    print(f"seams at {args.seam_size}², tile {args.seam_tile}, {args.seam_steps} steps ...", file=sys.stderr,
          flush=True)
    seams = measure_seams(args.seam_size, args.seam_tile, args.seam_steps)
    print(json.dumps({k: v for k, v in seams.items() if not k.endswith(("_rows", "_cols"))}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tiling.json"
    path.write_text(to_json(record(memory, seams, os.getloadavg()[0])))
    print(f"wrote {path}", file=sys.stderr)
    return 0 if memory["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
