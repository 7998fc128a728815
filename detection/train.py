"""Train an SSD300 as ssd.pytorch's `train.py` does, resumably, writing ssd.pytorch `.pth` files.

Optimiser: SGD with momentum 0.9 and weight decay 5e-4 *in PyTorch's formulation* (what
`optim.SGD(net.parameters(), lr, momentum, weight_decay)` computes), not Keras's:

    d = grad + weight_decay * w;   buf = momentum * buf + d;   w -= lr * buf

Keras's SGD folds the learning rate into the velocity, which differs from PyTorch as soon as
the rate changes (warm-up, decay).  The decay is applied to every trained variable (kernels,
biases and the L2Norm scale), as `net.parameters()` does in ssd.pytorch; frozen layers get
neither gradient nor decay.

Schedule: base rate 1e-3, divided by 10 at 80k and 100k steps (`voc['lr_steps']`), after a
linear warm-up over the first 500 steps (ssd.pytorch has none: `warmup_steps=0` gives its
schedule exactly; see :func:`learning_rate`).

Batches come already matched: `(images (B, S, S, 3) float32 preprocessed, loc_t (B, P, 4),
conf_t (B, P))`, e.g. from `detection.data`.  Checkpoints (every `checkpoint_every` steps, at
the end, and at the step boundary after Ctrl-C/SIGTERM) go to RUN_DIR:

* `ssd300_step<N>.pth`: the weights as ssd.pytorch's state dict (loads in torch as is);
* `momentum_step<N>.npz`: the SGD momentum buffers (by variable path) and the loss history;
* `train_state.json`: the step reached, the config and the two file names, written last, so a
  crash mid-checkpoint leaves the previous checkpoint whole; `loss.png`: the loss curves.

Resuming loads all three and continues with the next step; fed the same batches from there,
it ends on the weights of an uninterrupted run: a step depends on weights, momentum, batch and
rate only, and each is restored bit for bit.  (Not bit-identical all the same: TensorFlow's
multi-threaded CPU reductions sum in a varying order, so two uninterrupted runs differ by ~1e-9.)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from detection.export import load_ssd300_pth, save_ssd300_pth
from models.multibox_loss import multibox_loss
from transfer.backbones.convert import ssd_pytorch_keys
from transfer.backbones.copy import copy_backbone
from transfer.core.spec import PRECISIONS
from transfer.errors import DetstyleError, DivergenceError, UsageError
from transfer.io.images import atomic_write
from transfer.io.run_state import Interrupted, stop_on_signals

STATE_FILE = "train_state.json"
LOSS_FIGURE = "loss.png"
#: Config fields a resumed run may change (how long to train, how often to save).
RESUMABLE_CHANGES = ("steps", "checkpoint_every")
_HISTORY_COLUMNS = ("step", "loss", "loc_loss", "conf_loss", "lr")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """ssd.pytorch's VOC training recipe (`train.py`, `data/config.py`) unless stated.

    Attributes:
      steps: iterations in all (`max_iter`).
      lr, momentum, weight_decay, gamma, lr_steps: SGD and its step decay (rate times `gamma`
        at each of `lr_steps`, counted from step 0 as ssd.pytorch's `iteration`).
      warmup_steps: linear warm-up from `lr / warmup_steps` to `lr` over the first steps
        (not in ssd.pytorch; 0 turns it off).
      negpos_ratio: hard negatives per positive in the MultiBox loss.
      precision: "fp32" or "bf16" (Keras `mixed_bfloat16` on a copy of the model: variables
        and the loss stay float32, convolutions run in bfloat16).
      freeze_until: train nothing up to and including this layer, in ssd.pytorch's order
        (`block1_conv1` ... `block5_conv3`, `conv6`, `conv7`, `l2norm`, `extras_*`, heads).
      checkpoint_every: steps between checkpoints (0: only at the end and on a signal).
    """

    steps: int = 120_000
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    gamma: float = 0.1
    lr_steps: tuple[int, ...] = (80_000, 100_000, 120_000)
    warmup_steps: int = 500
    negpos_ratio: float = 3.0
    precision: str = "fp32"
    freeze_until: str | None = None
    checkpoint_every: int = 5_000

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.steps < 1 or self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise UsageError("steps must be positive; warm-up steps and checkpoint interval non-negative")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What the per-step callback sees (a progress bar's line)."""

    step: int  # steps done, from 1
    steps: int
    loss: float
    loc_loss: float
    conf_loss: float
    lr: float  # the rate this step used
    seconds: float  # since this call of `train` began


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Where a finished run ended; `model` (passed to `train`) holds the weights."""

    step: int  # steps done in all (a resumed run counts the earlier ones)
    checkpoint: Path  # the `.pth` written last
    history: list[dict[str, float]]  # one row per step: step, loss, loc_loss, conf_loss, lr
    seconds: float


def learning_rate(config: TrainConfig, step: int) -> float:
    """The rate of 0-based step `step`: `lr * gamma**(milestones passed)`, times the warm-up ramp.

    ssd.pytorch decays *before* the step whose index is a milestone (`if iteration in
    lr_steps`); the warm-up factor is `(step + 1) / warmup_steps`, so the last warm-up step
    already uses the full rate.
    """
    rate = config.lr * config.gamma ** sum(step >= milestone for milestone in config.lr_steps)
    if step < config.warmup_steps:
        rate *= (step + 1) / config.warmup_steps
    return rate


# --------------------------------------------------------------------------------------
# Which model trains, and which of its variables
# --------------------------------------------------------------------------------------


def training_model(model: keras.Model, precision: str) -> keras.Model:
    """`model` itself when its layers already compute in `precision`, else a copy that does.

    Why a copy: a dtype policy is fixed when a layer is built, and a global policy would
    change every model built afterwards in the process.  The copy has the same layer names
    and gets `model`'s weights.
    """
    policy = PRECISIONS[precision] or "float32"
    if all(layer.dtype_policy.name == policy for layer in model.layers if layer.weights):
        return model

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy_backbone(model, copy)
    return copy


def trained_variables(model: keras.Model, freeze_until: str | None) -> list:
    """The variables SGD updates: every trainable one after `freeze_until` in ssd.pytorch's order."""
    order = list(dict.fromkeys(slot.layer for slot in ssd_pytorch_keys(model).values()))
    if freeze_until is not None and freeze_until not in order:
        raise UsageError(f"--freeze-until {freeze_until!r} is not a layer with weights; choose one of {', '.join(order)}")
    frozen = set(order[: order.index(freeze_until) + 1]) if freeze_until else set()
    return [v for name in order if name not in frozen for v in model.get_layer(name).trainable_weights]


# --------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------


class _SGD:
    """PyTorch-style SGD with momentum and weight decay over `variables`, the step compiled."""

    def __init__(self, model: keras.Model, variables: list, config: TrainConfig):
        self.model, self.variables, self.config = model, variables, config
        self.buffers = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in variables]
        self._step = tf.function(self._step_fn, reduce_retracing=True)

    def _step_fn(self, images, loc_t, conf_t, lr):
        config = self.config
        with tf.GradientTape() as tape:
            loc, conf = self.model(images, training=True)
            loc_loss, conf_loss = multibox_loss(
                tf.cast(loc, tf.float32), tf.cast(conf, tf.float32), loc_t, conf_t, config.negpos_ratio
            )
            loss = loc_loss + conf_loss
        grads = tape.gradient(loss, self.variables)
        for var, grad, buf in zip(self.variables, grads, self.buffers):
            buf.assign(config.momentum * buf + (grad + config.weight_decay * var.value))
            var.assign_sub(lr * buf)
        return loc_loss, conf_loss

    def __call__(self, batch, lr: float) -> tuple[float, float]:
        images, loc_t, conf_t = batch
        loc_loss, conf_loss = self._step(
            tf.cast(images, tf.float32), tf.cast(loc_t, tf.float32), tf.cast(conf_t, tf.int32), tf.constant(lr, tf.float32)
        )
        return float(loc_loss), float(conf_loss)

    def momentum(self) -> dict[str, np.ndarray]:
        return {v.path: b.numpy() for v, b in zip(self.variables, self.buffers)}

    def restore_momentum(self, saved: dict[str, np.ndarray], source: Path) -> None:
        """Put saved buffers back; the set of trained variables must be the one that saved them."""
        paths = [v.path for v in self.variables]
        if sorted(saved) != sorted(paths):
            raise DetstyleError(f"{source}: momentum saved for other trained layers (was --freeze-until changed?)")
        for path, buf in zip(paths, self.buffers):
            buf.assign(saved[path])


def _check_batch(model: keras.Model, batch) -> None:
    """One line instead of a TensorFlow shape error deep inside the compiled step."""
    images, loc_t, conf_t = batch
    size, priors = tuple(model.input_shape[1:]), model.outputs[0].shape[1]
    if tuple(np.shape(images)[1:]) != size or tuple(np.shape(loc_t)[1:]) != (priors, 4) or \
            tuple(np.shape(conf_t)[1:]) != (priors,):
        raise DetstyleError(
            f"batch shapes images {tuple(np.shape(images))}, loc_t {tuple(np.shape(loc_t))}, conf_t "
            f"{tuple(np.shape(conf_t))} do not fit the model: it wants (B, {', '.join(map(str, size))}), "
            f"(B, {priors}, 4), (B, {priors})"
        )


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp):
        with open(tmp, "wb") as file:
            np.savez(file, **arrays)

    return atomic_write(path, write)


def _save_checkpoint(run_dir: Path, model: keras.Model, sgd: _SGD, history: list[dict], config: TrainConfig,
                     previous: dict | None) -> dict:
    """Write weights, momentum and then the state naming them; drop the previous pair."""
    step = int(history[-1]["step"]) if history else 0
    state = {"step": step, "config": config.to_dict(),
             "weights": f"ssd300_step{step:06d}.pth", "momentum": f"momentum_step{step:06d}.npz"}
    save_ssd300_pth(model, run_dir / state["weights"])
    rows = np.array([[row[c] for c in _HISTORY_COLUMNS] for row in history], np.float64).reshape(-1, 5)
    _write_npz(run_dir / state["momentum"], {**{f"momentum/{k}": v for k, v in sgd.momentum().items()},
                                             "history": rows})
    atomic_write(run_dir / STATE_FILE, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1)))
    if previous and previous["step"] != step:
        for name in (previous["weights"], previous["momentum"]):
            (run_dir / name).unlink(missing_ok=True)
    _plot_losses(history, run_dir / LOSS_FIGURE)
    return state


def read_state(run_dir: str | Path) -> dict | None:
    """The last checkpoint's `train_state.json` (step, config, file names), or None if there is none."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DetstyleError(f"{path}: not a readable training state ({exc})") from None


def _check_resumable(state: dict, config: TrainConfig, run_dir: Path) -> None:
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
    changed = [k for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if changed:
        raise UsageError(f"{run_dir}: the checkpoint was trained with other settings ({', '.join(changed)} differ); "
                         "resume with the same options or start a new run directory")


def _restore(run_dir: Path, state: dict, model: keras.Model, sgd: _SGD) -> list[dict]:
    """Weights and momentum back from a checkpoint; returns its loss history."""
    load_ssd300_pth(model, run_dir / state["weights"])
    path = run_dir / state["momentum"]
    try:
        with np.load(path, allow_pickle=False) as data:
            momentum = {k.removeprefix("momentum/"): data[k] for k in data.files if k.startswith("momentum/")}
            rows = data["history"]
    except (OSError, ValueError, KeyError) as exc:
        raise DetstyleError(f"{path}: cannot read the momentum checkpoint ({exc})") from None
    sgd.restore_momentum(momentum, path)
    return [{c: (int(v) if c == "step" else float(v)) for c, v in zip(_HISTORY_COLUMNS, row)} for row in rows]


def _plot_losses(history: list[dict], path: Path) -> None:
    """Total, localisation and confidence loss against the step (matplotlib's Figure API only)."""
    from matplotlib.figure import Figure

    from transfer.io.figures import save_figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    steps = [row["step"] for row in history]
    for column, label in (("loss", "total"), ("loc_loss", "localisation"), ("conf_loss", "confidence")):
        ax.plot(steps, [row[column] for row in history], label=label, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("MultiBox loss")
    ax.legend(fontsize=8)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------


def _prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> dict | None:
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(run_dir)
    if resume and state is None:
        raise DetstyleError(f"{run_dir}: no training checkpoint to resume from ({STATE_FILE} is missing)")
    if not resume and state is not None:
        raise UsageError(f"{run_dir}: already holds a training run at step {state['step']}; "
                         "pass --resume to continue it or choose another directory")
    if state is not None:
        _check_resumable(state, config, run_dir)
    return state


def _one_step(sgd: _SGD, batch, config: TrainConfig, step: int, run_dir: Path) -> dict:
    """Take 0-based step `step`; its history row (losses measured before the update)."""
    rate = learning_rate(config, step)
    loc_loss, conf_loss = sgd(batch, rate)
    if not np.isfinite(loc_loss + conf_loss):
        raise DivergenceError(f"the loss became {loc_loss + conf_loss} at step {step + 1}; "
                              f"the last checkpoint in {run_dir} is kept", step=step + 1)
    return {"step": step + 1, "loss": loc_loss + conf_loss, "loc_loss": loc_loss, "conf_loss": conf_loss, "lr": rate}


def train(
    model: keras.Model,
    batches: Iterable,
    config: TrainConfig,
    run_dir: str | Path,
    callback: Callable[[StepInfo], None] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train `model` on `batches` until `config.steps` (or the batches run out), checkpointing to `run_dir`.

    Args:
      model: a `build_ssd300` model; on return it holds the trained weights (also when a
        bf16 copy did the training).
      batches: yields `(images, loc_t, conf_t)`; on resume it must yield the batches from the
        checkpoint's step on (`read_state(run_dir)["step"]` says which), as the loop does not
        skip any.
      callback: called after every step with a :class:`StepInfo`.
      resume: continue the run saved in `run_dir` (refused if its settings differ, except
        `RESUMABLE_CHANGES`); without it `run_dir` must not hold a run yet.

    Raises:
      Interrupted: SIGINT/SIGTERM arrived; the checkpoint of the last finished step was saved.
      DivergenceError: the loss became NaN/inf; the last checkpoint is kept as it was.
    """
    run_dir = Path(run_dir)
    state = _prepare_run_dir(run_dir, config, resume)
    net = training_model(model, config.precision)
    sgd = _SGD(net, trained_variables(net, config.freeze_until), config)
    history = _restore(run_dir, state, net, sgd) if state else []
    first = done = state["step"] if state else 0
    started = time.perf_counter()
    with stop_on_signals() as stop:
        for step, batch in zip(range(first, config.steps), batches):  # range first: no batch is drawn past the end
            if step == first:
                _check_batch(net, batch)
            history.append(_one_step(sgd, batch, config, step, run_dir))
            done = step + 1
            if callback is not None:
                callback(StepInfo(steps=config.steps, seconds=time.perf_counter() - started, **history[-1]))
            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
                state = _save_checkpoint(run_dir, net, sgd, history, config, state)
            if stop.is_set():
                break
        if state is None or state["step"] != done:
            state = _save_checkpoint(run_dir, net, sgd, history, config, state)
        if stop.is_set() and done < config.steps:
            raise Interrupted(f"interrupted at step {done} of {config.steps}; checkpoint saved in {run_dir}, "
                              "continue with --resume")
    if net is not model:
        copy_backbone(net, model)
    return TrainResult(done, run_dir / state["weights"], history, time.perf_counter() - started)
