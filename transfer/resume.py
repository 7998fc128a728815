"""Interruptible runs: Ctrl-C/SIGTERM stop cleanly between steps, and the state can resume.

The checkpoint (`OUT.ckpt.npz`) holds the optimiser state (image parameters, Adam moments
and step count), the scale and step reached, the loss history and the config, so a
resumed Adam run continues to the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np

from transfer.errors import DetstyleError
from transfer.images import atomic_write


class Interrupted(DetstyleError):
    """The run was stopped by SIGINT/SIGTERM; its state was saved (if a path was given)."""


@dataclasses.dataclass
class RunState:
    scale_index: int
    steps_done: int  # completed steps at this scale
    param: np.ndarray
    m: np.ndarray | None
    v: np.ndarray | None
    t: float
    history: list[dict]
    config: dict

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {"param": self.param}
        if self.m is not None:
            arrays.update(m=self.m, v=self.v)
        meta = {"scale_index": self.scale_index, "steps_done": self.steps_done, "t": self.t,
                "history": self.history, "config": self.config}
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
                return cls(meta["scale_index"], meta["steps_done"], data["param"], m, v, meta["t"],
                           meta["history"], meta["config"])
        except FileNotFoundError:
            raise DetstyleError(f"{path}: no checkpoint to resume from") from None
        except (OSError, ValueError, KeyError) as exc:
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
