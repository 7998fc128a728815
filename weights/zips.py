"""Zip records read without trusting their headers: torch `.pth` archives and `.keras` files.

A zip header states each record's sizes and compression; a hostile one lies so that a small
file inflates to gigabytes.  Records are checked against what the header could honestly
claim, counted against the read limits, and inflated in bounded chunks.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO

from weights.errors import WeightsError, first_line
from weights.files import copy_at_most
from weights.limits import Budget

#: Deflate cannot expand data more than 1032-fold; a record claiming more has a lying header.
DEFLATE_MAX_RATIO = 1032
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def open_zip(path: Path) -> zipfile.ZipFile:
    """The archive at `path`, or a one-line WeightsError whatever `zipfile` raised."""
    try:
        return zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, struct.error, UnicodeDecodeError, ...
        raise WeightsError(f"{path}: truncated or corrupt zip archive ({first_line(exc)})") from None


def check_record(path: Path, info: zipfile.ZipInfo, archive_size: int) -> None:
    """Refuse a zip record whose header cannot be true, before a byte of it is inflated.

    Only stored and deflated records are read (what torch and Keras write): `zipfile` inflates
    bzip2 and lzma without an output bound, so one small record could expand to gigabytes.
    A stored record is as long as its data; a deflated one at most 1032 times longer.
    """
    name = info.filename
    if info.compress_type not in _METHODS:
        raise WeightsError(f"{path}: zip record {name} uses compression method {info.compress_type}; "
                           "only stored and deflated records are read")
    if info.compress_size > archive_size:
        raise WeightsError(f"{path}: zip record {name} claims {info.compress_size:,} compressed bytes "
                           f"in a {archive_size:,}-byte file")
    most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        DEFLATE_MAX_RATIO * info.compress_size + 1024
    if info.file_size > most:
        raise WeightsError(f"{path}: zip record {name} claims {info.file_size:,} bytes from "
                           f"{info.compress_size:,} {_METHODS[info.compress_type]} bytes; its header lies")


def copy_record(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO, budget: Budget,
                archive_size: int) -> None:
    """Inflate the whole record into `out`, after the header checks and the limit, in chunks."""
    check_record(path, info, archive_size)
    budget.charge(info.file_size, f"zip record {info.filename}")
    try:
        with archive.open(info) as member:
            got = copy_at_most(member, out, info.file_size)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError, ...
        raise WeightsError(f"{path}: corrupt or truncated record {info.filename} ({first_line(exc)})") from None
    if got != info.file_size:
        raise WeightsError(f"{path}: truncated record {info.filename}: {got:,} of {info.file_size:,} bytes")


def read_record(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget,
                archive_size: int) -> bytes:
    """A whole zip record in memory (see :func:`copy_record`)."""
    buffer = io.BytesIO()
    copy_record(path, archive, info, buffer, budget, archive_size)
    return buffer.getvalue()
