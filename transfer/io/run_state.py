"""Interruptible runs: Ctrl-C/SIGTERM stop cleanly between steps, and the state can resume.

The checkpoint (`OUT.ckpt.npz`) holds the optimiser state (image parameters, Adam moments
and step count), the stage and step reached, the loss history and the whole run spec (as
JSON), so a resumed Adam run continues to the same result as an uninterrupted one and a
state made for another run is recognised as such.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np

from transfer.errors import DetstyleError
from transfer.io.images import atomic_write


class Interrupted(DetstyleError):
    """The run was stopped by SIGINT/SIGTERM; its state was saved (if a path was given)."""


@dataclasses.dataclass
class RunState:
    stage_index: int
    steps_done: int  # completed steps in this stage
    param: np.ndarray
    m: np.ndarray | None
    v: np.ndarray | None
    t: float
    history: list[dict]
    spec: dict  # RunSpec.to_dict() of the run that saved it

    def check_matches(self, spec) -> None:
        """Refuse a state made for another run, naming every field of the `RunSpec` that differs."""
        from transfer.errors import UsageError

        changed = spec.differences(self.spec)
        if changed:
            raise UsageError(f"the saved state was made for another run ({', '.join(changed)} differ); "
                             "resume with the same inputs and options, or start again without --resume")

    def check_fits(self, stage_sizes: list[tuple[int, int]], stage_steps: list[int], batch: int) -> None:
        """Refuse a state whose stage, step count or image shape this run's stages cannot hold.

        The spec check catches another run; this catches a state file edited or damaged by hand,
        which would otherwise end in a TensorFlow shape error.
        """
        if not 0 <= self.stage_index < len(stage_sizes):
            raise DetstyleError(f"the saved state is at stage {self.stage_index}, but this run has "
                                f"{len(stage_sizes)} stage(s)")
        if not 0 <= self.steps_done <= stage_steps[self.stage_index]:
            raise DetstyleError(f"the saved state has {self.steps_done} steps done in a stage of "
                                f"{stage_steps[self.stage_index]}")
        expected = (batch, *stage_sizes[self.stage_index], 3)
        for name, array in (("image", self.param), ("Adam m", self.m), ("Adam v", self.v)):
            if array is not None and array.shape != expected:
                raise DetstyleError(f"the saved state's {name} has shape {array.shape}, this run needs {expected}")

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {"param": self.param}
        if self.m is not None:
            arrays.update(m=self.m, v=self.v)
        meta = {"stage_index": self.stage_index, "steps_done": self.steps_done, "t": self.t,
                "history": self.history, "spec": self.spec}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        return atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunState:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                arrays = {name: _float_array(data, name) for name in ("param", "m", "v") if name in data}
            state = cls(_count(meta, "stage_index"), _count(meta, "steps_done"), arrays["param"], arrays.get("m"),
                        arrays.get("v"), float(meta["t"]), meta["history"], meta["spec"])
        except FileNotFoundError:
            raise DetstyleError(f"{path}: no checkpoint to resume from") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as exc:
            raise DetstyleError(f"{path}: not a readable detstyle checkpoint ({type(exc).__name__}: {exc})") from None
        if not (isinstance(state.history, list) and all(isinstance(h, dict) for h in state.history)
                and isinstance(state.spec, dict) and (state.m is None) == (state.v is None)):
            raise DetstyleError(f"{path}: not a readable detstyle checkpoint (malformed metadata)")
        return state


def _count(meta: dict, name: str) -> int:
    value = meta[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} is {value!r:.40}, not a count")
    return value


def _float_array(data, name: str) -> np.ndarray:
    """A finite float32 array of rank 4 (a batch of images or its Adam moments)."""
    array = data[name]
    if array.dtype != np.float32 or array.ndim != 4 or not np.isfinite(array).all():
        raise ValueError(f"{name} is not a finite float32 image batch")
    return array


@contextlib.contextmanager
def stop_on_signals():
    """Yield a `threading.Event` set by SIGINT or SIGTERM instead of raising mid-step.

    A second signal only says that the state is being saved (it used to abort and lose it);
    a third one aborts at once.  Only the main thread may install handlers; elsewhere the event simply never fires.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    presses = 0

    def handler(signum, frame):
        nonlocal presses
        presses += 1
        stop.set()
        if presses == 2:  # impatience must not cost the state: say what happens, keep stopping cleanly
            print("detstyle: stopping after this step to save the state; press Ctrl-C once more to quit "
                  "without saving", file=sys.stderr)
        elif presses > 2:
            raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
