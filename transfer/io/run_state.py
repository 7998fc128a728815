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
                m = data["m"] if "m" in data else None
                v = data["v"] if "v" in data else None
                return cls(int(meta["stage_index"]), int(meta["steps_done"]), data["param"], m, v,
                           float(meta["t"]), list(meta["history"]), dict(meta["spec"]))
        except FileNotFoundError:
            raise DetstyleError(f"{path}: no checkpoint to resume from") from None
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise DetstyleError(f"{path}: not a readable detstyle checkpoint ({exc})") from None


@contextlib.contextmanager
def stop_on_signals():
    """Yield a `threading.Event` set by SIGINT or SIGTERM instead of raising mid-step.

    Only the main thread may install handlers; elsewhere the event simply never fires.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: the user really wants out now
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
