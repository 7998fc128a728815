"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class DetstyleError(Exception):
    """Something the user can fix: a bad image, option, backbone name or output path."""


class ImageError(DetstyleError):
    """An input image is missing, unreadable or unusable."""


class DivergenceError(DetstyleError):
    """The optimisation produced NaN/inf; the last good image is kept."""

    def __init__(self, message: str, last_good_image=None, step: int | None = None):
        super().__init__(message)
        self.last_good_image = last_good_image
        self.step = step


class UsageError(DetstyleError):
    """A combination of options the run cannot honour (the CLI exits 2, like argparse)."""


class OutputError(DetstyleError):
    """An output cannot be written where asked (missing or read-only folder, full disk)."""


class OutputExists(OutputError):
    """An output file exists (or appeared during the run) and replacing it was not allowed."""
