"""The web page's job queue: one run at a time per server, the rest waiting in order.

Why one at a time: a run uses every core (or the whole accelerator) it is given, so two at
once would each take twice as long and double the peak memory.  A `JobRunner` belongs to
one app (no module state): a worker thread takes the queued jobs in order and runs each
through `transfer.core.run.run`, the library call behind `detstyle stylize`, with a
per-step callback that records the losses, keeps a preview image every few steps and
returns True when the page asked to stop.  Stopping saves a resumable state
(`OUT_DIR/jobs/<spec digest>.ckpt.npz`, written atomically by `RunState.save`); a finished
run goes into the content-addressed `RunStore` at `OUT_DIR/runs/`, where the gallery and
`detstyle grid`'s cache format find it.

A grid or comparison (`transfer.web.batch`) is a job too, in the same queue: its steps
carry the index of their cell, and each finished cell adds an entry to `Job.cells`.

Subscribers read a job with `Job.update(cursor)`: the steps, previews and finished cells
after their cursor, so a late subscriber (a second tab) first gets the whole loss history
and the latest image, then the same live updates as the first.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import io
import itertools
import logging
import threading
import uuid
from pathlib import Path

import numpy as np

from transfer import limits as run_limits
from transfer.core.spec import RunSpec
from transfer.web.batch import GRID, BatchJob, BatchStopped, run_batch
from transfer.web.files import url_of

log = logging.getLogger("detstyle")

#: Statuses a job passes through; the last three are final.
QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINAL = (DONE, STOPPED, FAILED)
#: Previews kept per job for subscribers that fell behind (older ones are skipped, never queued up).
KEPT_PREVIEWS = 16
#: Without an explicit preview interval, a run sends about this many previews (plus the first step's).
PREVIEWS_PER_RUN = 60


def preview_uri(image: np.ndarray) -> str:
    """A `data:image/png` URI of a [0, 1] RGB array (the page shows it without another request)."""
    from PIL import Image

    from transfer.io.images import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclasses.dataclass(frozen=True)
class Cursor:
    """What a subscriber has seen: loss points and the sequence number of its last preview."""

    steps: int = 0
    preview: int = -1
    cells: int = 0


@dataclasses.dataclass
class Job:
    """One run the page asked for, and everything a subscriber needs to draw it."""

    id: str
    spec: RunSpec
    inputs: dict[str, str]  # what the page calls the content and style (upload names)
    resume: bool = False
    status: str = QUEUED
    message: str = ""
    total: int = 0  # steps over all stages, known from the first step
    history: list[dict] = dataclasses.field(default_factory=list)  # {"step", "losses", "seconds"}
    previews: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=KEPT_PREVIEWS))
    result: str | None = None  # URL of the PNG once there is one
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    batch: BatchJob | None = None  # a grid or comparison; None: one run
    cells: list[dict] = dataclasses.field(default_factory=list)  # finished units of a batch, in finishing order
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # a finished batch's downloads, label -> URL

    def update(self, cursor: Cursor, position: int) -> tuple[dict, Cursor]:
        """What changed since `cursor` (all history and the latest preview for a new subscriber)."""
        previews = [p for p in self.previews if p[0] > cursor.preview]
        if cursor.preview < 0:
            previews = previews[-1:]
        update = {"id": self.id, "full": cursor.preview < 0, "status": self.status, "position": position,
                  "message": self.message, "total": self.total, "points": self.history[cursor.steps:],
                  "result": self.result, **self._batch_fields(), "cells": self.cells[cursor.cells:],
                  "previews": [{"seq": seq, "step": step, "image": uri} for seq, step, uri in previews]}
        last = previews[-1][0] if previews else cursor.preview
        return update, Cursor(len(self.history), max(last, 0 if cursor.preview < 0 else cursor.preview),
                              len(self.cells))

    def _batch_fields(self) -> dict:
        """What a batch adds: its kind, its number of units, the equivalent command, its downloads."""
        if self.batch is None:
            return {"kind": "run"}
        return {"kind": self.batch.kind, "units": len(self.batch.units), "command": self.batch.argv,
                "files": self.files}

    def summary(self, position: int) -> dict:
        last = self.history[-1] if self.history else None
        return {"id": self.id, "status": self.status, "position": position, "message": self.message,
                "inputs": self.inputs, "digest": self.spec.digest()[:16], "total": self.total,
                "step": last["step"] if last else 0, "result": self.result, "spec": self.spec.to_dict(),
                **self._batch_fields(), "cells_done": len(self.cells)}


class JobRunner:
    """The queue and the worker thread of one server; every method is safe from any thread."""

    def __init__(self, out_dir: Path, *, limits: run_limits.Limits | None = None, preview_every: int | None = None):
        self.out_dir = Path(out_dir)
        self.limits = limits or run_limits.current()  # a thread does not inherit the CLI's `--limit` context
        self.preview_every = preview_every
        self.jobs: dict[str, Job] = {}
        self.queue: collections.deque[Job] = collections.deque()
        self.lock = threading.Condition()
        self.closing = False
        self.thread: threading.Thread | None = None
        self._backbone: tuple[tuple, object] | None = None  # the last loaded backbone, reused by the next run
        self._sequence = itertools.count(1)  # 0 and -1 mean "none seen" in a Cursor

    # --- the page's requests -------------------------------------------------
    def submit(self, spec: RunSpec, inputs: dict[str, str], *, resume_from: Job | None = None) -> Job:
        """Queue a run; `resume_from`: a stopped job whose saved state this one continues (its curve too)."""
        return self._queue(Job(uuid.uuid4().hex[:12], spec, dict(inputs), resume=resume_from is not None,
                               history=list(resume_from.history) if resume_from else []))

    def submit_batch(self, batch: BatchJob, inputs: dict[str, str]) -> Job:
        """Queue a grid or comparison (again: its finished cells are taken from the cache)."""
        return self._queue(Job(uuid.uuid4().hex[:12], batch.spec, dict(inputs), batch=batch))

    def _queue(self, job: Job) -> Job:
        with self.lock:
            self.jobs[job.id] = job
            self.queue.append(job)
            self._start_worker()
            self.lock.notify_all()
        return job

    def stop(self, job_id: str) -> Job:
        """Ask a job to stop: a queued one is dropped, a running one ends after its step, state saved."""
        with self.lock:
            job = self.jobs[job_id]
            if job.status == QUEUED:
                self.queue.remove(job)
                job.status, job.message = STOPPED, "removed from the queue before it started"
            job.stop.set()
            return job

    def state_path(self, spec: RunSpec) -> Path:
        return self.out_dir / "jobs" / f"{spec.digest()[:16]}.ckpt.npz"

    def position(self, job: Job) -> int:
        """1 for the job that runs next, 2 for the one after ...; 0 when not waiting."""
        with self.lock:
            return next((i + 1 for i, queued in enumerate(self.queue) if queued is job), 0)

    def view(self, job: Job, cursor: Cursor) -> tuple[dict, Cursor]:
        with self.lock:
            return job.update(cursor, self.position(job))

    def listing(self) -> list[dict]:
        with self.lock:
            return [job.summary(self.position(job)) for job in self.jobs.values()]

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running job (its state is saved), drop the queue, wait for the worker."""
        with self.lock:
            self.closing = True
            for job in self.jobs.values():
                job.stop.set()
            self.lock.notify_all()
            thread = self.thread
        if thread is not None:
            thread.join(timeout)

    # --- the worker ----------------------------------------------------------
    def _start_worker(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, name="detstyle-web-jobs", daemon=True)
            self.thread.start()

    def _next(self) -> Job | None:
        with self.lock:
            while not self.queue and not self.closing:
                self.lock.wait()
            if self.closing:
                return None
            job = self.queue.popleft()
            job.status = RUNNING
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            with run_limits.using(self.limits):
                self._run(job)

    def _run(self, job: Job) -> None:
        from transfer.errors import DetstyleError
        from weights.errors import WeightsError

        try:
            if job.batch is not None:
                self._finish_batch(job, self._run_batch(job))
            else:
                self._finish(job, self._stylize(job))
        except BatchStopped:
            self._stopped_batch(job)
        except (DetstyleError, WeightsError) as exc:
            self._fail(job, " ".join(str(exc).split()))
        except Exception as exc:  # noqa: BLE001 - the worker must survive a bug in one run; the page says what
            log.exception("web job %s failed", job.id)
            self._fail(job, f"internal error ({type(exc).__name__}: {exc})"[:300])

    def _stylize(self, job: Job):
        from transfer.core.run import run
        from transfer.io.run_state import RunState

        state_path = self.state_path(job.spec)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        resume = RunState.load(state_path) if job.resume else None
        return run(job.spec, self._callback(job), state_path=state_path, resume=resume,
                   backbone=self._load_backbone(job.spec))

    def _load_backbone(self, spec: RunSpec):
        """The spec's backbone, reused from the previous run when it is the same (seed matters only for random)."""
        from transfer.backbones.load import load_backbone

        key = (spec.backbone, spec.seed if spec.backbone.sha256 is None else None)
        if self._backbone is None or self._backbone[0] != key:
            self._backbone = None  # free the old one before loading the next
            self._backbone = (key, load_backbone(spec.backbone, seed=spec.seed))
        return self._backbone[1]

    def _callback(self, job: Job, cell: int | None = None):
        """Stylize's per-step callback: record the losses (with the batch cell), a preview now and then."""
        def on_step(info) -> bool:
            every = self.preview_every or max(1, info.steps // PREVIEWS_PER_RUN)
            uri = preview_uri(info.image()) if info.step == 1 or info.step % every == 0 or info.step == info.steps \
                else None
            with self.lock:
                job.total = info.steps
                point = {"step": info.step, "losses": info.losses, "seconds": round(info.seconds, 3)}
                job.history.append(point if cell is None else {**point, "cell": cell})
                if uri is not None:
                    job.previews.append((next(self._sequence), info.step, uri))
            return job.stop.is_set() or self.closing

        return on_step

    def _finish(self, job: Job, result) -> None:
        from transfer.io.images import save_image
        from transfer.jobs.store import RunStore

        if result.stop_reason == "callback":  # stopped from the page: keep the state and the image so far
            path = save_image(result.image, self.out_dir / "jobs" / f"{job.id}.png")
            status, message = STOPPED, f"stopped at step {len(result.history)}; resume continues from there"
        else:
            last = result.history[-1] if result.history else {}
            record = {"seconds": round(result.seconds, 3), "steps": len(result.history),
                      "stop_reason": result.stop_reason, "losses": last, "origin": "detstyle serve"}
            RunStore(self.out_dir / "runs").save(job.spec, result.image, record)
            path = RunStore(self.out_dir / "runs").image_path(job.spec)
            self.state_path(job.spec).unlink(missing_ok=True)
            status, message = DONE, f"finished: {len(result.history)} steps in {result.seconds:.1f} s"
        with self.lock:
            job.status, job.message, job.result = status, message, url_of(self.out_dir, path)

    def _fail(self, job: Job, message: str) -> None:
        with self.lock:
            job.status, job.message = FAILED, message

    # --- grids and comparisons -------------------------------------------------
    def _run_batch(self, job: Job) -> int:
        batch = job.batch
        backbone = self._load_backbone(batch.spec) if batch.kind == GRID else None  # a grid's cells share one
        return run_batch(batch, _BatchProgress(self, job), backbone)

    def _finish_batch(self, job: Job, ran: int) -> None:
        files = {label: url_of(self.out_dir, path) for label, path in job.batch.files().items() if path.is_file()}
        total = len(job.batch.units)
        with self.lock:
            job.status, job.files, job.result = DONE, files, files.get("figure")
            job.message = f"finished: {ran} of {total} cells run now, {total - ran} taken from the cache"

    def _stopped_batch(self, job: Job) -> None:
        with self.lock:
            done, total = len(job.cells), len(job.batch.units)
            job.status = STOPPED
            job.message = (f"stopped with {done} of {total} cells finished (kept in the cache); "
                           f"resume runs the other {total - done}")


class _BatchProgress:
    """`transfer.web.batch.Progress` for one job: steps and finished cells into the job, Stop as an exception."""

    def __init__(self, runner: JobRunner, job: Job):
        self.runner, self.job = runner, job

    def check(self) -> None:
        if self.job.stop.is_set() or self.runner.closing:
            raise BatchStopped(self.job.id)

    def step_callback(self, index: int):
        on_step = self.runner._callback(self.job, cell=index)

        def step(info) -> bool:
            if on_step(info):  # never return True: stylize would end early and the cell be stored half-done
                raise BatchStopped(self.job.id)
            return False

        return step

    def unit_done(self, index: int, name: str, image: Path, cached: bool) -> None:
        entry = {"index": index, "name": name, "image": url_of(self.runner.out_dir, image), "cached": cached}
        with self.runner.lock:
            self.job.cells.append(entry)
