"""Check a pickle's opcodes before the C unpickler runs them: sizes, memo indices, nesting.

Why a scan before `pickle.Unpickler`, which the allow-list already keeps from calling code:
the C unpickler trusts the sizes written in the stream.  A 10-byte pickle whose BINBYTES
claims 4 GiB makes it allocate 4 GiB before noticing the data is missing, a LONG_BINPUT index
of 2**28 makes it grow (and zero) a 2 GiB memo table, and memo references can build a
structure whose tree size doubles per opcode (a few hundred bytes that hash or print for
ever) or nest so deep that hashing it overflows the C stack.  `pickletools.genops` parses
every opcode in pure Python, reading each argument through a reader that cannot go past the
pickle's end, and a small stack simulation bounds memo indices, nesting and expansion.
A pickle that passes is handed over as bytes, so the unpickler never reads past it either.
"""

from __future__ import annotations

import pickletools
from typing import BinaryIO

from weights.errors import WeightsError

#: Deepest nesting a checkpoint pickle may have (a torch state dict is about 6 levels deep).
MAX_DEPTH = 100
#: Longest text line an opcode argument may have (module names, decimal numbers).
MAX_LINE = 1 << 16
#: A pickle object's tree size may be at most this many nodes per byte of pickle (plus a
#: constant): torch pickles stay near 1; memo-doubling structures grow exponentially.
EXPANSION_PER_BYTE = 64
EXPANSION_SLACK = 4096

_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MARK = None  # a MARK on the simulated stack; every other item is (tree size, depth)


class _Capped:
    """The read interface `genops` needs, over `stream`, never reading past byte `end`."""

    def __init__(self, stream: BinaryIO, end: int) -> None:
        self._stream, self._end = stream, end

    def _left(self) -> int:
        return max(0, self._end - self._stream.tell())

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(self._left() if n < 0 else min(n, self._left()))

    def readline(self) -> bytes:
        return self._stream.readline(min(self._left(), MAX_LINE))

    def tell(self) -> int:
        return self._stream.tell()


def pickle_bytes(stream: BinaryIO, end: int) -> bytes:
    """The bytes of the one pickle that starts at `stream`'s position, once they pass the scan.

    `end` is where the stream's data ends (the file size): no read goes past it.  Leaves
    `stream` just after the pickle's STOP opcode.  Raises ValueError (malformed or truncated
    opcodes, as `pickletools` words it) or WeightsError (a hostile memo index, depth or size).
    """
    start = stream.tell()
    _Simulation(start).run(_Capped(stream, end))
    stop = stream.tell()
    stream.seek(start)
    return stream.read(stop - start)


class _Simulation:
    """The unpickler's stack and memo, holding only each object's tree size and depth."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.stack: list[tuple[int, int] | None] = []
        self.memo: dict[int, tuple[int, int]] = {}

    def run(self, source: _Capped) -> None:
        for opcode, arg, pos in pickletools.genops(source):
            offset = pos - self.start
            name = opcode.name
            if name in _GETS:
                if arg not in self.memo:
                    raise ValueError(f"memo key {arg} read before it is written")
                self.stack.append(self.memo[arg])
            elif name in _PUTS:
                if not 0 <= arg <= offset:
                    raise WeightsError(f"memo index {arg:,} at byte {offset} is beyond any real pickle's memo")
                self.memo[arg] = self._top()
            elif name == "MEMOIZE":
                self.memo[len(self.memo)] = self._top()
            elif name == "DUP":
                self.stack.append(self._top())
            elif name == "MARK":
                self.stack.append(_MARK)
            else:
                self._apply(opcode, offset)

    def _top(self) -> tuple[int, int]:
        if not self.stack or self.stack[-1] is _MARK:
            raise ValueError("stack underflow")
        return self.stack[-1]

    def _pop(self) -> tuple[int, int]:
        item = self._top()
        self.stack.pop()
        return item

    def _pop_to_mark(self) -> list[tuple[int, int]]:
        items = []
        while self.stack and self.stack[-1] is not _MARK:
            items.append(self.stack.pop())
        if not self.stack:
            raise ValueError("no MARK on the stack")
        self.stack.pop()
        return items

    def _apply(self, opcode: pickletools.OpcodeInfo, offset: int) -> None:
        """Pop what `opcode` consumes; push one item whose size and depth cover what it took."""
        before = opcode.stack_before
        consumed: list[tuple[int, int]] = []
        if pickletools.markobject in before:
            consumed += self._pop_to_mark()
            consumed += [self._pop() for _ in range(before.index(pickletools.markobject))]
        else:
            consumed += [self._pop() for _ in before]
        if not opcode.stack_after:
            return
        size = 1 + sum(s for s, _ in consumed)
        depth = 1 + max((d for _, d in consumed), default=0)
        if depth > MAX_DEPTH:
            raise WeightsError(f"objects nested more than {MAX_DEPTH} levels deep at byte {offset}")
        if size > EXPANSION_PER_BYTE * offset + EXPANSION_SLACK:
            raise WeightsError(f"an object at byte {offset} expands to {size:,} nodes through shared references")
        self.stack.append((size, depth))
