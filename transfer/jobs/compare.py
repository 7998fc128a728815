"""Compare backbones: every (content, style, backbone, preset) run at identical settings, scored.

Why a job of its own: "what does detection training do to style?" is answered by holding
everything but the backbone fixed (size, budget, seed, optimiser, loss normalisation) and
scoring each result with metrics that no compared backbone computes
(`transfer.quality`).  Each run is a `RunSpec` cached in a `RunStore`, so a rerun after a
failure or Ctrl-C redoes only what is missing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from transfer.core.spec import BackboneRef, ImageRef, RunSpec
from transfer.errors import DetstyleError
from transfer.jobs.engine import EngineChoice, UnitObserver, run_units
from transfer.jobs.store import RunStore


@dataclasses.dataclass(frozen=True)
class ComparisonRun:
    """One cell of a comparison: which inputs, which backbone (as asked for), which preset."""

    content: ImageRef
    style: ImageRef
    backbone: str  # the name or path the user gave
    preset: str
    spec: RunSpec


@dataclasses.dataclass(frozen=True)
class Plan:
    runs: list[ComparisonRun]
    skipped: list[str]  # one notice per backbone that could not be found


def resolve_backbones(names: Sequence[str], *, profile: str | None, precision: str) -> tuple[dict[str, BackboneRef], list[str]]:
    """Each name's `BackboneRef`; a backbone whose file is absent becomes a notice naming the file.

    A file that exists but is corrupt is not skipped: it fails when loaded, with its own message.
    """
    from transfer.backbones.load import resolve_backbone
    from weights.errors import WeightsError

    refs, skipped = {}, []
    for name in names:
        try:
            refs[name] = resolve_backbone(name, profile=profile, precision=precision)
        except (WeightsError, DetstyleError) as exc:
            if not _is_absent(name, exc):
                raise
            skipped.append(f"skipped backbone {name}: {exc}")
    return refs, skipped


def _is_absent(name: str, exc: Exception) -> bool:
    message = str(exc)
    return "not found" in message or (not Path(name).exists() and "no such file" in message)


def plan_comparison(contents: Sequence[ImageRef], styles: Sequence[ImageRef], backbones: Mapping[str, BackboneRef],
                    presets: Sequence[str], make: Callable[..., RunSpec]) -> list[ComparisonRun]:
    """Every (content, style, backbone, preset) combination; `make(content, style, ref, preset)` builds its spec."""
    return [ComparisonRun(c, s, name, preset, make(c, s, ref, preset))
            for c in contents for s in styles for name, ref in backbones.items() for preset in presets]


class _Announcer(UnitObserver):
    """`on_run(index, run, cached)` before each run in this process, and stylize's `callback` for it."""

    def __init__(self, runs: Sequence[ComparisonRun], on_run, callback):
        self.index = {id(run): i for i, run in enumerate(runs)}
        self.on_run, self.callback = on_run, callback

    def start(self, run: ComparisonRun, cached: bool):
        if self.on_run is not None:
            self.on_run(self.index[id(run)], run, cached)
        return None if cached else self.callback


def run_comparison(runs: Sequence[ComparisonRun], store: RunStore, *,
                   on_run: Callable[[int, ComparisonRun, bool], None] | None = None,
                   callback=None, choice: EngineChoice | None = None) -> list[dict | None]:
    """Run (or take from the store) every run, backbone by backbone; one record per run, in `runs`' order.

    The runs are independent units (`transfer.jobs.engine`) run on `choice`'s engine (local
    by default: each backbone loaded once, with its run's `spec.seed`).
    `on_run(i, run, cached)` is told before each local run; `callback` is stylize's per-step
    callback.  With a `choice.shard`, the other shards' runs are None until they are finished.
    """
    first = {}
    for index, run in enumerate(runs):
        first.setdefault(run.spec.backbone, index)
    ordered = sorted(runs, key=lambda run: first[run.spec.backbone])  # stable: backbone by backbone
    run_units(ordered, store, run_one, choice=choice, observer=_Announcer(runs, on_run, callback), noun="runs")
    return [store.record(run.spec) for run in runs]


def run_one(run: ComparisonRun, store: RunStore, backbone, targets, callback) -> dict:
    """Optimise one comparison run, score it and store it: the comparison's `Work` (module-level for Ray)."""
    from transfer.core.run import load_inputs
    from transfer.core.stylizer import stylize
    from transfer.quality import score

    inputs = load_inputs(run.spec)
    started = time.perf_counter()
    result = stylize(inputs.content, inputs.styles, backbone, run.spec, callback)
    seconds = time.perf_counter() - started
    steps = len(result.history)
    record = {
        "content": run.content.source, "style": run.style.source, "backbone": run.backbone,
        "backbone_sha256": run.spec.backbone.sha256, "preset": run.preset,
        "seconds": round(seconds, 3), "seconds_per_step": round(seconds / max(steps, 1), 4), "steps": steps,
        "final_losses": {k: float(v) for k, v in result.history[-1].items()},
        "metrics": score(result.image, inputs.content, inputs.styles[0][0]),
    }
    return store.save(run.spec, result.image, record)


def cross_matrix(runs: Sequence[ComparisonRun], store: RunStore, *, seed: int = 0) -> list[dict]:
    """For each (content, style, preset): every backbone's output scored by every backbone's own style loss."""
    from transfer.backbones.load import load_backbone
    from transfer.core.run import load_inputs
    from transfer.quality import cross_backbone_matrix

    groups: dict[tuple, list[ComparisonRun]] = {}
    for run in runs:
        groups.setdefault((run.content, run.style, run.preset), []).append(run)
    loaded = {run.backbone: load_backbone(run.spec.backbone, seed=seed) for run in runs}
    rows = []
    for (content, style, preset), group in groups.items():
        inputs = load_inputs(group[0].spec)
        outputs = {run.backbone: store.load(run.spec) for run in group}
        matrix = cross_backbone_matrix(outputs, {run.backbone: loaded[run.backbone] for run in group},
                                       inputs.content, inputs.styles[0][0], group[0].spec.layers)
        rows.append({"content": content.source, "style": style.source, "preset": preset, "matrix": matrix})
    return rows


def metrics_rows(records: Sequence[dict]) -> list[dict]:
    """Flat rows for a CSV: one per run, metrics and final losses as columns."""
    rows = []
    for record in records:
        row = {k: record[k] for k in ("content", "style", "backbone", "backbone_sha256", "preset", "seconds",
                                      "seconds_per_step", "steps")}
        row.update({f"loss_{k}": v for k, v in record["final_losses"].items()})
        row.update({k: v for k, v in record["metrics"].items()})
        rows.append(row)
    return rows


def result_name(run: ComparisonRun) -> str:
    """A readable file name for a result: content__style__backbone__preset.png."""
    parts = [Path(run.content.source).stem, Path(run.style.source).stem, Path(run.backbone).name, run.preset]
    return "__".join(p.replace("/", "_") for p in parts) + ".png"


def figure_panels(runs: Sequence[ComparisonRun], store: RunStore) -> tuple[list[str], list[str], list[list[np.ndarray]]]:
    """Rows = content x style, columns = inputs then backbone x preset: labels and images."""
    from transfer.io.images import load_ref

    columns = list(dict.fromkeys((run.backbone, run.preset) for run in runs))
    row_keys = list(dict.fromkeys((run.content, run.style) for run in runs))
    size = runs[0].spec.size
    by_cell = {(run.content, run.style, run.backbone, run.preset): run for run in runs}
    images = []
    for content, style in row_keys:
        row = [load_ref(content, size), load_ref(style, size)]
        row += [store.load(by_cell[(content, style, b, p)].spec) for b, p in columns]
        images.append(row)
    row_labels = [f"{Path(c.source).stem} × {Path(s.source).stem}" for c, s in row_keys]
    column_labels = ["content", "style"] + [f"{Path(b).name}\n{p}" for b, p in columns]
    return row_labels, column_labels, images


#: The metrics a comparison table shows, with the direction that is better.
TABLE_METRICS = (("judge_gram", "↓"), ("judge_swd", "↓"), ("palette_swd", "↓"), ("ssim", "↑"), ("edge_corr", "↑"))


def markdown_table(records: Sequence[dict]) -> str:
    """The comparison as a Markdown table (one row per run), as the README quotes it."""
    header = ["content × style", "backbone", "preset", *(f"{name} {arrow}" for name, arrow in TABLE_METRICS),
              "s/step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(TABLE_METRICS) + 1)]
    for r in records:
        cells = [f"{Path(r['content']).stem} × {Path(r['style']).stem}", f"`{Path(r['backbone']).name}`",
                 f"`{r['preset']}`", *(f"{r['metrics'][name]:.3f}" for name, _ in TABLE_METRICS),
                 f"{r['seconds_per_step']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
