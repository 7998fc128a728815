"""The one image pair every method runs on, at any square size.

Content: matplotlib's bundled `grace_hopper.jpg` (always present), centre-cropped to a square.
Style: `starry_night.jpg` from `SHARED_IMAGES` (`../shared/images`).  Without it a bench stops
with one message naming the missing file (`MissingImage`): a substitute style would make
numbers that look comparable with the recorded ones and are not.
Both are resized to the same square: the article's style loss compares raw feature maps,
so its style and content must share a shape, and the same pixels keep the timings comparable.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transfer.io.images import load_image, resize_array
from transfer.io.samples import grace_hopper_path

#: The project's shared images (read at call time, so tests can point it elsewhere).
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
#: The bench's style, a file in SHARED_IMAGES.
STYLE = "starry_night.jpg"


class MissingImage(FileNotFoundError):
    """A bench image is absent.  Raised instead of substituting another image, so a run on a
    machine without `../shared/images` fails loudly rather than recording incomparable numbers."""

    def __init__(self, path: Path):
        super().__init__(f"missing bench image {path}: the benchmarks read their images from "
                         f"../shared/images (bench/images.py) and never substitute another one")
        self.path = Path(path)


def require_file(path: Path | str) -> Path:
    """`path` as a Path when it is a file; otherwise `MissingImage` naming it."""
    path = Path(path)
    if not path.is_file():
        raise MissingImage(path)
    return path


def shared_image(name: str) -> Path:
    """The shared image `name`, checked to exist (`MissingImage` otherwise)."""
    return require_file(SHARED_IMAGES / name)


def stops_on_missing_image(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a bench's `main` so a missing image ends it with one line on stderr and exit code 2,
    not a traceback half-way through a long run."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except MissingImage as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapper


def _centre_square(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def _sources() -> tuple[np.ndarray, np.ndarray, dict]:
    """The pair at full size; raises `MissingImage` when the style file is absent."""
    return _read_sources(shared_image(STYLE))


@functools.lru_cache(maxsize=1)
def _read_sources(style_path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cached by the style's path, so pointing SHARED_IMAGES elsewhere is never served stale images."""
    content = _centre_square(load_image(grace_hopper_path()))
    style = _centre_square(load_image(style_path))
    return content, style, {"content": "grace_hopper.jpg (matplotlib), centre square", "style": style_path.name}


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """`(content, style)`, both float RGB in [0, 1], shape `(size, size, 3)`."""
    content, style, _ = _sources()
    return resize_array(content, (size, size)), resize_array(style, (size, size))


def describe() -> dict:
    """What the pair is, as the results record it (a recorded curve is reused only for the same pair)."""
    return dict(_sources()[2])


def content_batch(size: int, batch: int) -> np.ndarray:
    """`batch` different contents of one size (flips and rotations of the photo), for grid runs."""
    content, _ = pair(size)
    variants = [content, content[:, ::-1], content[::-1], content[::-1, ::-1]]
    return np.stack([np.ascontiguousarray(variants[i % len(variants)]) for i in range(batch)])


#: The pairs a speed comparison is judged on (issue 21: one pair is not enough): `content:style`,
#: each a file in SHARED_IMAGES except `grace_hopper`, matplotlib's bundled photo.
SPEED_PAIRS = ("grace_hopper:starry_night", "tubingen:the_scream", "golden_gate:composition_vii")


def _named_image(name: str) -> np.ndarray:
    path = grace_hopper_path() if name == "grace_hopper" else shared_image(f"{name}.jpg")
    return _centre_square(load_image(path))


def named_pair(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`(content, style)` for `"content:style"`, centre squares resized once to `(size, size)`.

    Every method of a comparison must get these very arrays: the same painting resized by
    Lanczos and by bicubic resampling moves its Gram target enough to change the style loss
    ~3× (shared/docs/performance-facts.md).  The arrays are 8-bit levels (resize_array rounds
    through uint8), so a later resize to the same size returns them unchanged.
    """
    content_name, _, style_name = name.partition(":")
    if not style_name:
        raise ValueError(f"a pair is 'content:style', got {name!r}")
    return (resize_array(_named_image(content_name), (size, size)),
            resize_array(_named_image(style_name), (size, size)))
