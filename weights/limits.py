"""How much a checkpoint file may make the readers allocate, checked before allocating.

A checkpoint is untrusted input: a 2 MB `.pth` whose zip entries or storages claim gigabytes,
or a tensor whose zero stride stretches a few bytes over billions of elements, must end in one
line, not in an out-of-memory kill.  The limits live in a `ContextVar` rather than a module
constant so that one process (a web server, a test) can run jobs with different limits side by
side without a process-wide setting: `with using(ReadLimits(checkpoint_bytes=...)): ...`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from weights.errors import WeightsError

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """Upper bounds for one checkpoint read.

    `checkpoint_bytes`: bytes the file may expand to in memory (zip records after
    decompression, legacy storages, HDF5 datasets, ONNX initialisers); the largest real
    backbone we know, VGG16 with its classifier, is 528 MB.
    `tensor_elements`: elements of any one tensor (VGG16's largest, fc6, has 102.8 M).
    """

    checkpoint_bytes: int = 4 * GIB
    tensor_elements: int = 2**30


_CURRENT: contextvars.ContextVar[ReadLimits] = contextvars.ContextVar("detstyle_read_limits", default=ReadLimits())


def current() -> ReadLimits:
    """The limits in force for this thread/task (the defaults unless `using` changed them)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(limits: ReadLimits) -> Iterator[ReadLimits]:
    """Read checkpoints under `limits` inside the `with` block (this context only)."""
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def too_large(what: str, amount: int, limit: int, name: str, unit: str = "bytes") -> str:
    """The one-line message for a refused allocation: what, the limit, and how to raise it."""
    return (f"{what} needs {amount:,} {unit}, more than the limit of {limit:,} "
            f"(raise it with --limit {name}=N)")


class Budget:
    """Bytes one checkpoint read may still allocate: every record, storage and dataset draws on it.

    Why a running total and not a per-record check: a file of a thousand records just under the
    limit would otherwise pass a thousand times.  Created per read, so the limits are those in
    force when the read starts (`current()` at call time).
    """

    def __init__(self, source: object, limits: ReadLimits | None = None) -> None:
        self.source = source
        self.limits = limits or current()
        self.used = 0

    def charge(self, amount: int, what: str) -> None:
        """Count `amount` bytes for `what`, or raise a one-line WeightsError naming the limit."""
        if amount < 0:
            raise WeightsError(f"{self.source}: {what} has a negative size ({amount})")
        total = self.used + amount
        if total > self.limits.checkpoint_bytes:
            label = f"{self.source}: {what}" if not self.used else f"{self.source}: the checkpoint up to {what}"
            raise WeightsError(too_large(label, total, self.limits.checkpoint_bytes, "checkpoint_bytes"))
        self.used = total

    def check_elements(self, count: int, what: str) -> None:
        """Refuse one tensor of more than `tensor_elements` elements (a one-line WeightsError)."""
        if count < 0:
            raise WeightsError(f"{self.source}: {what} has a negative element count ({count})")
        if count > self.limits.tensor_elements:
            raise WeightsError(too_large(f"{self.source}: {what}", count, self.limits.tensor_elements,
                                         "tensor_elements", unit="elements"))
