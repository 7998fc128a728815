"""Opening and reading checkpoint files defensively: regular files only, bounded chunked reads.

Why: a FIFO blocks `open()` until a writer appears and `/dev/zero` never ends, so anything that
is not a regular file is refused from `stat` before it is opened; and a size taken from the
file itself (a zip header, a storage count) is never trusted to size one big `read()`.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

from weights.errors import WeightsError

#: Bytes per read call: large enough to be fast, small enough that a lying size costs nothing.
CHUNK = 1 << 20


def regular_file_size(path: Path) -> int:
    """The size of `path`, or a one-line WeightsError if it is missing or not a regular file."""
    try:
        mode_and_size = path.stat()
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode_and_size.st_mode):
        raise WeightsError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(mode_and_size.st_mode):
        raise WeightsError(f"{path}: is not a regular file (a pipe, socket or device cannot be a checkpoint)")
    return mode_and_size.st_size


def read_into(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill `buffer` from `stream` in `CHUNK`-sized reads; the number of bytes actually read.

    Chunked so that a decompressing stream never holds more than one chunk beyond the buffer.
    """
    filled, size = 0, len(buffer)
    while filled < size:
        got = stream.readinto(buffer[filled : min(size, filled + CHUNK)])
        if not got:
            break
        filled += got
    return filled


def copy_at_most(stream: BinaryIO, out: BinaryIO, claimed: int) -> int:
    """Copy up to `claimed` bytes from `stream` to `out` in `CHUNK`s; the number copied.

    Why not one `read(claimed)`: `claimed` comes from a header that may lie, and memory must
    follow the bytes that really arrive, never the claim.
    """
    left = claimed
    while left > 0:
        part = stream.read(min(left, CHUNK))
        if not part:
            break
        out.write(part)
        left -= len(part)
    return claimed - left
