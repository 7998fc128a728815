"""What the web page may read from the output folder, and the gallery built from it.

Why one module: "nothing outside the output folder is ever served" has to hold for every
route that names a file, so every such route goes through `served_file`, which resolves the
path (symlinks included) and refuses anything that lands outside the folder.  The gallery
only lists what the toolkit's own commands wrote there: RunStore records (a JSON with a
"spec" beside its PNG), grid figures (the folder `OUTSTEM_cells/` with grid's marker) and
comparison folders (compare's marker, `metrics.json`, `comparison.png`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transfer.io.outputs import MARKER_PREFIX

#: File types the page may fetch from the output folder (images, and the tables commands write).
SERVED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".json", ".md", ".csv", ".pdf", ".svg")
#: Folders the gallery never descends into (uploads and in-flight job files are not results).
SKIPPED_FOLDERS = ("uploads", "jobs")
#: The gallery stops after this many entries of each kind (a huge folder must not stall the page).
GALLERY_LIMIT = 500


class NotServed(Exception):
    """A requested path that is not a servable file inside the output folder."""


def served_file(root: Path, relative: str) -> Path:
    """The file `relative` names inside `root`, or `NotServed`.

    Refused: absolute paths, any `..` component, anything whose real path (symlinks resolved)
    is outside `root`, anything that is not a regular file with a `SERVED_SUFFIXES` suffix.
    The route has decoded the URL once; a still-encoded name (`%2e%2e`) is just a file name
    that does not exist.
    """
    if not relative or relative.startswith(("/", "\\")) or os.path.isabs(relative) or "\x00" in relative:
        raise NotServed("absolute or empty path")
    if any(part in ("..", "") for part in relative.replace("\\", "/").split("/")):
        raise NotServed("a path with '..' or empty parts")
    real_root = root.resolve()
    try:
        path = (real_root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotServed("no such file") from None
    if not path.is_relative_to(real_root) or not path.is_file():
        raise NotServed("not a file inside the output folder")
    if path.suffix.lower() not in SERVED_SUFFIXES:
        raise NotServed("not a served file type")
    return path


def url_of(root: Path, path: Path) -> str:
    """The page's URL of a file inside `root` (see `served_file`)."""
    return "/files/" + path.resolve().relative_to(root.resolve()).as_posix()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _walk(root: Path):
    """(folder, file names) under `root`, symlinked folders not followed, skipped folders left out.

    Batch caches are left out too (a grid's `detstyle-cache/`, a comparison's `runs/`): their
    results are shown as the cells of their grid or comparison, not again as single runs.
    """
    from transfer.cli.grid import CACHE_NAME

    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        if here == root:
            dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS]
        compare = MARKER_PREFIX + "compare" in files
        dirs[:] = [d for d in dirs if d != CACHE_NAME and not (compare and d == "runs")]
        dirs.sort()
        yield here, dirs, sorted(files)


def gallery(root: Path) -> dict[str, list[dict]]:
    """Previous runs, grids and comparisons under `root`, newest first, each with its spec or command."""
    runs, grids, comparisons = [], [], []
    if not root.is_dir():
        return {"runs": runs, "grids": grids, "comparisons": comparisons}
    for folder, dirs, files in _walk(root):
        names = set(files)
        if MARKER_PREFIX + "compare" in names and "metrics.json" in names and len(comparisons) < GALLERY_LIMIT:
            comparisons.append(_comparison(root, folder))
        if MARKER_PREFIX + "grid" in names and folder.name.endswith("_cells") and len(grids) < GALLERY_LIMIT:
            grids.extend(_grid(root, folder))
        for name in files:
            if name.endswith(".json") and name[:-5] + ".png" in names and len(runs) < GALLERY_LIMIT:
                runs.extend(_run(root, folder / name))
    for items in (runs, grids, comparisons):
        items.sort(key=lambda item: item.pop("mtime"), reverse=True)
    return {"runs": runs, "grids": grids, "comparisons": comparisons}


def _run(root: Path, record_path: Path) -> list[dict]:
    record = _read_json(record_path)
    image = record_path.with_suffix(".png")
    if record is None or not isinstance(record.get("spec"), dict) or image.is_symlink() or record_path.is_symlink():
        return []
    summary = {k: record[k] for k in ("seconds", "steps", "stop_reason", "losses", "origin") if k in record}
    return [{"image": url_of(root, image), "spec": record["spec"], "digest": record.get("digest"),
             "mtime": image.stat().st_mtime, **summary}]


def _grid(root: Path, cells: Path) -> list[dict]:
    """The figure beside a grid's cells folder (`OUTSTEM_cells/` -> `OUTSTEM.png` or another suffix)."""
    from transfer.cli.grid import FIGURE_SUFFIXES

    stem = cells.name.removesuffix("_cells")
    for suffix in FIGURE_SUFFIXES:
        figure = cells.with_name(stem + suffix)
        if figure.is_file() and not figure.is_symlink() and suffix in SERVED_SUFFIXES:
            cell_files = sorted(p for p in cells.glob("*.png") if not p.is_symlink())
            return [{"image": url_of(root, figure), "name": figure.name, "mtime": figure.stat().st_mtime,
                     "cells": [{"name": p.stem, "image": url_of(root, p)} for p in cell_files]}]
    return []


def _comparison(root: Path, folder: Path) -> dict:
    metrics = _read_json(folder / "metrics.json") or {}
    figure = next((folder / f"comparison.{s}" for s in ("png", "jpg") if (folder / f"comparison.{s}").is_file()), None)
    runs = metrics.get("runs") if isinstance(metrics.get("runs"), list) else []
    return {"name": folder.name, "image": url_of(root, figure) if figure else None,
            "command": metrics.get("command"), "runs": len(runs),
            "spec": runs[0].get("spec") if runs and isinstance(runs[0], dict) else None,
            "mtime": (folder / "metrics.json").stat().st_mtime}
