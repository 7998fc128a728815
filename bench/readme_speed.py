"""The README's issue-21 speed regions, rendered from committed results (used by `bench.readme`).

Kept apart from `bench.readme` so each file holds one subject: here the default's speed
(`default_speed_<size>.json`), the levers on the tutorial's loss (`levers_512.json`) and the
exact-TV proximal trial (`proximal_trial_256.json`).  Pure Python: no TensorFlow, no measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Issue 21's targets (requirements, not measurements).
DEFAULT_TARGET = 5.0  # the new default reaches today's default's loss this many times sooner
FLOOR_SHARE = 0.2  # the tutorial's 1000-step loss within this share of its time
HALF_TARGET = 8.0  # the tutorial's 500-step loss this many times sooner
MOONSHOT = 20.0  # the tutorial's 1000-step loss this many times sooner
BF16_ALGORITHM_TARGET = 3.0  # against the bf16 tutorial loop at its 1000-step loss


def read_optional(results: Path, name: str) -> dict | None:
    path = results / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _para(text: str) -> str:
    from bench.readme import _para as wrap

    return wrap(text)


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    from bench.readme import _table as table

    return table(header, align, rows)


def _method_label(name: str, row: dict, spec: dict) -> str:
    options = ", ".join(f"{k} {v}" for k, v in spec["spec"].items()) or "no options: `detstyle stylize`'s default"
    return f"{name} ({options}; {row['precision']})"


def _speed_row(name: str, row: dict, spec: dict) -> list[str]:
    reached = f"{row['seconds_to_target']:.0f} s" if row["seconds_to_target"] else "not reached"
    ratio = f"**{row['speedup']:.1f}×**" if row.get("speedup") else "–"
    return [_method_label(name, row, spec), reached, ratio,
            f"{row['seconds']:.0f} s, {row['steps']} steps ({row['stop_reason']})", f"{row['final_loss']:.5f}",
            *_quality_cells(row.get("quality"))]


def _quality_cells(q: dict | None) -> list[str]:
    """A picture's metrics; a run stopped at the target has no final picture to judge ("—")."""
    if not q:
        return ["—"] * 3
    return [f"{q['judge_gram']:.3f}", f"{q['palette_swd']:.2f}", f"{q['ssim']:.3f}"]


def speed_table(record: dict) -> list[str]:
    """Every pair: the baseline, then each candidate, with time to target, ratio and picture metrics."""
    rows = []
    for pair, data in record["pairs"].items():
        rows.append([f"*{pair.replace(':', ' × ')}*", "", "", "", "", "", "", ""])
        rows.append(_speed_row("former default", data["baseline"], record["baseline"]))
        for name, row in data["candidates"].items():
            rows.append(_speed_row(name, row, record["candidates"][name]))
    return _table(["method", "to the target", "ratio", "whole run", "final loss", "judge Gram ↓", "palette ↓",
                   "SSIM ↑"], ["---", "---:", "---:", "---", "---:", "---:", "---:", "---:"], rows)


def _default_ratios(record: dict) -> list[float | None]:
    return [data["candidates"].get("default", {}).get("speedup") for data in record["pairs"].values()]


#: The comparison metrics of a picture and which way is better (transfer.quality.metrics.score).
PICTURE_METRICS = {"judge_gram": "lower", "judge_swd": "lower", "palette_swd": "lower", "ssim": "higher",
                   "edge_corr": "higher"}


def picture_verdict(record: dict, candidate: str = "default") -> str:
    """Which metrics of the candidate's final picture are worse than the baseline's, pair by pair."""
    worse, total = [], 0
    for pair, data in record["pairs"].items():
        base, mine = data["baseline"]["quality"], data["candidates"][candidate]["quality"]
        for metric, better in PICTURE_METRICS.items():
            total += 1
            if (mine[metric] > base[metric]) if better == "lower" else (mine[metric] < base[metric]):
                worse.append(f"{metric} on {pair.split(':')[0]} ({mine[metric]:.3f} vs {base[metric]:.3f})")
    if not worse:
        return f"Its final pictures are at least as good by all {total} metric readings."
    return (f"Its final pictures are as good or better in {total - len(worse)} of {total} metric readings "
            f"(judge Gram and SWD, palette, SSIM, edge correlation); worse in: {'; '.join(worse)}.")


def speed_command(record: dict) -> str:
    """The command line that wrote a `default_speed` record (its pairs, candidates and cap)."""
    candidates = " ".join(next(iter(record["pairs"].values()))["candidates"])
    cap = f" --cap-seconds {record['cap_seconds']:g}" if record.get("cap_seconds") else ""
    return (f"python -m bench.default_speed --size {record['size']} --pairs {' '.join(record['pairs'])} "
            f"--candidates {candidates}{cap}")


def default_speed_section(results) -> str:
    main, levers = results.default_speed, results.default_levers
    ratios = _default_ratios(main)
    met = all(r is not None and r >= DEFAULT_TARGET for r in ratios)
    shown = ", ".join(f"{r:.1f}×" if r else "not reached" for r in ratios)
    intro = (f"`python -m bench.default_speed --size {main['size']}` (`default_speed_{main['size']}.json`, "
             f"`{main['backbone']}`, one run; every image scored by the default objective in fp32 every "
             f"{main['score_every']} steps, clock paused; the target of each pair is the loss the former default ends at). "
             f"The new default reaches it {shown} sooner: issue 21's ≥ {DEFAULT_TARGET:.0f}× is "
             f"{'met' if met else 'not met'}. {picture_verdict(main)}")
    parts = [_para(intro), "", *speed_table(main)]
    if levers is not None:
        parts += ["", _para(f"Each lever alone, `{speed_command(levers)}` (`default_speed_{levers['size']}.json`, one "
                            f"run, at {levers['size']}² to keep it short; a candidate that has not reached the target "
                            "stops at the cap):"),
                  "", *speed_table(levers)]
    return "\n".join(parts)


def _lever_cells(run: dict) -> list[str]:
    cells = []
    for row in run["milestones"]:
        cells.append(f"{row['seconds']:.0f} s ({row['vs_fp32']:.1f}× / {row['vs_bf16']:.1f}×)" if row["seconds"]
                     else "not reached")
    return cells


def levers_section(results) -> str:
    rec = results.levers
    tut = rec["tutorial_now"]
    steps = [row["tutorial_steps"] for row in next(iter(rec["runs"].values()))["milestones"]]
    base = [["seed-000 loop, fp32 (extrapolated)", "fp32",
             *(f"{tut['fp32']['first_step_seconds'] + (m - 1) * tut['fp32']['step_seconds']:.0f} s" for m in steps), "—"],
            ["seed-000 loop, bf16 backbone (extrapolated)", "bf16",
             *(f"{tut['bf16']['first_step_seconds'] + (m - 1) * tut['bf16']['step_seconds']:.0f} s" for m in steps), "—"]]
    rows = [[f"`--schedule {key.split('/')[0]}`", key.split("/")[1], *_lever_cells(run),
             f"{run['final_loss'] / 1e6:.3f} M ({run['stop_reason']}, {run['seconds']:.0f} s)"]
            for key, run in rec["runs"].items()]
    intro = (f"`python -m bench.levers --size {rec['size']}` (`levers_{rec['size']}.json`, one run, {rec['images']['content']} × "
             f"{rec['images']['style']}, `{rec['backbone']}`). The seed-000 loop's time to its step *m* is extrapolated "
             f"from {rec['timing_steps']} steps timed now in fp32 "
             f"({tut['fp32']['step_seconds']:.2f} s/step) and with its backbone in bf16 ({tut['bf16']['step_seconds']:.2f} "
             f"s/step; its losses taken as the fp32 curve's, which they follow within 0.5 % per "
             f"shared/docs/performance-facts.md: after the timed steps {tut['bf16']['loss_after_timed_steps'] / 1e6:.3f} M "
             f"against {tut['fp32']['loss_after_timed_steps'] / 1e6:.3f} M). Each method is stopped at the 1000-step loss "
             f"or at the floor's time, {rec['floor_seconds']:.0f} s (1/5 of the fp32 loop's). Cells: seconds to the "
             "tutorial's loss after *m* steps (ratio against the fp32 loop / the bf16 loop):")
    return "\n".join([_para(intro), "",
                      *_table(["method", "precision", *(f"{m} steps" for m in steps), "final loss"],
                              ["---", "---", *["---:"] * len(steps), "---:"], base + rows), "",
                      _para(lever_verdicts(rec))])


def _best(rec: dict, steps: int, key: str) -> tuple[str, float] | None:
    """The method with the highest ratio `key` at the tutorial's `steps` milestone, or None when none got there."""
    hits = [(name, row[key]) for name, run in rec["runs"].items() for row in run["milestones"]
            if row["tutorial_steps"] == steps and row[key]]
    return max(hits, key=lambda hit: hit[1]) if hits else None


def lever_verdicts(rec: dict) -> str:
    """Issue 21 §2's four targets against the best method of this run."""
    def said(steps: int, key: str, bound: float, what: str) -> str:
        best = _best(rec, steps, key)
        if best is None:
            return f"{what}: not met, no method reached the {steps}-step loss"
        name, ratio = best
        return f"{what}: {'met' if ratio >= bound else 'not met'} ({ratio:.1f}×, `{name}`)"

    floor = ("the floor (the 1000-step loss within 1/5 of the fp32 loop's time): "
             + ("met" if _best(rec, 1000, "vs_fp32") else f"not met, no method reached it in {rec['floor_seconds']:.0f} s"))
    return "Issue 21's targets: " + "; ".join([
        floor, said(500, "vs_fp32", HALF_TARGET, f"the 500-step loss ≥ {HALF_TARGET:.0f}× sooner"),
        said(1000, "vs_fp32", MOONSHOT, f"the moonshot, the 1000-step loss ≥ {MOONSHOT:.0f}× sooner"),
        said(1000, "vs_bf16", BF16_ALGORITHM_TARGET,
             f"≥ {BF16_ALGORITHM_TARGET:.0f}× against the bf16 loop at its 1000-step loss")]) + "."


def proximal_section(results) -> str:
    rec = results.proximal
    methods = rec["methods"]
    names = [m for m in ("proximal", "fast", "tutorial") if m in methods]
    rows = []
    for row in rec["milestones"]:
        rows.append([f"{row['tutorial_step']}", f"{row['target'] / 1e6:.2f} M",
                     *(f"{row[m]:.0f} s" if row.get(m) else "not reached" for m in names)])
    finals = "; ".join(f"{m} {methods[m]['curve'][-1][2] / 1e6:.2f} M after {methods[m]['curve'][-1][1]} iterations"
                       for m in names)
    intro = (f"**Exact L1 total variation** (`python -m bench.proximal_trial --size {rec['size']} --steps {rec['steps']}`, "
             f"`proximal_trial_{rec['size']}.json`): forward–backward splitting (FASTA: Barzilai–Borwein steps, "
             "non-monotone backtracking) whose TV step is solved exactly by Chambolle's dual projection "
             f"(`transfer/core/proximal.py`), against `--schedule fast` and the seed-000 loop: {rec['steps']} loss+gradient "
             f"evaluations for the proximal method (backtracks included) and the loop, {rec['steps']} L-BFGS iterations "
             f"(at least as many evaluations) for `fast` (load average {rec['load_start']:.1f} → {rec['load_end']:.1f}, "
             f"so compare the evaluations more than the seconds). Final seed-000 losses: {finals}. Per evaluation the "
             "proximal method falls behind the loop's own Adam, so it is not a `stylize` schedule. Seconds to the "
             "loop's loss after *m* of its steps:")
    return "\n".join([_para(intro), "",
                      *_table(["loop steps", "its loss", *names], ["---:", "---:", *["---:"] * len(names)], rows)])


def command_rows(results) -> list[list[str]]:
    """The issue-21 rows of the README's table of bench commands: command, what, how long it took."""
    main, levers, prox = results.default_speed, results.levers, results.proximal
    rows = [[f"`python -m bench.default_speed --size {main['size']}`",
             f"the default against the former default (Adam, 300 steps, fp32) on {len(main['pairs'])} pairs",
             f"{main['wall_seconds']:,.0f} s"]]
    if results.default_levers is not None:
        rows.append([f"`{speed_command(results.default_levers)}`", "each lever of the default alone",
                     f"{results.default_levers['wall_seconds']:,.0f} s"])
    rows.append([f"`python -m bench.levers --size {levers['size']}`",
                 "`--schedule fast` and `pyramid` on the tutorial's loss against the fp32 and bf16 tutorial loops",
                 f"{levers['wall_seconds']:,.0f} s"])
    rows.append([f"`python -m bench.proximal_trial --size {prox['size']} --steps {prox['steps']}`",
                 "exact-TV forward–backward splitting against `fast` and the tutorial loop", "not recorded"])
    return rows
