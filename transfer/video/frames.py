"""Clips in and out: a GIF, a folder of frames, or an MP4 (the `video` extra: imageio + imageio-ffmpeg).

Every frame comes out as float32 RGB in [0, 1] at the run's size (longest side), like any
other image of the toolkit; writing is atomic (`atomic_write`), so an interrupted run never
leaves half an animation.  GIF and folders need nothing beyond Pillow.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from transfer import limits
from transfer.errors import DetstyleError, ImageError, UsageError
from transfer.io.images import (atomic_write, check_input_file, load_image, resize_array, resize_longest_side,
                                to_uint8)
from transfer.jobs.grid import IMAGE_SUFFIXES

#: Clip files read and written (a folder of frames is the third kind of input).
CLIP_SUFFIXES = (".gif", ".mp4")
#: Frames per second when the input does not say (a folder of frames).
DEFAULT_FPS = 10.0
#: The original frame in the corner (`--inset`): this share of the output's width.
INSET_SHARE = 0.3
INSTALL_HINT = "pip install 'detstyle[video]' (imageio and imageio-ffmpeg)"


@dataclasses.dataclass(frozen=True)
class Clip:
    """The frames of a clip at the run's size, its frame rate and where it was read."""

    frames: list[np.ndarray]
    fps: float
    source: str


def _need_ffmpeg(path: Path) -> None:
    if importlib.util.find_spec("imageio") is None or importlib.util.find_spec("imageio_ffmpeg") is None:
        raise DetstyleError(f"{path}: MP4 needs the video extra: {INSTALL_HINT}; GIF and frame folders work without it")


def read_clip(path: str | Path, size: int | None, max_frames: int | None = None) -> Clip:
    """The frames of a GIF, an MP4 or a folder of images (sorted by name), resized to `size`."""
    path = check_clip_path(path)
    if path.is_dir():
        frames, fps = _folder_frames(path), DEFAULT_FPS
    elif path.suffix.lower() == ".gif":
        frames, fps = _gif_frames(check_input_file(path, "a clip")), None
    else:
        frames, fps = _mp4_frames(check_input_file(path, "a clip")), None
    clip = _collect(path, frames, size, max_frames)
    return Clip(clip, fps or _frame_rate(path), str(path))


def check_clip_path(path: str | Path) -> Path:
    """An input that exists and is a folder or a clip file of a known type (a `UsageError` otherwise)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if not path.is_dir() and path.suffix.lower() not in CLIP_SUFFIXES:
        raise UsageError(f"{path}: unknown clip type {path.suffix!r} (give a .gif, an .mp4 or a folder of frames)")
    return path


def check_clip_suffix(path: str | Path) -> Path:
    """An output name whose suffix is a clip type this module writes (a `UsageError` otherwise)."""
    path = Path(path)
    if path.suffix.lower() not in CLIP_SUFFIXES:
        raise UsageError(f"{path}: unknown clip type {path.suffix!r} (use {', '.join(CLIP_SUFFIXES)})")
    return path


def _collect(path: Path, frames: Iterator[Image.Image | np.ndarray], size: int | None,
             max_frames: int | None) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for frame in frames:
        if max_frames is not None and len(out) >= max_frames:
            break
        out.append(_sized(path, frame, size))
        if out[-1].shape != out[0].shape:
            raise ImageError(f"{path}: frame {len(out) - 1} is {out[-1].shape[1]}x{out[-1].shape[0]} at this size, "
                             f"frame 0 {out[0].shape[1]}x{out[0].shape[0]}: a clip's frames must share one shape")
    if not out:
        raise ImageError(f"{path}: no frames")
    return out


def _sized(path: Path, frame: Image.Image | np.ndarray, size: int | None) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        return frame if size is None else resize_array(frame, _fit(frame.shape[:2], size))
    if frame.width * frame.height > limits.current().image_pixels:
        raise ImageError(f"{path}: " + limits.refusal(f"a {frame.width}x{frame.height} frame",
                                                       frame.width * frame.height, "image_pixels"))
    frame = frame.convert("RGB")
    if size is not None:
        frame = resize_longest_side(frame, size)
    return np.asarray(frame, np.float32) / 255.0


def _fit(shape: tuple[int, int], size: int) -> tuple[int, int]:
    scale = size / max(shape)
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _folder_frames(path: Path) -> Iterator[np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageError(f"{path}: no frames in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    return (load_image(f) for f in files)


def _gif_frames(path: Path) -> Iterator[Image.Image]:
    try:
        with Image.open(path) as gif:
            for frame in ImageSequence.Iterator(gif):
                yield frame.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read the GIF ({exc})") from None


def _mp4_frames(path: Path) -> Iterator[np.ndarray]:
    _need_ffmpeg(path)
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as exc:  # noqa: BLE001 - ffmpeg reports a broken file in many ways
        raise ImageError(f"{path}: cannot read the video ({type(exc).__name__}: {exc})"[:300]) from None
    with reader:
        for frame in reader:
            yield np.asarray(frame, np.float32)[..., :3] / 255.0


def _frame_rate(path: Path) -> float:
    """Frames per second the file asks for: a GIF's frame duration, an MP4's metadata."""
    if path.suffix.lower() == ".gif":
        with Image.open(path) as gif:
            duration = gif.info.get("duration") or 0
        return 1000.0 / duration if duration > 0 else DEFAULT_FPS
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as reader:
        return float(reader.get_meta_data().get("fps") or DEFAULT_FPS)


def with_inset(frame: np.ndarray, original: np.ndarray, share: float = INSET_SHARE) -> np.ndarray:
    """`frame` with `original` shrunk to `share` of its width in the bottom-right corner, framed in white."""
    h, w = frame.shape[:2]
    small = resize_array(original, (max(1, round(h * share)), max(1, round(w * share))))
    out = np.array(frame, np.float32, copy=True)
    sh, sw = small.shape[:2]
    out[h - sh - 1 :, w - sw - 1 :] = 1.0  # a one-pixel white frame around the inset
    out[h - sh :, w - sw :] = small
    return out


def write_clip(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write `frames` as a looping GIF or an H.264 MP4 (by the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return atomic_write(path, lambda tmp: _write_gif(frames, tmp, fps))
    check_clip_suffix(path)
    _need_ffmpeg(path)
    return atomic_write(path, lambda tmp: _write_mp4(frames, tmp, fps))


def _write_gif(frames: Sequence[np.ndarray], tmp: str, fps: float) -> None:
    images = [Image.fromarray(to_uint8(f)).quantize(colors=256, method=Image.Quantize.MEDIANCUT) for f in frames]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   optimize=True)


def _write_mp4(frames: Sequence[np.ndarray], tmp: str, fps: float) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8, pixelformat="yuv420p",
                            macro_block_size=1, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(_even(to_uint8(frame)))


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeat the last row/column where one is odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
