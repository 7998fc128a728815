"""`python -m bench.run`: time our loop against the seeds' loops, in one process, one run.

    python -m bench.run [--quick] [--sizes 256,512] [--out bench/results] [--device-info]

Writes one JSON file per benchmark into `--out` (environment, step_time, time_to_target,
batching, floors) and regenerates `RESULTS.md` there.  Progress goes to stderr.

Modes (what each runs is written into the results; nothing is extrapolated except where said):
  full   ms/step at 256², 512², 1024²; time-to-target at 512² against the loss the tutorial
         loop reaches after 1000 steps (issue 8's headline), read from the curve recorded once by
         `python -m bench.reference_curve --size 512 --steps 1000` (35-60 min, too long to rerun
         here); the loop's time to it is *estimated* from its step time measured in this run
         (first step + 999 x median step; the recorded run's own time is reported next to it).
         Only the fast schedule (fp32, bf16) races, each capped at 1/5 of that time (the floor).
         Without the curve file: the old target, 100 tutorial steps at 256², everyone races.
         B=4 grid vs 4 separate runs at the target size.
  quick  everything at 256² only, few steps; target = the tutorial's loss after 15 steps;
         only our configurations race to it.
  tiny   32², 2 steps: a smoke run for tests (`--tiny`).
Order: the tutorial run that sets (or times) the target, our configurations racing to it, step
times, batching, then (full mode without the curve) the seed loops racing to it.  A deadline
per mode (full 14 min, quick 2.7 min) skips step-time runs and races that would overrun it;
skipped rows say so.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.images import STYLE, shared_image, stops_on_missing_image  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def elapsed() -> float:
    return time.perf_counter() - _T0


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of each benchmark a mode runs.  Budgets are in steps, never extrapolated."""

    mode: str
    sizes: tuple[int, ...]
    target_size: int
    target_steps: int  # tutorial steps whose loss is the time-to-target goal
    timed_steps: int  # steady-state steps timed after one warm-up step (fewer at large sizes)
    batch_steps: int
    eval_every: int  # yardstick scoring interval in the time-to-target runs
    deadline_s: float  # step-time runs and reference races that would end after this (since start) are skipped
    cap_factor: float = 1.0  # each contestant gets cap_factor x the tutorial's time to the target
    race_references: bool = True  # also race the seed loops (after everything else, deadline allowing)
    batch: int = 4
    sequential_runs: int = 4  # separate single-pair runs timed next to the batched one
    # The target from a recorded tutorial curve (`python -m bench.reference_curve`, too long to rerun
    # here): its yardstick loss after `target_steps` steps; this run times `timing_steps` tutorial
    # steps and estimates the loop's time to the target as first step + (target_steps - 1) x step time.
    target_curve: bool = False
    timing_steps: int = 4
    ours_race: tuple[str, ...] | None = None  # None: OURS_RACE
    race_cap_s: float | None = None  # an absolute cap per contestant on top of cap_factor (time budget)
    matmul_n: int | None = None  # None: 2048 on CPU, 8192 on GPU
    skip: frozenset = frozenset()  # (size, method) pairs not timed, to stay in the time budget

    def steps_at(self, size: int) -> int:
        return self.timed_steps if size <= 256 else (min(self.timed_steps, 3) if size <= 512 else 2)


PLANS = {
    # full: the headline target (1000 tutorial steps at 512², from the recorded curve); the fast
    # schedule (bf16, the faster precision) gets 1/5 of the tutorial's time (the floor) but at most
    # 300 s, so the whole bench stays under 15 min; `python -m bench.headline` runs it to the end
    "full": Plan("full", (256, 512, 1024), 512, 1000, 4, 4, 10, deadline_s=840, cap_factor=0.2,
                 skip=frozenset({(1024, "keras-lbfgs"), (1024, "article")}), target_curve=True,
                 race_references=False, ours_race=("ours-tutorial-fast-bf16",), race_cap_s=300.0),
    "quick": Plan("quick", (256,), 256, 15, 3, 2, 1, deadline_s=160, sequential_runs=1, race_references=False),
    "tiny": Plan("tiny", (32,), 32, 2, 2, 2, 1, deadline_s=600, sequential_runs=1, matmul_n=256),
}

#: Methods: name -> (what it is, network passes per loss+gradient evaluation, for FLOP counting).
DESCRIPTIONS = {
    "tutorial": ("seed 000: TF tutorial, tf.function step, Keras Adam(0.02, β1 0.99, ε 0.1)", 1),
    "article": ("seed 003: SSD article, eager per-step loop, raw-feature style loss", 1),
    "keras-lbfgs": ("seed 001: Keras example, scipy fmin_l_bfgs_b(maxfun=20), batch of 3 per evaluation", 3),
    "ours": ("transfer.core.stylizer.stylize with Adam (bench.ours.OURS; this toolkit's normalised loss)", 1),
    "ours-bf16": ("ours on a mixed_bfloat16 copy of the backbone (Grams in fp32)", 1),
    "ours-lbfgs": ("stylize with optimizer='lbfgs' (steps and times per L-BFGS *iteration*: StepInfo does "
                   "not expose evaluations)", 1),
    "ours-tutorial-lbfgs": ("stylize with the `tutorial` recipe (the yardstick's loss) and optimizer='lbfgs' "
                            "(steps and times per L-BFGS iteration)", 1),
    "ours-tutorial-multiscale": ("stylize with the `tutorial` recipe (its Adam) and scales=3, the tutorial's "
                                 "step count per scale", 1),
    "ours-tutorial-fast": ("stylize with the `tutorial` recipe and schedule='fast' (transfer/core/schedules.py: "
                           "L-BFGS on a smooth TV whose eps shrinks stage by stage), steps = the schedule's "
                           "budget in L-BFGS iterations", 1),
    "ours-tutorial-fast-bf16": ("ours-tutorial-fast on with_precision(backbone, 'bf16') (`--precision bf16`)", 1),
}
#: Who races to the target: our configurations that can win it (the default objective shows
#: how far its own loss is from the tutorial's), then the seed loops.  Default-objective L-BFGS
#: only gets step times: it minimises another loss.
OURS_RACE = ("ours-tutorial-fast", "ours-tutorial-fast-bf16", "ours", "ours-tutorial-lbfgs",
             "ours-tutorial-multiscale")
REFERENCES_RACE = ("keras-lbfgs", "article")
#: Methods that get dedicated step-time runs at every size; the others are timed from their race.
TIMED = ("tutorial", "ours", "ours-bf16", "ours-lbfgs", "keras-lbfgs", "article")


def build_methods(backbone, plan: Plan) -> tuple[dict[str, tuple[Callable, object]], list[str]]:
    """Name -> (loop, backbone it runs on), and notes (none today: every variant is available)."""
    from bench import ours, reference_article, reference_keras_lbfgs, reference_tutorial

    from transfer.backbones.precision import with_precision

    methods = {"tutorial": (reference_tutorial.run, backbone), "ours": (ours.runner(), backbone)}
    variants, notes = dict(ours.OPTIONAL_VARIANTS), []
    precisions = {"fp32": backbone, "bf16": with_precision(backbone, "bf16")}  # one bf16 copy for every variant
    for name, overrides in variants.items():
        methods[name] = (ours.runner(overrides, total_steps=plan.target_steps),
                         precisions[overrides.get("precision", "fp32")])
        DESCRIPTIONS.setdefault(name, (f"stylize with make_spec(**{overrides})", 1))
    methods["keras-lbfgs"] = (reference_keras_lbfgs.run, backbone)
    methods["article"] = (reference_article.run, backbone)
    methods["ours-bf16"] = (ours.runner(), precisions["bf16"])
    return methods, notes


def is_multiscale(name: str) -> bool:
    """Multi-scale runs change size between steps, so a per-step time means nothing for them."""
    from bench.ours import OPTIONAL_VARIANTS

    variant = OPTIONAL_VARIANTS.get(name, {})
    return variant.get("scales", 1) > 1 or variant.get("schedule") is not None


def measure(loop: Callable, content, style, backbone, **probe_args):
    """Run one loop under a fresh probe; errors are recorded on the probe and logged."""
    from bench.probe import Probe

    probe = Probe(**probe_args).run(lambda p: loop(content, style, backbone, p))
    if probe.error:
        log(f"  error: {probe.error}")
    return probe


# ---------------------------------------------------------------- benchmarks


def matmul_peaks(plan: Plan) -> dict:
    """fp32 and bf16 matmul GFLOP/s right now (bf16: `gflops` None where unsupported)."""
    import tensorflow as tf

    from bench import hardware

    peaks = {name: hardware.matmul_peak(dtype, plan.matmul_n) for name, dtype in
             (("fp32", tf.float32), ("bf16", tf.bfloat16))}
    log(f"matmul peaks: fp32 {peaks['fp32']['gflops'] or 0:.0f} GFLOP/s, bf16 {peaks['bf16']['gflops'] or 0:.0f} GFLOP/s")
    return peaks


def best_peaks(start: dict, end: dict) -> dict:
    """The higher of the two measurements: the machine's capability, so utilisation is not flattered."""
    best = {}
    for key in start:
        values = [p[key]["gflops"] for p in (start, end) if p[key]["gflops"] is not None]
        best[key] = {**start[key], "gflops": max(values) if values else None}
    return best


def environment(plan: Plan, backbone, methods: dict, notes: list[str]) -> dict:
    """Device, software, and the matmul peaks at the start of the run (measured again at the end)."""
    from bench import hardware, images

    return {
        "device": hardware.device_info(),
        "peaks_start": matmul_peaks(plan),
        "flop_convention": hardware.FLOP_CONVENTION,
        "backbone": {"name": backbone.name, "profile": backbone.profile, "description": backbone.description},
        "images": images.describe(),
        "plan": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(plan).items()},
        "methods": {name: DESCRIPTIONS[name][0] for name in methods},
        "notes": notes,
    }


class Race:
    """Time to the tutorial's loss: the tutorial sets the target, then contestants chase it."""

    def __init__(self, plan: Plan, methods: dict, probes: dict, curve: dict | None = None):
        """`curve`: the recorded tutorial curve (`recorded_curve`) that sets the target, or None to run it here."""
        from bench import images
        from bench.yardstick import Yardstick

        self.plan, self.methods, self.probes = plan, methods, probes
        self.size = plan.target_size
        self.content, self.style = images.pair(self.size)
        loop, backbone = methods["tutorial"]
        self.yardstick = Yardstick(self.content, self.style, backbone)
        self.curve = curve
        self.estimate: dict | None = None
        if self.curve is not None:
            reference = self._time_from_curve(loop, backbone)
        else:
            log(f"time-to-target: tutorial, {plan.target_steps} steps at {self.size}²")
            # scoring every `target_steps` steps scores exactly the final image, with the clock paused
            reference = measure(loop, self.content, self.style, backbone, max_steps=plan.target_steps,
                                yardstick=self.yardstick, eval_every=plan.target_steps)
            if reference.error or not reference.curve:
                raise RuntimeError(f"the tutorial loop defines the target and failed: {reference.error}")
            self.target, self.seconds = reference.curve[-1][2], reference.times[-1]
            self.target_terms = reference.last_terms
        self.cap = plan.cap_factor * self.seconds
        if plan.race_cap_s is not None:
            self.cap = min(self.cap, plan.race_cap_s)
        reference.reached = (self.seconds, plan.target_steps)
        probes[("tutorial", self.size)] = reference
        self.rows = {"tutorial": _ttt_row(reference, self.seconds)}
        if self.curve is not None:  # its row describes the recorded run at the target, not the few steps timed now
            self.rows["tutorial"].update(best_loss=self.target, last_terms=self.target_terms, steps=plan.target_steps,
                                         evaluations=plan.target_steps, estimated=True)
        self.skipped: dict[str, str] = {}
        log(f"target loss {self.target:,.0f} after {self.seconds:.1f} s")

    def _time_from_curve(self, loop, backbone):
        """Target from the recorded curve; the loop's time to it from its step time measured now."""
        plan, curve = self.plan, self.curve
        row = next(r for r in curve["scored"] if r["step"] == plan.target_steps)  # recorded_curve checked it
        self.target, self.target_terms = row["total"], {k: row[k] for k in ("style", "content", "tv", "total")}
        steps = plan.timing_steps
        log(f"time-to-target: target from the recorded curve ({plan.target_steps} steps at {self.size}²: "
            f"{self.target:,.0f}); timing {steps} tutorial steps now")
        reference = measure(loop, self.content, self.style, backbone, max_steps=steps,
                            yardstick=self.yardstick, eval_every=steps)
        if reference.error or not reference.curve:
            raise RuntimeError(f"the tutorial loop failed: {reference.error}")
        step_s = reference.step_ms() / 1000.0
        self.seconds = reference.times[0] + (plan.target_steps - 1) * step_s
        own = curve["own_loss_before_step"]
        self.estimate = {
            "timed_steps": steps, "first_step_seconds": reference.times[0], "step_seconds": step_s,
            "loss_after_timed_steps": reference.curve[-1][2],
            "recorded_loss_after_timed_steps": own[steps] if len(own) > steps else None,
            "recorded_seconds_to_target": curve["seconds"][plan.target_steps - 1],
            "recorded_load_average": curve.get("load_average"), "curve_file": curve["path"],
        }
        log(f"tutorial: {step_s:.2f} s/step now -> {self.seconds:.0f} s estimated to the target "
            f"(the recorded run took {self.estimate['recorded_seconds_to_target']:.0f} s)")
        return reference

    def chase(self, names: tuple[str, ...], deadline: float = float("inf")) -> None:
        for name in names:
            if name not in self.methods:
                continue
            if elapsed() + self.cap > deadline:
                self.skipped[name] = f"time budget (its {self.cap:.0f} s cap would pass the {deadline:.0f} s deadline)"
                log(f"time-to-target: {name} skipped ({self.skipped[name]})")
                continue
            loop, backbone = self.methods[name]
            log(f"time-to-target: {name} (cap {self.cap:.0f} s)")
            probe = measure(loop, self.content, self.style, backbone, max_seconds=self.cap,
                            yardstick=self.yardstick, target=self.target, eval_every=self.plan.eval_every)
            self.probes[(name, self.size)] = probe
            self.rows[name] = row = _ttt_row(probe, self.seconds)
            if self.estimate is not None:  # the recorded curve gives losses at other tutorial step counts too
                from bench.reference_curve import milestones

                row["milestones"] = milestones(self.curve, self.estimate["first_step_seconds"],
                                               self.estimate["step_seconds"], probe.curve)
            best = row["best_loss"]
            log(f"  {name}: " + (f"reached in {row['seconds']:.1f} s" if row["reached"] else
                                 f"not reached, best {best:,.0f}" if best is not None else "no score"))

    def results(self) -> dict:
        definition = (f"yardstick (seed-000) loss of the tutorial loop's image after {self.plan.target_steps} "
                      f"steps at {self.size}²")
        if self.estimate is not None:
            e = self.estimate
            definition += (f", read from the recorded run `{Path(e['curve_file']).name}` (`python -m "
                           f"bench.reference_curve`; that run took {e['recorded_seconds_to_target']:.0f} s on a "
                           f"busier machine); the tutorial's time here is ESTIMATED from {e['timed_steps']} steps "
                           f"timed in this run: first step {e['first_step_seconds']:.1f} s + "
                           f"{self.plan.target_steps - 1} x {e['step_seconds']:.2f} s (its loss after "
                           f"{e['timed_steps']} steps: {e['loss_after_timed_steps']:,.0f} here, "
                           f"{e['recorded_loss_after_timed_steps'] or 0:,.0f} in the recorded run)")
        return {
            "size": self.size,
            "target_definition": definition,
            "tutorial_time_estimate": self.estimate,
            "target_steps": self.plan.target_steps,
            "target_loss": self.target,
            "target_terms": self.target_terms,
            "tutorial_seconds": self.seconds,
            "cap_seconds": self.cap,
            "eval_every": self.plan.eval_every,
            "methods": self.rows,
            "skipped": self.skipped,
        }


def recorded_curve(plan: Plan, backbone) -> dict | None:
    """The recorded tutorial curve for this size, pair and backbone, if it reaches the target step."""
    from bench.reference_curve import matching_curve

    curve, why_not = matching_curve(plan.target_size, backbone.name, plan.target_steps, DEFAULT_OUT)
    if curve is None:
        log(f"{why_not}: not used")
    return curve


def _ttt_row(probe, reference_seconds: float) -> dict:
    losses = [loss for _, _, loss in probe.curve]
    seconds = probe.reached[0] if probe.reached else None
    return {
        "reached": probe.reached is not None,
        "seconds": seconds,
        "steps": probe.reached[1] if probe.reached else len(probe.times),
        "evaluations": probe.evaluations,
        "run_seconds": probe.times[-1] if probe.times else None,
        "best_loss": min(losses) if losses else None,
        "last_terms": probe.last_terms,
        "speedup_vs_tutorial": reference_seconds / seconds if seconds else None,
        "stop_reason": probe.stop_reason,
        "error": probe.error,
        "load_average": probe.load,
        "curve": [[round(t, 3), s, loss] for t, s, loss in probe.curve],
    }


def step_times(plan: Plan, methods: dict, probes: dict) -> dict:
    """Median ms per loss+gradient evaluation for every method and size; reuses long-enough runs."""
    from bench import images

    rows: dict[int, dict] = {}
    for size in plan.sizes:
        content, style = images.pair(size)
        rows[size] = {}
        for name, (loop, backbone) in methods.items():
            if is_multiscale(name):  # its step time changes with the scale: no single figure
                continue
            reason = _skip_reason(plan, name, size, rows)
            if reason:
                rows[size][name] = {"ms_per_eval": None, "skipped": reason}
                continue
            probe = probes.get((name, size))
            if probe is None or probe.evaluations - probe.units[0] < 2 or probe.error:
                if name not in TIMED:  # timed only where its race ran
                    continue
                # costlier evaluations (the Keras example's batch of three) get fewer timed steps
                steps = 1 + max(1, round(plan.steps_at(size) / DESCRIPTIONS[name][1]))
                log(f"step time: {name} at {size}² ({steps} steps)")
                probe = measure(loop, content, style, backbone, max_steps=steps)
                probes[(name, size)] = probe
            rows[size][name] = _step_row(name, probe, size)
        _add_ratios(rows[size])
        log(f"{size}²: " + ", ".join(f"{n} {r['ms_per_eval']:.0f} ms" for n, r in rows[size].items()
                                     if r.get("ms_per_eval")))
    from bench import hardware

    return {"unit": "ms per loss+gradient evaluation (median after one warm-up step); multi-scale runs have "
                    "no single step time, and configurations outside the timed set appear only at the "
                    "size they raced at",
            "flop_convention": hardware.FLOP_CONVENTION, "sizes": rows}


def _skip_reason(plan: Plan, name: str, size: int, rows: dict) -> str | None:
    """Why a step-time run is not made: the plan's skip list, or the deadline."""
    if (size, name) in plan.skip:
        return "time budget (plan)"
    smaller = [s for s in rows if s < size and rows[s].get(name, {}).get("ms_per_eval")]
    if smaller:  # estimate from the largest smaller size: cost grows with the pixel count
        s = max(smaller)
        estimate = rows[s][name]["ms_per_eval"] / 1000 * (size / s) ** 2 * (2 + plan.steps_at(size))
        if elapsed() + estimate > plan.deadline_s:
            return f"time budget (≈{estimate:.0f} s would pass the {plan.deadline_s:.0f} s deadline)"
    return None


def _step_row(name: str, probe, size: int) -> dict:
    from bench import hardware

    ms = probe.step_ms()
    passes = DESCRIPTIONS.get(name, ("", 1))[1]
    return {
        "ms_per_eval": ms,
        "timed_evaluations": probe.evaluations - probe.units[0] if probe.units else 0,
        "gflops": hardware.step_flops(size, size, passes) / (ms / 1000.0) / 1e9 if ms else None,
        "peak_used": "bf16" if name.endswith("bf16") else "fp32",
        "load_average": probe.load,
        "error": probe.error,
        "peak_rss_mb_so_far": hardware.peak_rss_mb(),
    }


def add_peak_fractions(steps: dict, peaks: dict) -> None:
    """Achieved GFLOP/s as a share of the matching matmul peak, and of the fp32 peak."""
    fp32 = peaks["fp32"]["gflops"]
    for row in steps["sizes"].values():
        for r in row.values():
            if r.get("gflops"):
                peak = peaks[r["peak_used"]]["gflops"]
                r["fraction_of_peak"] = r["gflops"] / peak if peak else None
                r["fraction_of_fp32_peak"] = r["gflops"] / fp32 if fp32 else None


def _add_ratios(row: dict) -> None:
    """`ratio_to_X` = this method's ms / X's ms (below 1: faster than X), per the issue's ours / reference."""
    for r in row.values():
        for ref in ("tutorial", "article"):
            ref_ms = row.get(ref, {}).get("ms_per_eval")
            r[f"ratio_to_{ref}"] = r["ms_per_eval"] / ref_ms if r.get("ms_per_eval") and ref_ms else None


def batching(plan: Plan, methods: dict) -> dict:
    """B contents sharing one style in one `stylize` call, against one pair at a time, timed back to back."""
    from bench import images

    size, batch, steps = plan.target_size, plan.batch, 1 + plan.batch_steps
    loop, backbone = methods["ours"]
    contents = images.content_batch(size, batch)
    _, style = images.pair(size)
    log(f"batching: {plan.sequential_runs} single-pair run(s), then B={batch} at {size}², {steps} steps each")
    singles = [measure(loop, c, style, backbone, max_steps=steps) for c in contents[: plan.sequential_runs]]
    batched = measure(loop, contents, style, backbone, max_steps=steps)
    single_ms = sorted(r.step_ms() for r in singles)[len(singles) // 2]
    result = {
        "size": size, "batch": batch, "steps": steps,
        "single_runs": len(singles), "single_ms_per_step": single_ms,
        "batched_ms_per_step": batched.step_ms(), "batched_wall_seconds": batched.times[-1],
        "per_image_speedup": single_ms / (batched.step_ms() / batch),
        "load_average": [singles[0].load[0], batched.load[1]],
    }
    if len(singles) == batch:  # B separate runs: the end-to-end comparison a user would see
        result["sequential_wall_seconds"] = sum(r.times[-1] for r in singles)
        result["end_to_end_speedup"] = result["sequential_wall_seconds"] / result["batched_wall_seconds"]
    log(f"batching: per-image speed-up {result['per_image_speedup']:.2f}x")
    return result


def floors(env: dict, steps: dict, ttt: dict, batch: dict) -> list[dict]:
    """The issue's five floors, each met / not met / not measured, with where it was measured."""
    sizes = steps["sizes"]
    at = 512 if 512 in sizes else max(sizes)
    where, indicative = f"{at}²", at != 512
    row = sizes[at]
    ours_ms, article_ms, bf16_ms = (row.get(n, {}).get("ms_per_eval") for n in ("ours", "article", "ours-bf16"))
    fp32_peak = env["peaks"]["fp32"]["gflops"]
    bf16_supported = env["peaks"]["bf16"]["gflops"] is not None
    ours_rows = {n: r for n, r in ttt["methods"].items() if n.startswith("ours")}
    fastest = max(ours_rows, key=lambda n: ours_rows[n]["speedup_vs_tutorial"] or 0.0, default=None)
    ttt_ours = ours_rows.get(fastest, {})
    if ttt_ours.get("reached"):
        missed = f"; fastest of ours: `{fastest}`"
    else:
        closest = min(ours_rows, key=lambda n: ours_rows[n]["best_loss"] or float("inf"), default=None)
        missed = (f"; none of ours ({', '.join(ours_rows)}) reached it within {ttt['cap_seconds']:.0f} s; closest "
                  f"`{closest}` at {ours_rows[closest]['best_loss'] or 0:,.0f} vs target {ttt['target_loss']:,.0f}"
                  if closest else "; ours did not run")
    return [
        _floor("Adam step vs article's eager loop", 2.5, article_ms / ours_ms if ours_ms and article_ms else None,
               "×", where, "article ms/step ÷ ours ms/step", indicative),
        _floor("time to the tutorial's loss vs seed-000 loop", 5.0, ttt_ours.get("speedup_vs_tutorial"), "×",
               f"{ttt['size']}², {ttt['target_steps']} tutorial steps",
               "tutorial seconds" + (" (estimated from its step time measured in this run)"
                                     if ttt.get("tutorial_time_estimate") else "") + " ÷ ours seconds" + missed,
               ttt["target_steps"] != 1000),
        _floor("share of measured fp32 matmul peak", 0.75, row.get("ours", {}).get("fraction_of_fp32_peak"), "",
               where, f"ours GFLOP/s ÷ fp32 matmul peak ({fp32_peak or 0:.0f} GFLOP/s)", indicative),
        _floor("bf16 step vs fp32 step", 1.5, ours_ms / bf16_ms if bf16_supported and ours_ms and bf16_ms else None,
               "×", where, "ours ms/step ÷ ours-bf16 ms/step" + ("" if bf16_supported else "; bf16 unsupported"),
               indicative),
        _floor("grid batching per image", 1.3, batch["per_image_speedup"], "×", f"B={batch['batch']} at {batch['size']}²",
               "single-pair ms/step ÷ (batched ms/step ÷ B), steady state, timed back to back", False),
    ]


def _floor(name: str, required: float, measured: float | None, unit: str, where: str, how: str,
           indicative: bool) -> dict:
    """`indicative`: measured, but not under the exact conditions the floor names (size or target)."""
    return {"floor": name, "required": required, "measured": measured, "unit": unit,
            "met": None if measured is None else bool(measured >= required),
            "indicative": indicative, "where": where, "how": how}


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="256² only, few steps (under 3 min)")
    mode.add_argument("--tiny", action="store_true", help="32², 2 steps: a smoke run for tests")
    parser.add_argument("--sizes", help="comma-separated square sizes for ms/step, e.g. 256,512")
    parser.add_argument("--target-steps", type=int, help="tutorial steps that define the target loss")
    parser.add_argument("--target-size", type=int, help="size of the time-to-target and batching runs")
    parser.add_argument("--backbone", default="vgg16-mri", help="backbone name (default vgg16-mri)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for *.json and RESULTS.md")
    parser.add_argument("--device-info", action="store_true", help="print the device description as JSON and exit")
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    changes: dict = {}
    if args.sizes:
        changes["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    if args.target_steps:
        changes["target_steps"] = args.target_steps
        changes["deadline_s"] = float("inf")  # an explicit target asks for the long run
    if args.target_size:
        changes["target_size"] = args.target_size
    return dataclasses.replace(plan, **changes)


@stops_on_missing_image
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench import hardware, report
    from transfer.backbones.load import load_backbone

    if args.device_info:
        print(json.dumps(hardware.device_info(), indent=2, default=str))
        return 0
    shared_image(STYLE)  # stop before any measurement, not after the first minutes of it
    plan = make_plan(args)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    log(f"mode {plan.mode}: sizes {plan.sizes}, target {plan.target_steps} tutorial steps at {plan.target_size}²")
    backbone = load_backbone(args.backbone)
    methods, notes = build_methods(backbone, plan)
    for note in notes:
        log(note)
    env = environment(plan, backbone, methods, notes)
    probes: dict = {}
    curve = recorded_curve(plan, backbone) if plan.target_curve else None
    if plan.target_curve and curve is None:
        plan = dataclasses.replace(plan, target_size=256, target_steps=100, target_curve=False, cap_factor=1.0,
                                   ours_race=None, eval_every=2, race_references=True)
        log(f"falling back to the target: {plan.target_steps} tutorial steps at {plan.target_size}²")
    race = Race(plan, methods, probes, curve)
    race.chase(plan.ours_race or OURS_RACE)
    for name in OURS_RACE:
        if name in methods and name not in race.rows and name not in race.skipped:
            race.skipped[name] = "not in this mode's race (time budget: each gets 1/5 of the tutorial's time)"
    steps = step_times(plan, methods, probes)
    batch = batching(plan, methods)
    if plan.race_references:
        race.chase(REFERENCES_RACE, deadline=plan.deadline_s)
    ttt = race.results()
    env["peaks_end"] = matmul_peaks(plan)
    env["peaks"] = best_peaks(env["peaks_start"], env["peaks_end"])
    add_peak_fractions(steps, env["peaks"])
    floor_rows = floors(env, steps, ttt, batch)
    env.update(wall_seconds=elapsed(), peak_rss_mb=hardware.peak_rss_mb(), gpu_peak_mb=hardware.gpu_peak_mb(),
               load_average_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    run_info = {"mode": plan.mode, "started": started, "gpus": env["device"]["gpus"]}
    paths = report.write(args.out, run_info, {"environment": env, "time_to_target": ttt, "step_time": steps,
                                               "batching": batch, "floors": floor_rows})
    log(f"done in {env['wall_seconds']:.0f} s: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
