"""The `detstyle` command line: one module per command, each parse -> spec -> library call -> render."""

from transfer.cli.main import main

__all__ = ["main"]
