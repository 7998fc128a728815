"""Input images of the web page: uploads, validated like the CLI's inputs, and the demo's defaults.

An upload is streamed to a temporary file in `OUT_DIR/uploads/` with a byte cap, checked by
`transfer.io.images.image_size` (the CLI's checks: a regular non-empty file, a format Pillow
reads, the `--limit image_pixels` cap and Pillow's decompression-bomb guard, all from the
header, before any decoding) and then renamed to the sha256 of its bytes: the same picture
uploaded twice is one file, and a run spec's `ImageRef` (path + sha256) names it exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from transfer.errors import ImageError
from transfer.io.images import image_size

#: Bytes one upload may have (a 50-megapixel PNG of a photo is ~100 MB; an upload is never held in memory).
MAX_UPLOAD_BYTES = 256 * 2**20
#: Upload ids are the first characters of the sha256 of the bytes, then the format's suffix.
ID_PATTERN = re.compile(r"^[0-9a-f]{16}\.[a-z0-9]{2,5}$")
#: The demo's defaults (`detstyle demo`): matplotlib's photo and the generated swirl style.
DEFAULT_CONTENT, DEFAULT_STYLE = "grace_hopper", "generated_style"
DEFAULT_STYLE_SIZE = 512


class UploadTooLarge(ImageError):
    """An upload above the byte cap (HTTP 413)."""


@dataclasses.dataclass(frozen=True)
class Upload:
    """An input image the page can pick: its id, what the user called it, its size in pixels."""

    id: str
    name: str
    width: int
    height: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Uploads:
    """The input images of one server: `OUT_DIR/uploads/<sha256[:16]>.<ext>` plus the defaults."""

    def __init__(self, out_dir: Path, max_bytes: int = MAX_UPLOAD_BYTES):
        self.folder = out_dir / "uploads"
        self.max_bytes = max_bytes
        self.names: dict[str, str] = {}  # id -> the name it was uploaded as

    def save(self, name: str, chunks: Iterable[bytes]) -> Upload:
        """Stream `chunks` to disk under the cap, validate, keep; an `ImageError` says why not."""
        self.folder.mkdir(parents=True, exist_ok=True)
        display = Path(name or "upload").name[:120]
        fd, tmp_name = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=self.folder)
        tmp = Path(tmp_name)
        try:
            digest = self._write_capped(fd, chunks, display)
            width, height, suffix = _checked_image(tmp, display)
            upload_id = f"{digest[:16]}{suffix}"
            os.replace(tmp, self.folder / upload_id)
        finally:
            tmp.unlink(missing_ok=True)
        self.names[upload_id] = display
        return Upload(upload_id, display, width, height)

    def _write_capped(self, fd: int, chunks: Iterable[bytes], display: str) -> str:
        digest, total = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                total += len(chunk)
                if total > self.max_bytes:
                    raise UploadTooLarge(f"{display}: larger than the {self.max_bytes:,}-byte upload limit")
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def path(self, upload_id: str) -> Path:
        """The file of an upload id or a default's name; `ImageError` for anything else."""
        if upload_id == DEFAULT_CONTENT:
            from transfer.io.samples import grace_hopper_path

            return grace_hopper_path()
        if upload_id == DEFAULT_STYLE:
            return self._generated_style()
        path = self.folder / upload_id
        if not ID_PATTERN.match(upload_id or "") or not path.is_file():
            raise ImageError(f"no uploaded image {upload_id!r}: upload it again")
        return path

    def _generated_style(self) -> Path:
        """The demo's generated style, written once as a file so a spec can name it by path and sha256."""
        from transfer.io.images import save_image
        from transfer.io.samples import generated_style

        path = self.folder / f"{DEFAULT_STYLE}_{DEFAULT_STYLE_SIZE}.png"
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            save_image(generated_style(DEFAULT_STYLE_SIZE, 0), path)
        return path

    def listing(self) -> list[dict]:
        """The defaults, then every upload (newest first), for the page's pickers."""
        defaults = [Upload(DEFAULT_CONTENT, "grace_hopper.jpg (matplotlib)", *image_size(self.path(DEFAULT_CONTENT))),
                    Upload(DEFAULT_STYLE, "generated swirl (demo)", DEFAULT_STYLE_SIZE, DEFAULT_STYLE_SIZE)]
        found = sorted((p for p in self.folder.glob("*") if ID_PATTERN.match(p.name)),
                       key=lambda p: p.stat().st_mtime, reverse=True) if self.folder.is_dir() else []
        uploads = []
        for path in found:
            try:
                uploads.append(Upload(path.name, self.names.get(path.name, path.name), *image_size(path)))
            except ImageError:
                continue
        return [u.to_dict() for u in defaults + uploads]


def _checked_image(path: Path, display: str) -> tuple[int, int, str]:
    """(width, height, suffix) of a valid image file; its errors name `display`, not the temp file."""
    try:
        width, height = image_size(path)
        with Image.open(path) as opened:
            fmt = opened.format or ""
    except ImageError as exc:
        raise ImageError(str(exc).replace(str(path), display)) from None
    except OSError as exc:
        raise ImageError(f"{display}: cannot read the image header ({exc})") from None
    suffix = FORMAT_SUFFIXES.get(fmt)
    if suffix is None:
        raise ImageError(f"{display}: {fmt or 'this'} images are not accepted; use PNG, JPEG, WebP, TIFF, BMP or GIF")
    return width, height, suffix


#: Pillow format -> the suffix an accepted upload is stored with.
FORMAT_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif",
                   "MPO": ".jpg"}

