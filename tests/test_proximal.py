"""The exact-TV proximal solver (transfer.core.proximal) against independent oracles.

The TV prox and the forward-backward solver are checked against a generic constrained
solver (scipy SLSQP on the split-variable QP: min 1/2 x'Hx - c'x + w sum(t), -t <= Dx <= t,
box on x), which knows nothing of duals or stencils; a two-pixel case is checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest


def _difference_matrix(shape: tuple[int, int, int, int]) -> np.ndarray:
    """D as a dense matrix over the flattened (B, H, W, C) image: the differences
    `tf.image.total_variation` sums, written out pair by pair."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    rows = []
    for a, b in ((index[:, 1:], index[:, :-1]), (index[:, :, 1:], index[:, :, :-1])):
        for i, j in zip(a.ravel(), b.ravel()):
            row = np.zeros(index.size)
            row[i], row[j] = 1.0, -1.0
            rows.append(row)
    return np.array(rows)


def _qp_oracle(curvature: np.ndarray, centre: np.ndarray, weight: float, shape, lower=None, upper=None) -> np.ndarray:
    """argmin 1/2 sum curvature (x - centre)^2 + weight ||D x||_1 over the box, by SLSQP with t >= |Dx|."""
    from scipy.optimize import Bounds, LinearConstraint, minimize

    d = _difference_matrix(shape)
    n, m = d.shape[1], d.shape[0]
    h, c = curvature.ravel(), centre.ravel()

    def fun(v):
        x, t = v[:n], v[n:]
        return 0.5 * np.sum(h * (x - c) ** 2) + weight * np.sum(t), np.concatenate([h * (x - c), np.full(m, weight)])

    eye = np.eye(m)
    constraints = [LinearConstraint(np.hstack([d, eye]), 0, np.inf), LinearConstraint(np.hstack([-d, eye]), 0, np.inf)]
    lo = np.concatenate([np.full(n, -np.inf if lower is None else lower), np.zeros(m)])
    hi = np.full(n + m, np.inf)
    if upper is not None:
        hi[:n] = upper
    v0 = np.concatenate([np.clip(c, lo[:n], hi[:n]), np.abs(d @ c) + 1e-3])
    result = minimize(fun, v0, jac=True, method="SLSQP", bounds=Bounds(lo, hi), constraints=constraints,
                      options={"ftol": 1e-14, "maxiter": 2000})
    assert result.success, result.message
    return result.x[:n].reshape(shape)


@pytest.mark.parametrize("shape, weight, box", [
    ((1, 4, 4, 1), 0.15, None),
    ((1, 4, 4, 1), 0.15, (0.0, 1.0)),
    ((1, 3, 5, 3), 0.08, None),
    ((1, 3, 5, 3), 0.08, (0.2, 0.8)),
])
def test_tv_prox_matches_a_generic_qp_solver(shape, weight, box):
    from transfer.core.proximal import tv_prox

    rng = np.random.default_rng(1)
    z = rng.uniform(-0.2, 1.2, shape)
    lower, upper = box or (None, None)
    expected = _qp_oracle(np.ones(shape), z, weight, shape, lower, upper)
    x, _ = tv_prox(z, weight, 3000, lower=lower, upper=upper)
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-4)


def test_tv_prox_of_two_pixels_moves_each_toward_the_mean_or_merges():
    """prox of w|x2 - x1| at (a, b): each moves w toward the other, or both land on the mean."""
    from transfer.core.proximal import tv_prox

    for a, b, w in ((0.1, 0.9, 0.2), (0.9, 0.1, 0.1), (0.4, 0.6, 0.3)):
        if abs(b - a) > 2 * w:
            s = np.sign(b - a)
            expected = [a + w * s, b - w * s]
        else:
            expected = [(a + b) / 2] * 2
        across, _ = tv_prox(np.array([[[[a], [b]]]]), w, 500)  # (1, 1, 2, 1): one horizontal pair
        down, _ = tv_prox(np.array([[[[a]], [[b]]]]), w, 500)  # (1, 2, 1, 1): one vertical pair
        np.testing.assert_allclose(across.numpy().ravel(), expected, atol=1e-9)
        np.testing.assert_allclose(down.numpy().ravel(), expected, atol=1e-9)


def test_tv_prox_warm_start_returns_a_reusable_dual():
    from transfer.core.proximal import tv_prox

    z = np.random.default_rng(2).random((1, 6, 6, 3))
    exact, _ = tv_prox(z, 0.1, 3000)
    _, dual = tv_prox(z, 0.1, 200)
    warm, _ = tv_prox(z, 0.1, 5, dual)
    cold, _ = tv_prox(z, 0.1, 5)
    assert np.abs(warm.numpy() - exact.numpy()).max() < np.abs(cold.numpy() - exact.numpy()).max()


class _Quadratic:
    """A stand-in objective: f(x) = 1/2 sum h (x - c)^2 plus an exact weighted L1 TV, on [0, 1]."""

    lower, upper = 0.0, 1.0
    has_l1_tv = True
    l1_tv_weight = 0.05

    def __init__(self, curvature: np.ndarray, centre: np.ndarray):
        import tensorflow as tf

        self.h, self.c = tf.constant(curvature, tf.float32), tf.constant(centre, tf.float32)

    def smooth_terms(self, param):
        import tensorflow as tf

        quad = 0.5 * tf.reduce_sum(self.h * tf.square(param - self.c), axis=[1, 2, 3])
        return {"quadratic": quad, "total": quad}

    def terms(self, param):
        import tensorflow as tf

        terms = self.smooth_terms(param)
        terms["tv"] = self.l1_tv_weight * tf.image.total_variation(param)
        terms["total"] = terms["quadratic"] + terms["tv"]
        return terms


@pytest.mark.parametrize("accelerate", [False, True])
def test_run_proximal_finds_the_minimiser_of_a_convex_problem(accelerate):
    from transfer.core.proximal import ProximalSettings, run_proximal

    shape = (1, 4, 5, 2)
    rng = np.random.default_rng(3)
    curvature, centre = rng.uniform(0.5, 4.0, shape), rng.uniform(-0.3, 1.3, shape)
    expected = _qp_oracle(curvature, centre, _Quadratic.l1_tv_weight, shape, 0.0, 1.0)
    settings = ProximalSettings(dual_iterations=50, accelerate=accelerate)
    x, history = run_proximal(_Quadratic(curvature, centre), np.full(shape, 0.5, np.float32), 300, settings=settings)
    np.testing.assert_allclose(x, expected, atol=2e-3)
    assert all(h["evaluations"] >= 1 for h in history)


def test_run_proximal_lowers_the_tutorial_loss_and_reports_each_iteration(random_backbone, small_pair):
    import tensorflow as tf

    from transfer.core.features import LAYER_PRESETS
    from transfer.core.proximal import run_proximal
    from transfer.seeds.recipes import TutorialObjective

    content, style = small_pair
    objective = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)])
    start = np.clip(content[None] + np.random.default_rng(4).normal(0, 0.1, content[None].shape), 0, 1).astype(np.float32)
    seen = []

    def callback(step, losses, seconds, current):
        seen.append((step, losses["total"], losses["evaluations"], current().shape))

    param, history = run_proximal(objective, start, 12, first_step=5, callback=callback)
    assert [s[0] for s in seen] == list(range(5, 17)) and len(history) == 12
    assert all(s[3] == start.shape for s in seen) and all(s[2] >= 1 for s in seen)
    exact = float(objective.terms(tf.constant(param))["total"][0])
    initial = float(objective.terms(tf.constant(start))["total"][0])
    np.testing.assert_allclose(history[-1]["total"], exact, rtol=1e-4)  # the reported total is the exact loss
    totals = [h["total"] for h in history]
    assert exact < 0.7 * initial and np.mean(totals[6:]) < np.mean(totals[:6])
    assert param.min() >= 0.0 and param.max() <= 1.0


def test_run_proximal_stops_when_the_callback_says_so(random_backbone, small_pair):
    from transfer.core.features import LAYER_PRESETS
    from transfer.core.proximal import run_proximal
    from transfer.seeds.recipes import TutorialObjective

    content, style = small_pair
    objective = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)])
    _, history = run_proximal(objective, content[None], 10, callback=lambda step, *_: step == 3)
    assert len(history) == 3


def test_smooth_terms_plus_the_weighted_tv_is_the_total(random_backbone, small_pair):
    import tensorflow as tf

    from transfer.core.features import LAYER_PRESETS
    from transfer.seeds.recipes import TutorialObjective

    content, style = small_pair
    objective = TutorialObjective(random_backbone, LAYER_PRESETS["gatys"], content[None], [(style, 1.0)])
    image = tf.constant(np.clip(content[None] + 0.05, 0, 1))
    smooth, full = objective.smooth_terms(image), objective.terms(image)
    tv = objective.l1_tv_weight * tf.image.total_variation(image)
    np.testing.assert_allclose((smooth["total"] + tv).numpy(), full["total"].numpy(), rtol=1e-6)
