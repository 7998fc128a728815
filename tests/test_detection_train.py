"""The training loop: schedule by hand, PyTorch's SGD as the oracle of an update, the loss going
down on a synthetic set, and Ctrl-C + resume ending on the weights of an uninterrupted run.

Data: solid rectangles on noise at 268 x 268 (the smallest input SSD300 takes), matched to
the priors of that size by `models.multibox_loss.match_batch` -- what `detection.data` yields,
built here so the loop is tested without the data pipeline.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from detection.export import load_ssd300_pth
from detection.train import LOSS_FIGURE, STATE_FILE, TrainConfig, learning_rate, read_state, train
from models.multibox_loss import match_batch, multibox_loss
from models.priors import PriorConfig, prior_boxes
from models.ssd300 import build_ssd300, feature_map_sizes
from tests.conftest import interrupt_at
from transfer.errors import UsageError
from transfer.io.run_state import Interrupted

SIZE = 268
PRIORS = PriorConfig(image_size=SIZE, feature_maps=feature_map_sizes(SIZE))
MEAN = np.array([123.0, 117.0, 104.0], np.float32)  # the rgb_mean profile
CLASSES = 3  # background, red rectangles, blue rectangles


def synthetic_batches(count: int, batch: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`count` batches of noise images, each with one red (class 1) or blue (class 2) rectangle."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        images, targets = [], []
        for _ in range(batch):
            image = rng.uniform(0, 0.4, (SIZE, SIZE, 3)).astype(np.float32)
            w, h = rng.uniform(0.3, 0.6, 2)
            x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            label = int(rng.integers(1, 3))
            px = np.round(np.array([x0, y0, x0 + w, y0 + h]) * SIZE).astype(int)
            image[px[1]:px[3], px[0]:px[2]] = (0.9, 0.1, 0.1) if label == 1 else (0.1, 0.1, 0.9)
            images.append(image * 255 - MEAN)
            targets.append((px[None] / SIZE, [label]))
        loc_t, conf_t = match_batch(targets, prior_boxes(PRIORS))
        batches.append((np.stack(images), loc_t.numpy(), conf_t.numpy()))
    return batches


@pytest.fixture(scope="module")
def initial_weights():
    """Seeded (per model, no global RNG): Keras' unseeded initialisers made the learning test's start differ per
    process, and an unlucky start lowered the loss less than the test asks."""
    from transfer.jobs.detector import glorot_initialise

    model = build_ssd300(num_classes=CLASSES, config=PRIORS, input_size=SIZE)
    glorot_initialise(model, 0)
    return model.get_weights()


def fresh_model(weights):
    model = build_ssd300(num_classes=CLASSES, config=PRIORS, input_size=SIZE)
    model.set_weights(weights)
    return model


# ----------------------------------------------------------------------------- the schedule


def test_learning_rate_warmup_and_step_decay_by_hand():
    config = TrainConfig(lr=1e-3, warmup_steps=4, lr_steps=(6, 8), gamma=0.1)
    expected = [0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]
    assert [learning_rate(config, s) for s in range(10)] == pytest.approx(expected, rel=1e-12)
    # a milestone inside the warm-up: both factors apply (1e-3 * 0.1 * 3/4 at step 2)
    overlapping = TrainConfig(lr=1e-3, warmup_steps=4, lr_steps=(2,), gamma=0.1)
    assert [learning_rate(overlapping, s) for s in range(5)] == pytest.approx(
        [0.25e-3, 0.5e-3, 0.075e-3, 0.1e-3, 0.1e-3], rel=1e-12)
    assert learning_rate(TrainConfig(warmup_steps=0), 0) == 1e-3  # ssd.pytorch: no warm-up
    assert learning_rate(TrainConfig(), 80_000) == pytest.approx(1e-4) and learning_rate(TrainConfig(), 79_999) == 1e-3


# ----------------------------------------------------------------------------- the update


def _gradients(model, batch, variables):
    images, loc_t, conf_t = (tf.convert_to_tensor(a) for a in batch)
    with tf.GradientTape() as tape:
        loc, conf = model(images, training=True)
        loc_loss, conf_loss = multibox_loss(loc, conf, loc_t, conf_t)
        loss = loc_loss + conf_loss
    return [g.numpy() for g in tape.gradient(loss, variables)]


def test_two_steps_are_torch_sgd_with_momentum_and_weight_decay(initial_weights, tmp_path):
    """torch.optim.SGD with momentum and weight decay, fed our gradients, moves the weights as we do.

    The second step checks the momentum buffer across the warm-up's rate change (where Keras's
    SGD, which folds the rate into the velocity, would differ); the decay is 100x ssd.pytorch's
    so that its share of an update is far above float32 rounding.  Updates are compared, not
    weights, for the same reason."""
    torch = pytest.importorskip("torch", reason="torch==2.13.0 is the SGD oracle (make test installs it)")
    batch = synthetic_batches(1, 1, seed=1)[0]
    config = TrainConfig(steps=2, lr=1e-3, weight_decay=0.05, warmup_steps=2, freeze_until="extras_7",
                         checkpoint_every=0)
    probe = fresh_model(initial_weights)
    heads = [f"{kind}_{k}" for kind in ("loc", "conf") for k in range(6)]  # all that trains after extras_7
    variables = [v for name in heads for v in probe.get_layer(name).trainable_weights]
    params = [torch.nn.Parameter(torch.from_numpy(v.numpy().copy())) for v in variables]
    start = [v.numpy().copy() for v in variables]
    sgd = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=0.05)
    for rate in (learning_rate(config, 0), learning_rate(config, 1)):
        for p, g in zip(params, _gradients(probe, batch, variables)):
            p.grad = torch.from_numpy(g)
        for group in sgd.param_groups:
            group["lr"] = rate
        sgd.step()
        for v, p in zip(variables, params):
            v.assign(p.detach().numpy())

    model = fresh_model(initial_weights)
    train(model, [batch, batch], config, tmp_path / "run")
    trained = {v.path: v.numpy() for v in model.weights}
    for v, p, w0 in zip(variables, params, start):
        theirs = p.detach().numpy() - w0
        np.testing.assert_allclose(trained[v.path] - w0, theirs, rtol=0, atol=1e-3 * np.abs(theirs).max())


# ----------------------------------------------------------------------------- learning


def test_a_few_steps_reduce_the_loss(initial_weights, tmp_path):
    batches = synthetic_batches(2, 1, seed=2)
    config = TrainConfig(steps=6, lr=1e-3, warmup_steps=0, freeze_until="conv7", checkpoint_every=0)
    seen = []
    result = train(fresh_model(initial_weights), batches * 3, config, tmp_path / "run", callback=seen.append)
    losses = [row["loss"] for row in result.history]
    assert [info.step for info in seen] == list(range(1, 7)) and seen[-1].loss == losses[-1]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])  # each batch seen 3 times
    assert (tmp_path / "run" / LOSS_FIGURE).stat().st_size > 0


def test_bf16_trains_a_copy_and_hands_back_float32_weights(initial_weights, tmp_path):
    model = fresh_model(initial_weights)
    config = TrainConfig(steps=1, warmup_steps=0, precision="bf16", freeze_until="conv7", checkpoint_every=0)
    result = train(model, synthetic_batches(1, 1, seed=3), config, tmp_path / "run")
    assert np.isfinite(result.history[0]["loss"])
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    trained = model.get_layer("conf_0").get_weights()[0]
    assert not np.array_equal(trained, fresh_model(initial_weights).get_layer("conf_0").get_weights()[0])
    reloaded = fresh_model(initial_weights)
    load_ssd300_pth(reloaded, result.checkpoint)
    np.testing.assert_array_equal(reloaded.get_layer("conf_0").get_weights()[0], trained)


# ----------------------------------------------------------------------------- interrupt and resume


def test_ctrl_c_saves_and_resume_ends_on_the_uninterrupted_weights(initial_weights, tmp_path):
    """A step is a function of weights, momentum, batch and rate only, and each is restored
    exactly: the .pth holds the float32 weights, the .npz the buffers, the JSON the step (hence
    the rate), and the caller feeds the batches from that step on.  What remains is TensorFlow's
    multi-threaded CPU reductions, whose summation order varies run to run: two uninterrupted
    runs here differ by ~2e-9 (weights ~0.05), hence 1e-6 and not bit equality."""
    batches = synthetic_batches(3, 1, seed=4)
    config = TrainConfig(steps=3, lr=1e-3, warmup_steps=2, freeze_until="conv7", checkpoint_every=0)
    straight = fresh_model(initial_weights)
    train(straight, batches, config, tmp_path / "straight")

    run = tmp_path / "interrupted"
    with pytest.raises(Interrupted, match="step 1 of 3"):  # SIGINT, as Ctrl-C sends, from the step-1 callback
        train(fresh_model(initial_weights), batches, config, run, callback=interrupt_at(1))
    state = read_state(run)
    assert state["step"] == 1 and sorted(p.name for p in run.iterdir()) == sorted(
        [STATE_FILE, LOSS_FIGURE, state["weights"], state["momentum"]])

    with pytest.raises(UsageError, match="already holds a training run at step 1"):
        train(straight, batches, config, run)
    with pytest.raises(UsageError, match="weight_decay differ"):
        train(straight, batches, TrainConfig(**{**config.to_dict(), "weight_decay": 0.0}), run, resume=True)

    resumed = fresh_model(initial_weights)
    result = train(resumed, batches[state["step"]:], config, run, resume=True)  # momentum matters from here
    assert result.step == 3 and [row["step"] for row in result.history] == [1, 2, 3]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert json.loads((run / STATE_FILE).read_text())["step"] == 3
    assert len(list(run.glob("*.pth"))) == 1  # the step-1 checkpoint was replaced
