"""`detstyle video`: stylise a clip frame by frame without flicker (issue 22).  Placeholder: being written."""

from __future__ import annotations


def add_command(sub) -> None:
    return None
