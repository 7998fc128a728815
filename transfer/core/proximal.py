"""Forward-backward splitting for objectives with an exact L1 total variation.

The seed-000 (TF tutorial) loss is `f(x) + w * TV(x)` on pixels in a box, where `f` (style +
content through the network) is smooth and `TV` is `tf.image.total_variation`, the
anisotropic L1 sum of neighbour differences.  Adam and L-BFGS see the TV only through its
sign-valued subgradient (or a Charbonnier smoothing of it, `--schedule fast`), which makes
them zig-zag on the flat regions TV creates.  A proximal-gradient method keeps one network
gradient per iteration for `f` and solves the non-smooth part exactly on the pixels:

    x+ = prox_{tau g}(x - tau * grad f(x)),   g = w * TV + indicator of [lower, upper].

* `tv_prox` solves that prox by projected gradient on the dual (Chambolle, "An algorithm for
  total variation minimization and applications", 2004, in its anisotropic form), accelerated
  by FISTA on the dual (Beck & Teboulle, "Fast gradient-based algorithms for constrained total
  variation image denoising and deblurring problems", 2009), warm-started across calls.
* `run_proximal` is FASTA (Goldstein, Studer & Baraniuk, "A field guide to forward-backward
  splitting with a FASTA implementation", 2014): Barzilai-Borwein step sizes, a non-monotone
  backtracking line search against the largest of the last few values of `f`, and optional
  FISTA acceleration with adaptive restart (O'Donoghue & Candes, "Adaptive restart for
  accelerated gradient schemes", 2015).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from transfer.core.objective import Objective
from transfer.core.optimizers import NonFiniteLoss, StepCallback

#: Step of the dual projected gradient: 1 / ||D||^2, and ||D^T D|| <= 8 for 2-D forward differences.
DUAL_STEP = 1.0 / 8.0


# ---------------------------------------------------------------------------------------
# the proximal operator of the anisotropic L1 total variation (+ a box)
# ---------------------------------------------------------------------------------------

def _gradient(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """D x: the forward differences `tf.image.total_variation` sums, down and across."""
    return x[:, 1:] - x[:, :-1], x[:, :, 1:] - x[:, :, :-1]


def _adjoint(py: tf.Tensor, px: tf.Tensor) -> tf.Tensor:
    """D^T p, the adjoint of `_gradient` (a negative divergence), shaped like the image."""
    pad_y = [[0, 0], [1, 1], [0, 0], [0, 0]]
    pad_x = [[0, 0], [0, 0], [1, 1], [0, 0]]
    qy, qx = tf.pad(py, pad_y), tf.pad(px, pad_x)
    return (qy[:, :-1] - qy[:, 1:]) + (qx[:, :, :-1] - qx[:, :, 1:])


def total_variation(x: tf.Tensor) -> tf.Tensor:
    """Per image, the sum of |neighbour differences| over rows, columns and channels."""
    dy, dx = _gradient(x)
    return tf.reduce_sum(tf.abs(dy), axis=[1, 2, 3]) + tf.reduce_sum(tf.abs(dx), axis=[1, 2, 3])


def _dual_fista(z: tf.Tensor, weight: tf.Tensor, qy: tf.Tensor, qx: tf.Tensor,
                iterations: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """FISTA on the dual of min 1/2||x - z||^2 + weight * ||D x||_1, in normalised variables.

    With p = weight * q, |q| <= 1, the primal solution is x = z - weight D^T q, and the dual is
    min_q 1/2||z - weight D^T q||^2 over the box |q| <= 1: a smooth problem on a box, so its
    projected gradient is a clip (Chambolle 2004); momentum as in Beck & Teboulle 2009.  A
    `tf.while_loop`, so the graph stays small whatever the iteration count.
    """
    step = DUAL_STEP / weight

    def body(k, qy, qx, ry, rx, t):
        gy, gx = _gradient(z - weight * _adjoint(ry, rx))
        ny = tf.clip_by_value(ry + step * gy, -1.0, 1.0)
        nx = tf.clip_by_value(rx + step * gx, -1.0, 1.0)
        t_next = (1.0 + tf.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = (t - 1.0) / t_next
        return k + 1, ny, nx, ny + momentum * (ny - qy), nx + momentum * (nx - qx), t_next

    one = tf.ones([], z.dtype)
    _, qy, qx, _, _, _ = tf.while_loop(lambda k, *_: k < iterations, body, (tf.constant(0), qy, qx, qy, qx, one))
    return qy, qx


@tf.function(reduce_retracing=True)
def _tv_prox_graph(z, weight, qy, qx, lower, upper, iterations):
    qy, qx = _dual_fista(z, weight, qy, qx, iterations)
    x = tf.clip_by_value(z - weight * _adjoint(qy, qx), lower, upper)
    return x, qy, qx


def zero_dual(shape) -> tuple[tf.Tensor, tf.Tensor]:
    """The cold start of `tv_prox`'s dual for images of `shape` (B, H, W, C)."""
    b, h, w, c = shape
    return tf.zeros((b, h - 1, w, c)), tf.zeros((b, h, w - 1, c))


def tv_prox(z, weight: float, iterations: int, dual0: tuple[tf.Tensor, tf.Tensor] | None = None, *,
            lower: float | None = None, upper: float | None = None) -> tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
    """argmin_x 1/2||x - z||^2 + weight * TV(x) (+ the box [lower, upper]), and its dual.

    `TV` is `tf.image.total_variation` (per image; the images of a batch are independent).
    The dual is returned normalised, q = p / weight in [-1, 1] on the vertical and horizontal
    edges, so passing it back as `dual0` warm-starts the next call even when the weight (the
    step size times the TV weight) has changed: in forward-backward splitting consecutive
    prox inputs differ little, so a few warm iterations stay close to the exact prox.

    The box is applied by clipping after the TV prox, and that is *exact*, not an
    approximation: clipping is monotone, so it never reverses the order of two neighbours; the
    dual certificate q of the unclipped solution y therefore remains a subgradient of |D x| at
    x = clip(y), and z - x = weight D^T q + (y - x) with y - x in the box's normal cone at x
    (the same argument as Friedman et al. 2007 for the fused lasso; Yu, "On decomposing the
    proximal map", 2013).  `tests/test_proximal.py` checks it against a generic QP solver.

    The accuracy is that of `iterations` dual FISTA steps (dtype follows `z`); each costs two
    difference stencils on the image.  Measured at 512x512x3 on the shared 2-core dev machine:
    10 iterations take 26-84 ms in TensorFlow (a `tf.while_loop`) against 155-375 ms for the
    same loop in NumPy (ranges: machine load), far below a network evaluation (~1 s), so
    TensorFlow it is.
    """
    z = tf.convert_to_tensor(z)
    dtype = z.dtype
    qy, qx = zero_dual(z.shape) if dual0 is None else dual0
    lo = -np.inf if lower is None else lower
    hi = np.inf if upper is None else upper
    if weight <= 0:
        return tf.clip_by_value(z, tf.cast(lo, dtype), tf.cast(hi, dtype)), (tf.cast(qy, dtype), tf.cast(qx, dtype))
    x, qy, qx = _tv_prox_graph(z, tf.constant(weight, dtype), tf.cast(qy, dtype), tf.cast(qx, dtype),
                               tf.constant(lo, dtype), tf.constant(hi, dtype), tf.constant(int(iterations)))
    return x, (qy, qx)


# ---------------------------------------------------------------------------------------
# FASTA: forward-backward splitting with adaptive steps
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProximalSettings:
    """FASTA's knobs (its defaults where it has them).

    Attributes:
      dual_iterations: dual FISTA steps per TV prox (warm-started, so few are needed).
      window: the non-monotone line search accepts a step whose f is below the largest f of
        the last `window` iterates (FASTA's default 10).
      shrink: factor on the step size per backtrack (FASTA's `stepsizeShrink`).
      max_backtracks: give up shrinking after this many (then take the last trial).
      first_move: the first step size moves the largest-gradient pixel by this much; later
        ones are Barzilai-Borwein steps.
      accelerate: FISTA momentum with adaptive restart; an accelerated iteration evaluates the
        network twice (at the prox point for the line search, at the extrapolated point for
        the next gradient) unless it restarts.
    """

    dual_iterations: int = 10
    window: int = 10
    shrink: float = 0.2
    max_backtracks: int = 8
    first_move: float = 0.02
    accelerate: bool = False


class _SmoothPart:
    """One compiled loss+gradient of the objective's smooth part, and the exact loss terms.

    Each call costs one forward and one backward pass; `evaluations` counts them.
    """

    def __init__(self, objective: Objective):
        self.objective = objective
        self.evaluations = 0
        self._graph = tf.function(self._value_and_grad, reduce_retracing=True)

    def _value_and_grad(self, x: tf.Tensor):
        with tf.GradientTape() as tape:
            tape.watch(x)
            smooth = self.objective.smooth_terms(x)
            f = tf.reduce_sum(smooth["total"])
        tv = self.objective.l1_tv_weight * tf.cast(total_variation(x), tf.float32)
        losses = {k: tf.reduce_mean(v) for k, v in smooth.items() if k != "total"}
        losses["tv"] = tf.reduce_mean(tv)
        losses["total"] = tf.reduce_mean(smooth["total"] + tv)
        return f, tape.gradient(f, x), losses

    def __call__(self, x: tf.Tensor) -> tuple[float, tf.Tensor, dict[str, float]]:
        self.evaluations += 1
        f, grad, losses = self._graph(x)
        return float(f), grad, {k: float(v) for k, v in losses.items()}


def _dot(a: tf.Tensor, b: tf.Tensor) -> float:
    return float(tf.reduce_sum(a * b))


def barzilai_borwein(dx: tf.Tensor, dg: tf.Tensor, previous: float) -> float:
    """FASTA's adaptive BB step: the minimum-residual step when it is at least half the
    steepest-descent one, else their difference; 1.5x the previous step when the pair has
    no positive curvature (f is not convex, so that happens)."""
    dxdg = _dot(dx, dg)
    if not dxdg > 0:
        return 1.5 * previous
    steepest = _dot(dx, dx) / dxdg
    residual = dxdg / max(_dot(dg, dg), 1e-30)
    tau = residual if 2.0 * residual > steepest else steepest - 0.5 * residual
    return tau if math.isfinite(tau) and tau > 0 else 1.5 * previous


class _Prox:
    """prox of tau * (w TV + box), warm-starting the dual from the previous call."""

    def __init__(self, objective: Objective, iterations: int):
        self.weight = float(objective.l1_tv_weight)
        self.iterations = iterations
        self.lower, self.upper = objective.lower, objective.upper
        self.dual: tuple[tf.Tensor, tf.Tensor] | None = None

    def __call__(self, z: tf.Tensor, tau: float) -> tf.Tensor:
        x, self.dual = tv_prox(z, tau * self.weight, self.iterations, self.dual, lower=self.lower, upper=self.upper)
        return x


@dataclasses.dataclass
class _Point:
    """An iterate with what was evaluated there."""

    x: tf.Tensor
    f: float
    grad: tf.Tensor
    losses: dict[str, float]


def _line_search(smooth: _SmoothPart, prox: _Prox, at: _Point, tau: float, reference: float,
                 settings: ProximalSettings) -> tuple[_Point, float]:
    """One forward-backward step from `at`, backtracking until FASTA's non-monotone condition

        f(x+) <= reference + <x+ - x, grad f(x)> + ||x+ - x||^2 / (2 tau)

    holds (`reference`: the largest recent f).  Returns the new point and the step used.
    """
    for attempt in range(settings.max_backtracks + 1):
        x_new = prox(at.x - tau * at.grad, tau)
        f_new, grad_new, losses = smooth(x_new)
        if not math.isfinite(f_new) and attempt < settings.max_backtracks:
            tau *= settings.shrink
            continue
        move = x_new - at.x
        bound = reference + _dot(move, at.grad) + _dot(move, move) / (2.0 * tau)
        if f_new - bound <= 1e-12 * abs(f_new) or attempt == settings.max_backtracks:
            return _Point(x_new, f_new, grad_new, losses), tau
        tau *= settings.shrink
    raise AssertionError("unreachable")


def _first_step(grad: tf.Tensor, move: float) -> float:
    largest = float(tf.reduce_max(tf.abs(grad)))
    return move / largest if largest > 0 else 1.0


def run_proximal(objective: Objective, param0: np.ndarray, steps: int, *, first_step: int = 1,
                 callback: StepCallback | None = None,
                 settings: ProximalSettings | None = None) -> tuple[np.ndarray, list[dict]]:
    """FASTA on `objective`: f = `smooth_terms()["total"]`, g = `l1_tv_weight` x exact L1 TV + box.

    Same contract as `run_lbfgs`: `steps` iterations, `callback(step, losses, seconds,
    current_param)` after each (True stops), `NonFiniteLoss` with the last good parameters
    when the loss stops being finite, returns `(param, history)`.  `losses` holds the
    objective's terms at the new iterate with `"total"` the exact objective (smooth part plus
    the exact L1 TV, so comparable with `terms()["total"]` at tv_eps None), `"evaluations"`
    the loss+gradient evaluations this iteration spent (backtracking and, when accelerated,
    the extrapolated point cost extra ones), and `"step_size"`.
    """
    settings = settings or ProximalSettings()
    if objective.l1_tv_weight is None:
        raise ValueError(f"{type(objective).__name__} has no exact L1 total variation for a proximal solver")
    smooth = _SmoothPart(objective)
    prox = _Prox(objective, settings.dual_iterations)
    start = time.perf_counter()
    lo = -np.inf if objective.lower is None else objective.lower
    hi = np.inf if objective.upper is None else objective.upper
    x0 = tf.constant(np.clip(np.asarray(param0, np.float32), lo, hi))
    point = _Point(x0, *smooth(x0))
    if not math.isfinite(point.f):
        raise NonFiniteLoss(first_step, point.losses, x0.numpy())
    tau = _first_step(point.grad, settings.first_move)
    recent = collections.deque([point.f], maxlen=settings.window)
    extrapolated, momentum = point, 1.0  # FISTA's y and its t, when accelerating
    history: list[dict] = []
    for i in range(first_step, first_step + steps):
        used = smooth.evaluations
        base = extrapolated if settings.accelerate else point
        new, tau_used = _line_search(smooth, prox, base, tau, max(recent), settings)
        if not all(math.isfinite(v) for v in new.losses.values()):
            raise NonFiniteLoss(i, new.losses, point.x.numpy())
        if settings.accelerate:
            extrapolated, momentum = _extrapolate(smooth, point, new, base, momentum)
            tau = barzilai_borwein(extrapolated.x - base.x, extrapolated.grad - base.grad, tau_used)
        else:
            tau = barzilai_borwein(new.x - point.x, new.grad - point.grad, tau_used)
        point = new
        recent.append(point.f)
        losses = {**point.losses, "evaluations": float(smooth.evaluations - used), "step_size": tau_used}
        history.append(losses)
        if callback is not None and callback(i, losses, time.perf_counter() - start, point.x.numpy):
            break
    return point.x.numpy(), history


def _extrapolate(smooth: _SmoothPart, old: _Point, new: _Point, base: _Point, t: float) -> tuple[_Point, float]:
    """FISTA's next search point y = x+ + (t - 1)/t+ (x+ - x), restarted (y = x+, t = 1) when
    the step went against the momentum, <base - x+, x+ - x> > 0 (O'Donoghue & Candes' gradient
    restart scheme); y is evaluated once (a network gradient) unless it equals x+."""
    if _dot(base.x - new.x, new.x - old.x) > 0:
        return new, 1.0
    t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
    y = new.x + ((t - 1.0) / t_next) * (new.x - old.x)
    if t == 1.0:
        return new, t_next
    return _Point(y, *smooth(y)), t_next
