"""`detstyle serve`: a local web page over the same run spec and library call as the CLI.

`create_app(out_dir)` builds the app (`transfer.web.app`); nothing runs at import.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """See `transfer.web.app.create_app` (imported here lazily: FastAPI loads only when serving)."""
    from transfer.web.app import create_app as build

    return build(*args, **kwargs)
