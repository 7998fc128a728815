"""Image input/output: every image in the toolkit is float32 RGB in [0, 1], shape (H, W, 3).

Reading normalises what people actually have on disk (EXIF rotation, greyscale, palette,
alpha, 16-bit, CMYK) and turns every failure into one clear `ImageError`.  Writing is
atomic (temporary file + rename) so a crash never leaves a half-written picture.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from transfer.errors import DetstyleError, ImageError

#: Refuse images larger than this many pixels before decoding (decompression bombs).
MAX_PIXELS = 120_000_000


def _to_rgb(image: Image.Image) -> Image.Image:
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
    """Our own pixel cap, checked per call: Pillow's is a process-wide setting we leave alone."""
    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"{path}: image has {width * height:,} pixels, more than {MAX_PIXELS:,}; refusing to decode it")


def load_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], optionally resized to `max_side`.

    `max_side` is the longest side in pixels after resizing (aspect ratio kept); smaller
    images are scaled up so every run works at the size the user asked for.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")
    try:
        with Image.open(path) as opened:  # reads the header only: the size is known before decoding
            _refuse_large(path, opened)
            opened.seek(0)  # animated files: the first frame
            image = ImageOps.exif_transpose(opened)
            image = _to_rgb(image)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: image has more than {MAX_PIXELS:,} pixels; refusing to decode it") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot decode image ({exc})") from None
    if max_side is not None:
        image = resize_longest_side(image, max_side)
    return np.asarray(image, dtype=np.float32) / 255.0


def image_ref(path: str | os.PathLike, weight: float = 1.0):
    """The `ImageRef` of an image file: its path and the sha256 of its bytes (checked to exist)."""
    from transfer.core.spec import ImageRef
    from weights.checksum import sha256

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file" if not path.exists() else f"{path}: is not a regular file")
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


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call `write(tmp_path)` then rename onto `path`; on any failure leave `path` untouched."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DetstyleError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise DetstyleError(f"{path}: output directory {directory} is not writable")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; outputs should look like any other file
    try:
        write(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a float [0, 1] RGB array atomically; the format follows the file extension."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise DetstyleError(f"{path}: unknown image extension {path.suffix!r} (use .png or .jpg)")
    pil = Image.fromarray(to_uint8(image))
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))
