"""The clock every optimisation loop reports to, so all methods are timed the same way.

A loop calls `probe.step(image_fn, ...)` after each step (or each L-BFGS iteration).  The
probe records when the step ended, scores the image with the yardstick every `eval_every`
steps *with its clock paused* (scoring is the bench's cost, not the method's), and raises
`StopRun` once the target loss is reached or the step / time budget is spent.  The clock
starts before the loop builds its targets and traces its graph, so time-to-target includes
everything a user waits for; `step_ms` skips the first step, which carries that setup.

A loop that fails does not end the bench: `run` records the error on the probe and the
report shows it in that method's row.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np


class StopRun(Exception):
    """Raised by a `Probe` to end a loop: target reached, or step / time budget spent."""


class Scorer(Protocol):
    """What the probe needs from a yardstick (`bench.yardstick.Yardstick` is one)."""

    shape: tuple[int, int]

    def terms(self, image: np.ndarray) -> dict[str, float]: ...


def load_now() -> float | None:
    """The 1-minute load average: how busy the shared machine was around a measurement."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


@dataclasses.dataclass
class Probe:
    max_steps: int | None = None
    max_seconds: float | None = None
    yardstick: Scorer | None = None
    target: float | None = None
    eval_every: int = 1
    stop_at_target: bool = True  # False: record when the target was reached and run on to the loop's own end
    times: list[float] = dataclasses.field(default_factory=list)  # end of each step, clock seconds
    units: list[int] = dataclasses.field(default_factory=list)  # loss+gradient evaluations per step
    own_losses: list[float | None] = dataclasses.field(default_factory=list)
    curve: list[tuple[float, int, float]] = dataclasses.field(default_factory=list)  # (s, step, yardstick)
    reached: tuple[float, int] | None = None  # (seconds, step) when the target was first met
    last_terms: dict[str, float] | None = None  # yardstick terms of the last scored image
    stop_reason: str | None = None
    error: str | None = None
    load: tuple[float | None, float | None] = (None, None)  # load average at start and end
    _start: float = 0.0
    _paused: float = 0.0

    def start(self) -> None:
        self._start, self._paused = time.perf_counter(), 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def step(self, image_fn: Callable[[], np.ndarray], loss: float | None = None, evaluations: int = 1) -> None:
        """Record one step; score it when due; raise `StopRun` when the run should end."""
        now = self.elapsed()
        self.times.append(now)
        self.units.append(max(1, evaluations))
        self.own_losses.append(loss)
        if self.yardstick is not None and len(self.times) % self.eval_every == 0:
            self.score(image_fn, now)
        if self.stop_reason is None and self.max_steps is not None and len(self.times) >= self.max_steps:
            self.stop_reason = "steps"
        if self.stop_reason is None and self.max_seconds is not None and now >= self.max_seconds:
            self.stop_reason = "time"
        if self.stop_reason is not None:
            raise StopRun(self.stop_reason)

    def score(self, image_fn: Callable[[], np.ndarray], now: float | None = None) -> float | None:
        """Yardstick loss of the current image, clock paused; `None` if the shape differs (a coarse scale)."""
        paused_at = time.perf_counter()
        try:
            image = image_fn()
            if tuple(image.shape[-3:-1]) != tuple(self.yardstick.shape):
                return None
            self.last_terms = self.yardstick.terms(image)
            loss = self.last_terms["total"]
        finally:
            self._paused += time.perf_counter() - paused_at
        now = self.elapsed() if now is None else now
        self.curve.append((now, len(self.times), loss))
        if self.target is not None and loss <= self.target and self.reached is None:
            self.reached = (now, len(self.times))
            if self.stop_at_target:
                self.stop_reason = "target"
        return loss

    def run(self, loop: Callable[["Probe"], object]) -> "Probe":
        """Start the clock and run `loop(self)` until it returns, the probe stops it, or it fails."""
        load_start = load_now()
        self.start()
        try:
            loop(self)
        except StopRun:
            pass
        except Exception as exc:  # noqa: BLE001 - one broken method must not lose the whole run
            self.error, self.stop_reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300], "error"
        self.stop_reason = self.stop_reason or "finished"
        self.load = (load_start, load_now())
        return self

    def step_ms(self, skip: int = 1) -> float | None:
        """Median milliseconds per loss+gradient evaluation, skipping the first `skip` steps."""
        ends = [0.0, *self.times]
        per_unit = [(b - a) / n for a, b, n in zip(ends, ends[1:], self.units)][skip:]
        return 1000.0 * statistics.median(per_unit) if per_unit else None

    @property
    def evaluations(self) -> int:
        return sum(self.units)
