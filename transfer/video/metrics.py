"""Flicker, measured: the warping error between consecutive frames (Lai et al. 2018, Ruder et al. 2016).

For frames t >= 1: the mean squared difference (over trusted pixels and the three channels,
[0, 1] pixel units) between frame t and frame t-1 warped to it by the input clip's flow.  The
same number on the input frames is the floor the flow itself leaves (lighting changes,
resampling, flow error); a stylised clip that flickers sits far above it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transfer.video.flow import Motion, warp


def warping_error(current: np.ndarray, previous: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Mean over `mask`ed pixels (and channels) of `(current - warp(previous, flow))^2`; NaN with no pixel."""
    weights = np.asarray(mask, np.float64)
    if weights.sum() <= 0:
        return float("nan")
    squared = np.mean((np.asarray(current, np.float64) - warp(previous, flow)) ** 2, axis=-1)
    return float(np.sum(squared * weights) / weights.sum())


def clip_warping_errors(frames: Sequence[np.ndarray], motions: Sequence[Motion | None]) -> list[float]:
    """`warping_error` of frames 1..N-1, each against its predecessor; `motions[t]` is frame t's (t >= 1)."""
    return [warping_error(frames[t], frames[t - 1], motions[t].flow, motions[t].mask) for t in range(1, len(frames))]


def summary(output: Sequence[np.ndarray], inputs: Sequence[np.ndarray], motions: Sequence[Motion | None]) -> dict:
    """The flicker record of a run: per-frame and mean warping error of the output and of the input."""
    out, into = clip_warping_errors(output, motions), clip_warping_errors(inputs, motions)
    return {"output_per_frame": out, "output_mean": _mean(out), "input_per_frame": into, "input_mean": _mean(into)}


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None
