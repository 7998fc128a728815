"""Does XLA (`tf.function(jit_compile=True)`) make our loss+gradient step faster on this machine?

    python -m bench.jit_trial [--sizes 256 512] [--steps 6] [--rounds 2]

Issue 8 asks to keep `jit_compile` only where the numbers support it.  This times the compiled
loss+gradient of the default objective (`transfer.core.objective.build_objective`, `vgg16-mri`, the
bench's pair) with and without XLA, alternating the two `--rounds` times so a change in the
shared machine's load hits both, and reports the median seconds per step after one warm-up
call.  Writes `bench/results/jit_compile.json`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.images import stops_on_missing_image  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def time_step(objective, param, jit: bool, steps: int) -> tuple[float, float]:
    """(first call s, median later call s) of value-and-gradient, compiled with or without XLA."""
    import tensorflow as tf

    variable = tf.Variable(param)

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(objective.terms(variable)["total"])
        return total, tape.gradient(total, variable)

    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        total, grad = step()
        float(total), grad.numpy()  # wait for the result
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def size_row(size: int, measured: dict[bool, list[tuple[float, float]]], load_average: float) -> dict:
    """One size's row from its (first call s, median step s) pairs per round, keyed by `jit`."""
    plain = statistics.median(s for _, s in measured[False])
    xla = statistics.median(s for _, s in measured[True])
    return {"size": size, "plain_step_s": plain, "xla_step_s": xla, "xla_speedup": plain / xla,
            "plain_first_call_s": [f for f, _ in measured[False]], "xla_first_call_s": [f for f, _ in measured[True]],
            "load_average": load_average}


def to_json(backbone_name: str, rows: list[dict]) -> str:
    """The file's exact text: one writer, so a test can tell a hand edit from the command's output."""
    return json.dumps({"objective": "default StyleConfig", "backbone": backbone_name, "rows": rows}, indent=1)


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from bench import images
    from transfer.backbones.load import load_backbone
    from transfer.core.objective import build_objective
    from transfer.core.spec import make_spec

    backbone = load_backbone("vgg16-mri")
    rows = []
    for size in args.sizes:
        content, style = images.pair(size)
        objective = build_objective(backbone, make_spec(), content[None], [(style, 1.0)])
        param = objective.to_param(content[None])
        measured: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for jit in (False, True):
                measured[jit].append(time_step(objective, param, jit, args.steps))
        row = size_row(size, measured, os.getloadavg()[0])
        rows.append(row)
        plain, xla = row["plain_step_s"], row["xla_step_s"]
        print(f"{size}²: plain {plain:.3f} s/step, XLA {xla:.3f} s/step -> XLA speed-up {plain / xla:.2f}x "
              f"(first call {row['plain_first_call_s'][0]:.1f} vs {row['xla_first_call_s'][0]:.1f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "jit_compile.json"
    path.write_text(to_json(backbone.name, rows))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
