"""Where results go: claimed before the work starts, never clobbered, never lost.

Every command checks its outputs before it spends minutes optimising: the folder exists and
takes a file (probed by creating one, which also catches `/proc` and read-only mounts), the
name is not a directory, an existing file is only replaced with `--overwrite`.  At the end,
`save_result` writes without replacing a file that appeared meanwhile, and if the write fails
(full disk, a folder removed) it keeps the picture elsewhere and says where.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from transfer.errors import OutputError, OutputExists
from transfer.io.images import pixel_digest, save_image

#: The file a command leaves in a folder it owns (compare, grid), so a rerun may write there again.
MARKER_PREFIX = ".detstyle-"


def check_writable_directory(directory: Path, for_path: Path | None = None) -> None:
    """Refuse a directory that is missing, not a directory, or does not take a new file."""
    label = f"{for_path}: output directory {directory}" if for_path is not None else f"{directory}: this folder"
    if not directory.exists():
        raise OutputError(f"{label} does not exist")
    if not directory.is_dir():
        raise OutputError(f"{label} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".detstyle-probe-", dir=directory)
    except OSError as exc:
        raise OutputError(f"{label} does not take new files ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def claim_file(path: str | os.PathLike, *, overwrite: bool, suffixes: Iterable[str] | None = None) -> Path:
    """An output file name checked before the run: a writable folder, no clobbering, a known type."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name such as {path / 'out.png'}")
    if suffixes is not None and path.suffix.lower() not in tuple(suffixes):
        raise OutputError(f"{path}: unsupported output extension {path.suffix!r} (use {', '.join(suffixes)})")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExists(f"{path}: already exists; pass --overwrite to replace it")
    check_writable_directory(path.parent if str(path.parent) else Path("."), path)
    return path


def claim_side_output(path: Path, *, overwrite: bool, folder: bool) -> Path:
    """A side output (the frames folder, the progress GIF): an existing one only with `overwrite`."""
    if path.exists() and path.is_dir() != folder:
        raise OutputError(f"{path}: exists and is not a {'folder' if folder else 'file'}")
    if path.exists() and not overwrite:
        raise OutputExists(f"{path}: already exists; pass --overwrite to replace it")
    return path


def check_can_create(folder: Path) -> None:
    """A folder that exists and takes files, or that can be made inside the nearest existing ancestor."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if existing == folder or existing.is_dir():
        check_writable_directory(existing, None if existing == folder else folder)
    else:
        raise OutputError(f"{folder}: {existing} exists and is not a directory")


def make_folder(folder: Path) -> Path:
    """Create `folder` (and its parents) when the first result is written, not before."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    return folder


def claim_directory(path: str | os.PathLike, *, owner: str, overwrite: bool) -> Path:
    """An output folder a command fills and may refill (compare, grid), created if missing.

    A folder the command made before carries its marker file, so a rerun continues there; a
    non-empty folder without it holds someone else's files and is refused without `--overwrite`.
    """
    path = Path(path)
    marker = path / (MARKER_PREFIX + owner)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not marker.exists() and not overwrite:
        raise OutputExists(f"{path}: folder is not empty and was not made by `detstyle {owner}`; "
                           "choose a new folder or pass --overwrite to write into it")
    make_folder(path)
    check_writable_directory(path)
    marker.touch()
    return path


def save_result(image: np.ndarray, path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Write a run's picture; if that fails, keep it elsewhere and raise an error naming both places."""
    path = Path(path)
    try:
        return save_image(image, path, replace=overwrite)
    except OutputError as exc:
        kept = keep_elsewhere(image, path, "kept")
        where = f"the result was kept at {kept}" if kept else "and it could not be kept anywhere else"
        raise OutputError(f"{exc}; {where}") from None


def keep_elsewhere(image: np.ndarray, path: Path, label: str) -> Path | None:
    """Save `image` as `STEM.LABEL-DIGEST.png` next to `path`, else in the temp folder; None if both fail.

    The name carries the pixels' digest, so an existing file of that name already holds them.
    """
    name = f"{path.stem}.{label}-{pixel_digest(image)[:8]}.png"
    for directory in (path.parent if str(path.parent) else Path("."), Path(tempfile.gettempdir())):
        try:
            return save_image(image, directory / name, replace=False)
        except OutputExists:
            return directory / name
        except OutputError:
            continue
    return None
