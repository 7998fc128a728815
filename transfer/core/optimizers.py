"""Optimisers over an `Objective`'s parameters: Adam (compiled step) and L-BFGS (scipy).

Why scipy for L-BFGS: `scipy.optimize.minimize(method="L-BFGS-B")` is the best-kept
implementation available to TF users; it handles the [0, 1] box constraint natively
(tfp's `lbfgs_minimize` has no bounds, and tfp's last release, 0.25, predates TF 2.21).
The value and gradient come from one compiled `tf.function`, so each evaluation costs
one forward and one backward pass, and float64 is used only on scipy's side.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from transfer.core.objective import Objective
from transfer.core.schedules import AdamSettings

#: `callback(step, losses, seconds, current_param)`; return True to stop early.
StepCallback = Callable[[int, dict, float, Callable[[], np.ndarray]], "bool | None"]


class NonFiniteLoss(Exception):
    def __init__(self, step: int, losses: dict, param: np.ndarray):
        super().__init__(f"non-finite loss at step {step}")
        self.step, self.losses, self.param = step, losses, param


@dataclasses.dataclass
class AdamState:
    """Everything needed to continue an Adam run exactly (saved by `--resume` checkpoints)."""

    param: np.ndarray
    m: np.ndarray
    v: np.ndarray
    t: float = 0.0
    #: The bias-corrected exponential moving average of the iterates, when the stage keeps one.
    average: np.ndarray | None = None

    @classmethod
    def start(cls, param: np.ndarray) -> AdamState:
        return cls(param.astype(np.float32), np.zeros_like(param, np.float32), np.zeros_like(param, np.float32))

    @property
    def result(self) -> np.ndarray:
        """What the stage hands on: the average of the iterates where one is kept, else the last iterate."""
        return self.param if self.average is None else self.average

    def resized(self, size: tuple[int, int]) -> AdamState:
        """This state on a `(height, width)` grid, for the next scale of a pyramid (crowsonkb's `scale_adam`).

        The first moment is resampled bicubically like the image; the second bilinearly and kept
        >= 0 (bicubic overshoot would make it negative).  The step count carries on, so the bias
        correction does not restart as if the moments were empty.  The next stage starts from the
        average, resized, and begins a new average.
        """
        import tensorflow as tf

        def resize(array: np.ndarray, method: str) -> np.ndarray:
            return tf.image.resize(array, size, method=method).numpy().astype(np.float32)

        return AdamState(resize(self.result, "bicubic"), resize(self.m, "bicubic"),
                         np.maximum(resize(self.v, "bilinear"), 0.0), self.t)


def _mean_losses(terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {k: tf.reduce_mean(v) for k, v in terms.items()}


def run_adam(objective: Objective, state: AdamState, steps: int, settings: AdamSettings, *,
             first_step: int = 1, callback: StepCallback | None = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[AdamState, int], None] | None = None,
             average_decay: float | None = None) -> tuple[AdamState, list[dict]]:
    """Adam on the parameters, clipped to the objective's range after each update.

    A step whose loss or gradient is non-finite changes nothing and raises
    `NonFiniteLoss` carrying the last good parameters.  `on_checkpoint(state, step)` is
    called every `checkpoint_every` steps with the full optimiser state.  With
    `average_decay`, an exponential moving average of the iterates (Polyak averaging, as
    crowsonkb's style_transfer keeps one) is the stage's image: the callback sees it and
    `AdamState.result` returns it.  Averaging removes the per-step jitter of Adam's noisy
    steps at no extra network evaluation.
    """
    param = tf.Variable(state.param)
    m, v, t = tf.Variable(state.m), tf.Variable(state.v), tf.Variable(state.t, dtype=tf.float32)
    average = _IterateAverage(param, average_decay) if average_decay else None
    lr, beta_1, beta_2, epsilon = settings.learning_rate, settings.beta_1, settings.beta_2, settings.epsilon
    lo = -np.inf if objective.lower is None else objective.lower
    hi = np.inf if objective.upper is None else objective.upper

    @tf.function(reduce_retracing=True)
    def step():
        with tf.GradientTape() as tape:
            terms = objective.terms(param)
            total = tf.reduce_sum(terms["total"])
        grad = tape.gradient(total, param)
        finite = tf.logical_and(tf.math.is_finite(total), tf.reduce_all(tf.math.is_finite(grad)))
        if finite:
            t.assign_add(1.0)
            m.assign(beta_1 * m + (1.0 - beta_1) * grad)
            v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(grad))
            m_hat = m / (1.0 - tf.pow(beta_1, t))
            v_hat = v / (1.0 - tf.pow(beta_2, t))
            param.assign(tf.clip_by_value(param - lr * m_hat / (tf.sqrt(v_hat) + epsilon), lo, hi))
        losses = _mean_losses(terms)
        losses["finite"] = tf.cast(finite, tf.float32)
        return losses

    def snapshot() -> AdamState:
        return AdamState(param.numpy(), m.numpy(), v.numpy(), float(t.numpy()),
                         None if average is None else average.value())

    history: list[dict] = []
    start = time.perf_counter()
    current = param.numpy if average is None else average.value
    for i in range(first_step, first_step + steps):
        losses = {k: float(x) for k, x in step().items()}
        if not losses.pop("finite") or not all(np.isfinite(x) for x in losses.values()):
            raise NonFiniteLoss(i, losses, param.numpy())
        if average is not None:
            average.update()
        history.append(losses)
        stop = callback is not None and callback(i, losses, time.perf_counter() - start, current)
        if on_checkpoint is not None and checkpoint_every and i % checkpoint_every == 0 and not stop:
            on_checkpoint(snapshot(), i)
        if stop:
            break
    return snapshot(), history


class _IterateAverage:
    """A bias-corrected exponential moving average of a variable's values (crowsonkb's `EMA`)."""

    def __init__(self, variable: tf.Variable, decay: float):
        self.variable, self.decay = variable, decay
        self.accumulated = tf.Variable(tf.zeros_like(variable))
        self.weight = 0.0  # 1 - decay ** updates: the bias correction

    def update(self) -> None:
        self.accumulated.assign(self.decay * self.accumulated + (1.0 - self.decay) * self.variable)
        self.weight = 1.0 - self.decay * (1.0 - self.weight)

    def value(self) -> np.ndarray:
        if self.weight == 0.0:
            return self.variable.numpy()
        return self.accumulated.numpy() / self.weight


def run_lbfgs(objective: Objective, param0: np.ndarray, steps: int, *, memory: int = 10, first_step: int = 1,
              max_evaluations: int | None = None,
              callback: StepCallback | None = None) -> tuple[np.ndarray, list[dict]]:
    """L-BFGS-B with box bounds; `steps` counts iterations (each needs >= 1 evaluation)."""
    from scipy.optimize import Bounds, minimize

    shape = param0.shape
    variable = tf.Variable(param0.astype(np.float32))

    @tf.function(reduce_retracing=True)
    def value_and_grad():
        with tf.GradientTape() as tape:
            terms = objective.terms(variable)
            total = tf.reduce_sum(terms["total"])
        return _mean_losses(terms), total, tape.gradient(total, variable)

    last: dict = {}

    def fun(x: np.ndarray):
        variable.assign(x.reshape(shape).astype(np.float32))
        losses, total, grad = value_and_grad()
        last.update({k: float(v) for k, v in losses.items()})
        last["_x"] = x
        if not np.isfinite(float(total)):
            raise NonFiniteLoss(first_step + len(history), dict(last), x.reshape(shape).astype(np.float32))
        return float(total), grad.numpy().astype(np.float64).ravel()

    history: list[dict] = []
    start = time.perf_counter()

    def on_iteration(xk: np.ndarray):
        losses = {k: v for k, v in last.items() if k != "_x"}
        history.append(losses)
        current = lambda: xk.reshape(shape).astype(np.float32)  # noqa: E731
        if callback is not None and callback(first_step + len(history) - 1, losses, time.perf_counter() - start, current):
            raise StopIteration

    bounds = Bounds(-np.inf if objective.lower is None else objective.lower,
                    np.inf if objective.upper is None else objective.upper)
    x0 = param0.astype(np.float64).ravel()
    try:
        result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=on_iteration,
                          options={"maxiter": steps, "maxcor": memory, "maxfun": max_evaluations or steps * 3, "ftol": 0.0,
                                   "gtol": 0.0})
        x = result.x
    except StopIteration:
        x = last["_x"]
    return x.reshape(shape).astype(np.float32), history
