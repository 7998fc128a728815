"""Resource limits, stated once and enforced before anything is allocated.

Every limit has a name that `--limit NAME=N` raises or lowers for one command (every
command's `--help` lists them with their defaults).  They live in context variables, not module constants, so a server
can run jobs with different limits in one process; `using(Limits(...))` applies them to the
image readers here and to the checkpoint readers of `weights.limits` alike.

The defaults come from measurements on a 23 GiB machine: 2048x2048 runs peaked at 8.8 to
12.2 GiB (bench/results/memory_2048.json), so `output_pixels` allows that size and nothing
larger; the readers' limits stop decompression bombs long before they hurt.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from transfer.errors import UsageError
from weights import limits as weight_limits


def _limit(default: int, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Limits:
    """Upper bounds for one job.  Each field is one `--limit` name; its help says what it bounds."""

    image_pixels: int = _limit(120_000_000, "pixels of any image file, from its header, before decoding "
                                            "(decompression bombs)")
    output_pixels: int = _limit(2048 * 2048, "pixels of the stylised output; 2048x2048 runs peaked at 8.8 "
                                             "(Adam) to 12.2 GiB (fast) in bench/results/memory_2048.json. With "
                                             "--tile N: pixels of one tile with its context margin (N/8 rounded "
                                             "up to a multiple of 16 on each side), and the whole output is "
                                             "bounded by image_pixels instead")
    style_pixels: int = _limit(2048 * 2048, "pixels of a style image after --style-scale; a larger one is "
                                            "downscaled to fit, with a note")
    checkpoint_bytes: int = _limit(weight_limits.ReadLimits().checkpoint_bytes,
                                   "bytes a checkpoint may expand to in memory (zip records, storages, datasets)")
    tensor_elements: int = _limit(weight_limits.ReadLimits().tensor_elements,
                                  "elements of any one tensor in a checkpoint")

    def read_limits(self) -> weight_limits.ReadLimits:
        return weight_limits.ReadLimits(self.checkpoint_bytes, self.tensor_elements)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Limits))
LIMIT_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in dataclasses.fields(Limits)}
_CURRENT: contextvars.ContextVar[Limits] = contextvars.ContextVar("detstyle_limits", default=Limits())


def current() -> Limits:
    """The limits in force for this thread or task."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(limits: Limits) -> Iterator[Limits]:
    """Run the `with` block (images, outputs and checkpoint reads) under `limits`."""
    token = _CURRENT.set(limits)
    try:
        with weight_limits.using(limits.read_limits()):
            yield limits
    finally:
        _CURRENT.reset(token)


def parse_overrides(items: list[str], base: Limits | None = None) -> Limits:
    """`["output_pixels=16e6", "checkpoint_bytes=8G"]` -> `Limits` (a `UsageError` for a bad item)."""
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in LIMIT_NAMES:
            raise UsageError(f"--limit {item!r}: expected NAME=N with NAME one of {', '.join(LIMIT_NAMES)}")
        values[name] = _parse_amount(name, text)
    return dataclasses.replace(base or Limits(), **values)


_SUFFIXES = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _parse_amount(name: str, text: str) -> int:
    """A positive whole amount: `5000000`, `5e6`, or with a binary suffix `512M`, `8G`."""
    text = text.strip().lower()
    factor = _SUFFIXES.get(text[-1:], 1)
    try:
        value = float(text[:-1] if factor > 1 else text) * factor
    except ValueError:
        raise UsageError(f"--limit {name}={text}: expected a number such as 5e6 or 8G") from None
    if not 1 <= value < 2**62:
        raise UsageError(f"--limit {name}={text}: must be between 1 and 2**62")
    return int(value)


def refusal(what: str, amount: int, name: str, unit: str = "pixels") -> str:
    """The one-line message for a refused input: what, the limit, and how to raise it."""
    return weight_limits.too_large(what, amount, getattr(current(), name), name, unit)
