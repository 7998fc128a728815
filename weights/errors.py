"""Errors raised while reading checkpoint files.

Every message names the file and the problem in one line, so the CLI can print it as is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class WeightsError(Exception):
    """A checkpoint file is missing, unreadable, of the wrong layout or fails verification."""


class UnsafeCheckpointError(WeightsError):
    """A pickle inside a checkpoint asks for a global outside the allow-list; nothing was run."""


def first_line(exc: BaseException, width: int = 160) -> str:
    """`Type: first line of the message`, cut to `width` characters, for a one-line error."""
    text = str(exc).strip()
    detail = text.splitlines()[0][:width] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def corrupt(path: object, what: str, exc: BaseException) -> WeightsError:
    """The one-line error for a library exception raised by hostile or damaged bytes."""
    return WeightsError(f"{path}: corrupt or truncated {what} ({first_line(exc)})")


def one_line_errors(what: str) -> Callable[[_F], _F]:
    """Decorate a reader `f(path, ...)` so that *any* exception becomes a one-line WeightsError.

    Why a blanket catch: parsers fed hostile bytes raise whatever their internals hit
    (struct.error, UnicodeDecodeError, RecursionError, MemoryError, zlib.error, h5py's and
    protobuf's own types...), and a traceback is never the right answer to a bad file.
    KeyboardInterrupt and SystemExit are not Exceptions and pass through.
    """

    def decorate(reader: _F) -> _F:
        @functools.wraps(reader)
        def wrapper(path: str | Path, *args: Any, **kwargs: Any) -> Any:
            try:
                return reader(path, *args, **kwargs)
            except WeightsError:
                raise
            except MemoryError as exc:  # within the limits, but more than this machine has free
                raise WeightsError(f"{path}: not enough memory to read this {what} ({first_line(exc)})") from None
            except Exception as exc:  # noqa: BLE001 - see the docstring
                raise corrupt(Path(path), what, exc) from None

        return wrapper  # type: ignore[return-value]

    return decorate
