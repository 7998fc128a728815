"""Errors raised while reading checkpoint files.

Every message names the file and the problem in one line, so the CLI can print it as is.
"""


class WeightsError(Exception):
    """A checkpoint file is missing, unreadable, of the wrong layout or fails verification."""


class UnsafeCheckpointError(WeightsError):
    """A pickle inside a checkpoint asks for a global outside the allow-list; nothing was run."""
