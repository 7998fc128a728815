"""Optical flow between two frames, warping by it, and where the warp can be trusted.

Convention (skimage's): `flow = optical_flow(a, b)` has shape `(H, W, 2)`, `(rows, columns)`
displacements, with `a(p) ~ b(p + flow(p))`; so `warp(b, flow)` brings `b` into `a`'s frame.
For video, `a` is frame t and `b` frame t-1: the previous output warped by that flow lines up
with frame t.

No download: TV-L1 from scikit-image (always installed), or OpenCV's classical Farneback and
DIS flows when `opencv-python-headless` is installed.  `python -m bench.flicker` measures
their speed and their error against a pan of known displacement; `DEFAULT_METHOD` is the
pick, with TV-L1 the fallback when OpenCV is missing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

import numpy as np

from transfer.errors import UsageError

#: Ruder et al. 2016, eq. 9-10: a round trip off by more than this is a disocclusion ...
CONSISTENCY_SHARE, CONSISTENCY_PIXELS = 0.01, 0.5
#: ... and a flow gradient above this marks a motion boundary.
BOUNDARY_SHARE, BOUNDARY_FLOOR = 0.01, 0.002


def _grey(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _tvl1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.registration import optical_flow_tvl1

    return np.moveaxis(optical_flow_tvl1(_grey(a), _grey(b)), 0, -1).astype(np.float32)


def _grey_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(_grey(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    flow = cv2.calcOpticalFlowFarneback(_grey_uint8(a), _grey_uint8(b), None, pyr_scale=0.5, levels=4, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    return np.ascontiguousarray(flow[..., ::-1], np.float32)  # OpenCV gives (x, y)


def _dis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_grey_uint8(a), _grey_uint8(b), None)
    return np.ascontiguousarray(flow[..., ::-1], np.float32)


@dataclasses.dataclass(frozen=True)
class FlowMethod:
    """An optical-flow estimator and the module it needs (None: always there)."""

    compute: Callable[[np.ndarray, np.ndarray], np.ndarray]
    module: str | None
    description: str

    def available(self) -> bool:
        return self.module is None or importlib.util.find_spec(self.module) is not None


FLOW_METHODS: dict[str, FlowMethod] = {
    "tvl1": FlowMethod(_tvl1, None, "scikit-image's TV-L1 (always installed)"),
    "farneback": FlowMethod(_farneback, "cv2", "OpenCV's Farneback polynomial expansion"),
    "dis": FlowMethod(_dis, "cv2", "OpenCV's dense inverse search (DIS, medium preset)"),
}
#: Chosen by `python -m bench.flicker` (bench/results/flicker.json: speed and error on a known pan).
PREFERRED_METHOD = "dis"
FALLBACK_METHOD = "tvl1"


def default_method() -> str:
    """The measured pick when OpenCV is installed, TV-L1 otherwise."""
    return PREFERRED_METHOD if FLOW_METHODS[PREFERRED_METHOD].available() else FALLBACK_METHOD


def optical_flow(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """`(H, W, 2)` flow with `a(p) ~ b(p + flow(p))`; frames are float RGB in [0, 1] of one size."""
    if method not in FLOW_METHODS:
        raise UsageError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    if not FLOW_METHODS[method].available():
        raise UsageError(f"--flow {method} needs {FLOW_METHODS[method].module} "
                         "(pip install opencv-python-headless); --flow tvl1 needs nothing more")
    if a.shape != b.shape:
        raise UsageError(f"frames of different sizes ({a.shape[:2]} and {b.shape[:2]}) have no flow between them")
    return FLOW_METHODS[method].compute(a, b)


def _coordinates(flow: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(flow.shape[:2], dtype=np.float32)
    return np.stack([rows + flow[..., 0], cols + flow[..., 1]])


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at `p + flow(p)` (bilinear; outside the frame: the nearest edge pixel).

    Works on `(H, W)` and `(H, W, C)` arrays; an integer flow copies pixels exactly.
    """
    from scipy import ndimage

    coords = _coordinates(flow)
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        return ndimage.map_coordinates(image, coords, order=1, mode="nearest")
    return np.stack([ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
                     for c in range(image.shape[-1])], axis=-1)


def inside(flow: np.ndarray) -> np.ndarray:
    """Where `p + flow(p)` lands inside the other frame: outside is content that was not there."""
    rows, cols = _coordinates(flow)
    h, w = flow.shape[:2]
    return (rows >= 0) & (rows <= h - 1) & (cols >= 0) & (cols <= w - 1)


def consistent(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Where the round trip a -> b -> a returns home and no motion boundary passes (Ruder et al.).

    `flow = optical_flow(a, b)`, `back = optical_flow(b, a)`.  Disoccluded where
    `|w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5` with `w~ = back` sampled at `p + w(p)`; a motion
    boundary where `|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002`.
    """
    returned = warp(back, flow)
    trip = np.sum((flow + returned) ** 2, axis=-1)
    occluded = trip > CONSISTENCY_SHARE * (np.sum(flow**2, axis=-1) + np.sum(returned**2, axis=-1)) + CONSISTENCY_PIXELS
    gradient = sum(np.square(g) for c in range(2) for g in np.gradient(flow[..., c]))
    boundary = gradient > BOUNDARY_SHARE * np.sum(flow**2, axis=-1) + BOUNDARY_FLOOR
    return ~occluded & ~boundary


@dataclasses.dataclass(frozen=True)
class Motion:
    """Frame t against frame t-1: `flow` (t -> t-1) and where it is trusted, `mask` in {0, 1} `(H, W)`."""

    flow: np.ndarray
    mask: np.ndarray


def motion(current: np.ndarray, previous: np.ndarray, method: str) -> Motion:
    """The flow from `current` back to `previous` and its trusted pixels (in frame, consistent)."""
    flow = optical_flow(current, previous, method)
    back = optical_flow(previous, current, method)
    mask = inside(flow) & consistent(flow, back)
    return Motion(flow, mask.astype(np.float32))
