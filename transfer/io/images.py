"""Image input/output: every image in the toolkit is float32 RGB in [0, 1], shape (H, W, 3).

Reading normalises what people actually have on disk (EXIF rotation, greyscale, palette,
alpha, 16-bit, CMYK) and turns every failure into one clear `ImageError`.  Writing is
atomic (temporary file + rename) so a crash never leaves a half-written picture.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from transfer import limits
from transfer.errors import DetstyleError, ImageError, OutputError, OutputExists

log = logging.getLogger("detstyle")

#: A JPEG above this many pixels that is wanted smaller is decoded at reduced scale (Pillow's
#: `draft`): a 100-megapixel photo given as `--init` for a 64 px run then costs ~1/64 of the
#: memory.  Below it, the full decode keeps pixels identical to earlier versions.
DRAFT_ABOVE_PIXELS = 16_000_000


def _float_to_l(path: Path, image: Image.Image) -> Image.Image:
    """A 32-bit float image (scientific TIFF) as 8-bit grey, its range read from the data.

    Pillow's own conversion clips floats to 0..255, so a [0, 1] image became a flat black
    picture without a word.  Values in [0, 1] are scaled by 255, values in [0, 255] kept, any
    other range stretched to 0..255 with a notice; NaN/inf is refused.
    """
    array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ImageError(f"{path}: float image holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        array = array * 255.0
    elif low < 0.0 or high > 255.0:
        log.info("%s: float image with values %.4g..%.4g stretched to 0..255", path, low, high)
        array = (array - low) / max(high - low, 1e-12) * 255.0
    return Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), "L")


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    if image.mode == "F":
        image = _float_to_l(path, image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _refuse_large(path: Path, opened: Image.Image) -> None:
    """Our own pixel cap (`--limit image_pixels`), from the header, before decoding.

    Pillow's cap is a process-wide setting we leave alone; it warns at its limit and only
    raises at twice that, so it cannot be the one that enforces ours.
    """
    width, height = opened.size
    if width * height > limits.current().image_pixels:
        raise ImageError(f"{path}: " + limits.refusal(f"decoding this {width}x{height} image", width * height,
                                                       "image_pixels"))


def _pillow_bomb_message(path: Path) -> str:
    """Pillow refuses headers above twice its process-wide cap in `Image.open`, before ours is asked."""
    return (f"{path}: the header claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; refused before decoding "
            "(a decompression bomb, or an image too large for any --limit image_pixels)")


def check_input_file(path: str | os.PathLike, what: str = "image") -> Path:
    """A path that names a regular, non-empty file, else one line saying what it is instead.

    A FIFO or a device would block or read forever, a directory fails deep inside Pillow:
    every input file goes through this check first.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"{path}: is a directory, not {what} file")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{path}: is not a regular file (a pipe, socket or device cannot be {what} input)")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")
    return path


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """`(width, height)` of an image file after EXIF rotation, from its header alone."""
    path = check_input_file(path)
    try:
        with _open(path) as opened:
            _refuse_large(path, opened)
            width, height = opened.size
            orientation = _header_orientation(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_pillow_bomb_message(path)) from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read the image header ({exc})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _header_orientation(opened: Image.Image) -> int:
    """The EXIF orientation tag, read without decoding the pixels.

    Why not `getexif()` for PNG: an eXIf chunk may follow the image data, so Pillow decodes the
    whole image to look for one; a 50-megapixel upload then costs its full decode just to be
    measured.  Only an eXIf chunk before the data counts here; the size check needs the pixel
    count, which a rotation does not change.
    """
    if opened.format != "PNG":
        return opened.getexif().get(0x0112, 1)
    raw = opened.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return exif.get(0x0112, 1)


class _CappedReads:
    """An open file whose `read(n)` never asks for more than the bytes left in it.

    Pillow trusts a chunk's declared length: a PNG whose IDAT claims 2 GiB made it allocate
    2 GiB for a 656-byte file (found by tests/test_fuzz.py).  Everything else is the file's own.
    """

    def __init__(self, file, size: int) -> None:
        self._file, self._size = file, size

    def read(self, n: int | None = -1) -> bytes:
        left = max(self._size - self._file.tell(), 0)
        return self._file.read(left if n is None or n < 0 else min(n, left))

    def __getattr__(self, name: str):
        return getattr(self._file, name)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """`Image.open` over the file with its reads capped at its size (see `_CappedReads`)."""
    with open(path, "rb") as file, Image.open(_CappedReads(file, os.fstat(file.fileno()).st_size)) as image:
        yield image


def load_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], optionally resized to `max_side`.

    `max_side` is the longest side in pixels after resizing (aspect ratio kept); smaller
    images are scaled up so every run works at the size the user asked for.
    """
    path = check_input_file(path)
    try:
        with _open(path) as opened:  # reads the header only: the size is known before decoding
            _refuse_large(path, opened)
            opened.seek(0)  # animated files: the first frame
            if max_side is not None and opened.width * opened.height > DRAFT_ABOVE_PIXELS:
                opened.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2..1/8 scale, still >= max_side
            image = ImageOps.exif_transpose(opened)
            image = _to_rgb(image, path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_pillow_bomb_message(path)) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder fed hostile bytes may raise anything (struct.error, ...)
        raise ImageError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})"[:300]) from None
    if max_side is not None:
        image = resize_longest_side(image, max_side)
    return np.asarray(image, dtype=np.float32) / 255.0


def image_ref(path: str | os.PathLike, weight: float = 1.0):
    """The `ImageRef` of an image file: its path and the sha256 of its bytes (checked to exist)."""
    from transfer.core.spec import ImageRef
    from weights.checksum import sha256

    path = check_input_file(path)
    return ImageRef(str(path), sha256(path), weight)


def pixel_digest(image: np.ndarray) -> str:
    """sha256 of an array's float32 pixels and shape: the same digest means the same input."""
    import hashlib

    pixels = np.ascontiguousarray(image, np.float32)
    return hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()


def array_ref(image: np.ndarray, source: str, weight: float = 1.0):
    """The `ImageRef` of an in-memory image (e.g. the demo's generated style): its `pixel_digest`."""
    from transfer.core.spec import ImageRef

    return ImageRef(source, pixel_digest(image), weight)


def load_ref(ref, max_side: int | None = None) -> np.ndarray:
    """Load the file an `ImageRef` names, refused if its bytes changed since the ref was made."""
    current = image_ref(ref.source, ref.weight)
    if current.sha256 != ref.sha256:
        raise ImageError(f"{ref.source}: the file changed since the run was specified (sha256 differs)")
    return load_image(ref.source, max_side)


def resize_longest_side(image: Image.Image, max_side: int) -> Image.Image:
    """Resize so the longest side is `max_side` pixels (aspect ratio kept, min 1 pixel)."""
    if max_side < 1:
        raise DetstyleError(f"image size must be a positive number of pixels, got {max_side}")
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def resize_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float [0, 1] RGB array to `(height, width)` with Lanczos resampling."""
    pil = Image.fromarray(to_uint8(image))
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.LANCZOS), np.float32) / 255.0


def resize_batch(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`resize_array` over a `(B, H, W, 3)` batch; the batch itself when it already has that size."""
    if images.shape[1:3] == tuple(size):
        return images
    return np.stack([resize_array(img, size) for img in images])


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def atomic_write(path: str | os.PathLike, write, *, replace: bool = True) -> Path:
    """Call `write(tmp_path)` then move it onto `path`; on any failure leave `path` untouched.

    `replace=False` never replaces a file, not even one that appeared while the work ran: the
    temporary file is hard-linked to `path`, which fails if `path` exists (`OutputExists`).
    A failed write (full disk, read-only place) is an `OutputError` naming `path`.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"{path}: output directory {directory} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {directory} ({exc.strerror or exc})") from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; outputs should look like any other file
    try:
        write(tmp_name)
        _move_into_place(Path(tmp_name), path, replace)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path


def _move_into_place(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic and exclusive: fails if path exists
    except FileExistsError:
        raise OutputExists(f"{path}: appeared while the run was working; it was left as it is") from None
    except OSError:  # a file system without hard links: check, then rename (a tiny window remains)
        if path.exists():
            raise OutputExists(f"{path}: appeared while the run was working; it was left as it is") from None
        os.replace(tmp, path)


def save_image(image: np.ndarray, path: str | os.PathLike, *, replace: bool = True) -> Path:
    """Write a float [0, 1] RGB array atomically; the format follows the file extension."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise DetstyleError(f"{path}: unknown image extension {path.suffix!r} (use .png or .jpg)")
    pil = Image.fromarray(to_uint8(image))
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt), replace=replace)
