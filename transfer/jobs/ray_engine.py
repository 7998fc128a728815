"""`--engine ray`: a batch job's units as Ray work, on a cluster we join or a local one we start.

Why Ray and nothing of our own: the units are independent and each writes its own idempotent
result into the `RunStore`, so all a distributed run needs is something that places a call on
a node with a free CPU or GPU and tells us when it returns.  Ray does that; retries, queues and
node failures stay its business, and a lost unit is simply missing from the store, so the rerun
of the same command does it.

Two ways to run a unit, measured by `python -m bench.ray_overhead`:
- `actors` (default): one `UnitWorker` actor per free CPU (or GPU) in a `ray.util.ActorPool`;
  each keeps its backbone and its style/content targets for every unit it runs, so a backbone
  loads once per worker, not once per unit;
- `tasks`: one plain `@ray.remote` task per unit, loading the backbone every time.

The store root must be a folder every worker sees at the same path (a shared file system on a
real cluster); the driver only reads the records the workers wrote there.  Importing this module
does not import Ray: `import_ray` does, with one clear line when the optional extra is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

from transfer.errors import DetstyleError, UsageError
from transfer.jobs.engine import Backbones, EngineReport, Unit, UnitObserver, UnitsIncomplete, Work, done_line
from transfer.jobs.store import RunStore

#: How units run on Ray (see the module docstring); the default is the measured faster one.
RAY_MODES = ("actors", "tasks")
DEFAULT_RAY_MODE = "actors"


def import_ray():
    """The `ray` module, or a `UsageError` (exit 2) saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed here: pip install 'detstyle[ray]' "
                         "(on every node of the cluster)") from None
    return ray


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def connected(address: str | None = None, num_cpus: int | None = None) -> Iterator:
    """Ray, connected: the session already open in this process, the cluster at `address`, or a new local one.

    Only a connection made here is closed on exit (a local cluster started here is shut down
    with it), so a caller's own `ray.init` - a notebook, a test session - is left as it was.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    where = {"address": address} if address else {"num_cpus": num_cpus or available_cpus(),
                                                   "include_dashboard": False}
    try:
        ray.init(log_to_driver=False, logging_level="ERROR", **where)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise DetstyleError(f"cannot connect to {target}: {' '.join(str(exc).split())}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def unit_resources(ray) -> tuple[dict, int]:
    """Resources of one unit (`num_gpus=1` where the cluster has GPUs, else one CPU) and how many fit at once."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus >= 1:
        return {"num_gpus": 1}, gpus
    return {"num_cpus": 1}, max(1, int(resources.get("CPU", 1)))


def _run_here(unit: Unit, root: str, work: Work, backbones: Backbones, targets) -> tuple[dict, list, float]:
    """Run one unit in a worker (unless another worker or shard finished it meanwhile).

    Returns its record, the backbone loads it paid (seconds) and this process's CPU time so far.
    """
    store = RunStore(root)
    before = len(backbones.loads)
    record = store.record(unit.spec)
    if record is None:
        record = work(unit, store, backbones.get(unit.spec), targets, None)
    return record, backbones.loads[before:], time.process_time()


class UnitWorker:
    """A Ray actor: the backbones and targets it loads serve every unit it is given."""

    def __init__(self) -> None:
        from transfer.core.targets import TargetCache

        self.backbones, self.targets = Backbones(), TargetCache()

    def run(self, position: int, unit: Unit, root: str, work: Work) -> tuple:
        return (position, os.getpid(), *_run_here(unit, root, work, self.backbones, self.targets))


def run_unit_task(position: int, unit: Unit, root: str, work: Work) -> tuple:
    """A plain Ray task: loads what the unit needs, every time."""
    from transfer.core.targets import TargetCache

    return (position, os.getpid(), *_run_here(unit, root, work, Backbones(), TargetCache()))


def run_ray(units: Sequence[Unit], store: RunStore, work: Work, *, address: str | None = None,
            mode: str = DEFAULT_RAY_MODE, observer: UnitObserver | None = None, num_cpus: int | None = None,
            interrupted: Callable[[], Exception] | None = None, noun: str = "units") -> EngineReport:
    """Run every unit the store lacks on Ray; `observer.finish` hears of each one as it lands.

    A worker that dies loses only its running unit: the others go on, and at the end
    `UnitsIncomplete` says `k of n ... done; run the same command again to finish`.  An error
    raised by a unit itself (a bad image, a divergence) is re-raised with the same count.
    """
    if mode not in RAY_MODES:
        raise UsageError(f"Ray mode must be one of {', '.join(RAY_MODES)}, got {mode!r}")
    observer = observer or UnitObserver()
    root = str(store.root.resolve())  # the workers' view: an absolute path on the shared file system
    pending = []
    for position, unit in enumerate(units):
        record = store.record(unit.spec)
        if record is None:
            pending.append(position)
        else:
            observer.finish(unit, record, False)
    if not pending:
        return EngineReport(0)
    with connected(address, num_cpus) as ray:
        try:
            outcomes, failures = _submit(ray, mode, units, pending, root, work, observer)
        except KeyboardInterrupt:
            from transfer.io.run_state import Interrupted

            raise (interrupted() if interrupted else Interrupted("interrupted: " + done_line(units, store, noun)))
    return _report(units, pending, store, outcomes, failures, noun)


def _submit(ray, mode: str, units, pending: list[int], root: str, work: Work, observer) -> tuple[list, list]:
    resources, slots = unit_resources(ray)
    if mode == "tasks":
        task = ray.remote(max_retries=0, **resources)(run_unit_task)
        refs = [task.remote(p, units[p], root, work) for p in pending]
        return _gather(ray, lambda: _next_ready(ray, refs), lambda: bool(refs), units, observer)
    from ray.util import ActorPool

    worker = ray.remote(max_restarts=0, **resources)(UnitWorker)
    actors = [worker.remote() for _ in range(min(slots, len(pending)))]
    try:
        pool = ActorPool(actors)
        for p in pending:
            pool.submit(lambda actor, p: actor.run.remote(p, units[p], root, work), p)
        return _gather(ray, pool.get_next_unordered, pool.has_next, units, observer)
    finally:
        for actor in actors:  # free the cluster's slots now, also on an error or Ctrl-C
            ray.kill(actor)


def _next_ready(ray, refs: list):
    """The result of whichever task finishes next (removed from `refs`)."""
    [ready], _ = ray.wait(refs, num_returns=1)
    refs.remove(ready)
    return ray.get(ready)


def _gather(ray, next_result: Callable, has_next: Callable[[], bool], units, observer) -> tuple[list, list]:
    """Outcomes of the units as they land; failures (worker deaths, unit errors) are collected, not raised."""
    outcomes, failures = [], []
    while has_next():
        try:
            outcome = next_result()
        except ray.exceptions.RayError as exc:
            failures.append(exc)
            continue
        outcomes.append(outcome)
        observer.finish(units[outcome[0]], outcome[2], True)
    return outcomes, failures


def _report(units, pending: list[int], store: RunStore, outcomes: list, failures: list, noun: str) -> EngineReport:
    """The engine report, or the error that says what is missing and how to finish it.

    A worker that died after its unit's record was written lost nothing: only units missing
    from the store make the run incomplete.
    """
    ran = sum(store.record(units[p].spec) is not None for p in pending)
    if failures and ran < len(pending):
        cause = _unit_error(failures)
        if cause is not None:
            raise DetstyleError(f"{cause}; {done_line(units, store, noun)}")
        raise UnitsIncomplete(f"{done_line(units, store, noun)} ({len(failures)} lost: {_first_line(failures[0])})")
    cpu = {}
    for _, pid, _, _, cpu_seconds in outcomes:
        cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds)
    loads = tuple(s for outcome in outcomes for s in outcome[3])
    return EngineReport(ran, loads, round(sum(cpu.values()), 3))


def _unit_error(failures: list) -> Exception | None:
    """The first error a unit raised itself (a `DetstyleError` inside a `RayTaskError`), if any."""
    for exc in failures:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, DetstyleError):
            return cause
    return None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"

