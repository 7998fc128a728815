"""Sliced Wasserstein distance between two point clouds of different sizes (numpy only).

Why this and not only Gram matrices: a Gram matrix keeps second moments, so two feature
distributions with the same correlations but different shapes (e.g. sparse strokes vs a
uniform haze of the same energy) look alike to it.  Heitz et al., "A Sliced Wasserstein
Loss for Neural Texture Synthesis" (CVPR 2021), compare the whole distributions instead:
project both clouds on random unit directions, where 1-D optimal transport is "sort and
match quantiles", and average the squared quantile differences.

Clouds with different point counts (an output and a style of different sizes) are compared
through their empirical quantile functions, which are step functions: both are evaluated on
the union of their steps (at most N_a + N_b intervals), so the 1-D distance is exact, and an
image tiled k times is at distance 0 from itself.

The directions are fixed by a seed (a local `numpy.random.Generator`, never the global RNG),
so a number computed today is the number computed next release.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def directions(dim: int, count: int, seed: int) -> np.ndarray:
    """`(dim, count)` isotropic unit vectors fixed by `(seed, dim)`; read-only (it is cached)."""
    rng = np.random.default_rng([seed, dim])
    vectors = rng.normal(size=(dim, count))
    vectors /= np.linalg.norm(vectors, axis=0, keepdims=True)
    vectors.setflags(write=False)
    return vectors


def wasserstein_1d(sorted_a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance per column of `(N_a, K)` and `(N_b, K)` sorted samples.

    The integral over u in [0, 1] of (Q_a(u) - Q_b(u))^2, where Q is the empirical quantile
    function: constant on [i/N, (i+1)/N).  Steps are counted in units of 1/(N_a N_b) so the
    union of both step grids is exact integer arithmetic.
    """
    na, nb = sorted_a.shape[0], sorted_b.shape[0]
    bounds = np.union1d(np.arange(na + 1, dtype=np.int64) * nb, np.arange(nb + 1, dtype=np.int64) * na)
    left = bounds[:-1]
    widths = np.diff(bounds) / (na * nb)
    return widths @ np.square(sorted_a[left // nb] - sorted_b[left // na])


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: np.ndarray) -> float:
    """Mean over directions of the squared 1-D Wasserstein distance of projected `(N, D)` clouds.

    `projections` is `(D, K)`, e.g. `directions(D, K, seed)`.  Zero for identical clouds; for
    `b = a + d` (a translation) exactly the mean of `(v . d)^2` over the directions v.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] != projections.shape[0]:
        raise ValueError(f"point clouds {a.shape} and {b.shape} do not match projections {projections.shape}")
    if min(a.shape[0], b.shape[0]) == 0:
        raise ValueError("cannot compare an empty point cloud")
    return float(np.mean(wasserstein_1d(np.sort(a @ projections, axis=0), np.sort(b @ projections, axis=0))))
