"""Batch jobs as independent units, and the engines that run them (in this process, on Ray, or a shard).

Why units: a grid cell or a comparison run depends on nothing but its `RunSpec`, and its result
is stored under `spec.digest()` by a `RunStore` (image first, record last, both atomic).  So a
batch job is just a list of units and a `Work` function; whoever runs a unit - this process,
a Ray worker on another node, one task of a Slurm array - writes the same idempotent output,
a rerun skips what is finished, and a crash loses at most the units that were running.  There
is deliberately no scheduler, queue or RPC layer of our own: `local` is a plain loop, `ray`
hands the units to Ray (`transfer.jobs.ray_engine`), and `--shard i/n` lets a batch system
(Slurm arrays, Kubernetes indexed jobs) start n copies of the same command.

Importable without TensorFlow or Ray (the CLI builds its parser from it).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from transfer.core.spec import RunSpec
from transfer.errors import DetstyleError, UsageError
from transfer.jobs.store import RunStore

if TYPE_CHECKING:  # importing the backbone module would import TensorFlow
    from transfer.backbones.load import Backbone

__all__ = ["ENGINES", "Backbones", "EngineChoice", "EngineReport", "Shard", "Unit", "UnitObserver",
           "UnitsIncomplete", "Work", "done_line", "run_local", "run_units"]

#: `--engine` choices: `local` runs the units one after another in this process; `ray` on a Ray cluster.
ENGINES = ("local", "ray")
LOCAL, RAY = ENGINES


class Unit(Protocol):
    """Anything with a `spec`: the run spec names the unit and its stored result."""

    spec: RunSpec


U = TypeVar("U", bound=Unit)


class Work(Protocol):
    """Run one unit and store it: `work(unit, store, backbone, targets, callback) -> record`.

    Must be a module-level function (Ray sends it to workers by reference) that writes with
    `store.save`, so the record appears last, and returns `store.record(unit.spec)`.
    """

    def __call__(self, unit, store: RunStore, backbone, targets, callback) -> dict: ...


class UnitObserver:
    """Hooks a front end implements to show progress; the defaults do nothing.

    `start` is told before each unit run in this process (and whether the store already has
    it) and may return stylize's per-step callback; `finish` after each unit, with its
    record and whether it ran now.  Remote engines call only `finish`.
    """

    def start(self, unit, cached: bool) -> Callable | None:
        return None

    def finish(self, unit, record: dict, ran: bool) -> None:
        pass


class UnitsIncomplete(DetstyleError):
    """Some units were lost with a worker; the finished ones are kept and a rerun does the rest."""


@dataclasses.dataclass(frozen=True)
class EngineReport:
    """What one run of the units did: how many ran now, and each backbone load it paid (seconds)."""

    ran: int
    backbone_loads: tuple[float, ...] = ()
    worker_cpu_seconds: float | None = None  # CPU time of remote worker processes (None: in this process)


class Backbones:
    """Backbones loaded on first use, one per (ref, seed): a finished job loads none.

    `loads` keeps the seconds of every load, so an engine can report its start-up cost.
    """

    def __init__(self, given: Backbone | None = None):
        self.given = given
        self.loaded: dict[tuple, object] = {}
        self.loads: list[float] = []

    def get(self, spec: RunSpec) -> Backbone:
        if self.given is not None:
            return self.given
        key = (spec.backbone, spec.seed)
        if key not in self.loaded:
            from transfer.backbones.load import load_backbone

            started = time.perf_counter()
            self.loaded[key] = load_backbone(spec.backbone, seed=spec.seed)
            self.loads.append(time.perf_counter() - started)
        return self.loaded[key]


# ---------------------------------------------------------------- shards

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): the units whose position in the plan is `index` modulo `count`.

    The assignment depends only on the plan's stable order, so n processes started with
    `--shard 0/n` ... `--shard n-1/n` (a Slurm array, a Kubernetes indexed job) split the work
    without talking to each other, and together cover every unit exactly once.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"I/N"`; anything else, `N < 1` or `I >= N` is a `UsageError` (exit 2)."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise UsageError(f"--shard expects I/N, shard I (counted from 0) of N, e.g. 0/4; got {text!r}")
        index, count = int(match[1]), int(match[2])
        if count < 1:
            raise UsageError(f"--shard {text}: the number of shards N must be at least 1")
        if index >= count:
            raise UsageError(f"--shard {text}: shards are numbered 0 to {count - 1} (I counts from 0)")
        return cls(index, count)

    def select(self, units: Sequence[U]) -> list[U]:
        return [unit for position, unit in enumerate(units) if position % self.count == self.index]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# ---------------------------------------------------------------- the choice of engine


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """How a batch job runs: `engine` (`ENGINES`), a Ray `address`, or one `shard` of a local run.

    Options that the engine would ignore are refused here, before any work.
    """

    engine: str = LOCAL
    address: str | None = None
    shard: Shard | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.address is not None and self.engine != RAY:
            raise UsageError(f"--address {self.address} would be ignored: it names a Ray cluster; "
                             "add --engine ray or drop --address")
        if self.shard is not None and self.engine != LOCAL:
            raise UsageError(f"--shard {self.shard} with --engine {self.engine}: Ray already spreads the units over "
                             "the cluster; --shard is for independent processes (Slurm arrays, Kubernetes "
                             "indexed jobs): drop one of them")

    @classmethod
    def from_options(cls, engine: str = LOCAL, address: str | None = None, shard: str | None = None) -> EngineChoice:
        """The command line's choice, checked before any work: refusals, and Ray's presence when asked for."""
        choice = cls(engine, address, Shard.parse(shard) if shard is not None else None)
        if choice.engine == RAY:
            from transfer.jobs.ray_engine import import_ray

            import_ray()  # a missing optional extra: one line, exit 2
        return choice

    def select(self, units: Sequence[U]) -> list[U]:
        """The units this process runs: all of them, or this shard's."""
        return list(units) if self.shard is None else self.shard.select(units)


# ---------------------------------------------------------------- running


def done_line(units: Sequence[Unit], store: RunStore, noun: str = "units") -> str:
    """`k of n units done (kept in ROOT); run the same command again to finish`."""
    done = sum(store.record(unit.spec) is not None for unit in units)
    return (f"{done} of {len(units)} {noun} done (kept in {store.root}); "
            "run the same command again to finish")


def run_local(units: Sequence[Unit], store: RunStore, work: Work, *, observer: UnitObserver | None = None,
              targets=None, backbone: Backbone | None = None,
              interrupted: Callable[[], Exception] | None = None) -> EngineReport:
    """Run every unit the store lacks, in order, in this process, sharing backbones and `targets`.

    SIGINT/SIGTERM stop the running unit (it is lost, finished ones are kept) and raise
    `interrupted()` (default: `Interrupted` with `done_line`).  Any other error in a unit
    propagates; finished units stay.
    """
    from transfer.core.targets import TargetCache
    from transfer.io.run_state import Interrupted, stop_on_signals

    observer = observer or UnitObserver()
    targets = targets if targets is not None else TargetCache()
    interrupted = interrupted or (lambda: Interrupted("interrupted: " + done_line(units, store)))
    backbones, ran = Backbones(backbone), 0
    with stop_on_signals() as stop:  # a signal between units; stylize handles those during a unit
        for unit in units:
            if stop.is_set():
                raise interrupted()
            record = store.record(unit.spec)
            missing = record is None
            callback = observer.start(unit, not missing)
            if missing:
                try:
                    record = work(unit, store, backbones.get(unit.spec), targets, callback)
                except Interrupted:
                    raise interrupted() from None
                ran += 1
            observer.finish(unit, record, missing)
    return EngineReport(ran, tuple(backbones.loads))


def run_units(units: Sequence[Unit], store: RunStore, work: Work, *, choice: EngineChoice | None = None,
              observer: UnitObserver | None = None, targets=None, backbone: Backbone | None = None,
              interrupted: Callable[[], Exception] | None = None, noun: str = "units") -> EngineReport:
    """Run this process's share of `units` (see `EngineChoice.select`) on the chosen engine.

    `targets` and `backbone` serve the local engine; Ray workers load their own.
    """
    choice = choice or EngineChoice()
    mine = choice.select(units)
    if choice.engine == RAY:
        from transfer.jobs.ray_engine import run_ray

        return run_ray(mine, store, work, address=choice.address, observer=observer, interrupted=interrupted,
                       noun=noun)
    return run_local(mine, store, work, observer=observer, targets=targets, backbone=backbone,
                     interrupted=interrupted)
