"""Our SSD300 -> ssd.pytorch `.pth` -> torch's own network, and torch's file -> ours -> training.

The oracle is torch itself: `torch.load(weights_only=True)` reads what `write_torch_pth` wrote,
and ssd.pytorch's network rebuilt from torch layers (tests/golden/make_ssd300_golden.py, which
imports nothing from this repository) must take the state dict with `strict=True` and compute
the same outputs as the Keras model the file came from.
"""

import collections
import importlib
import io
import pickle
import zipfile

import numpy as np
import pytest

from detection.export import load_ssd300_pth, save_ssd300_pth, ssd300_state_dict
from detection.train import TrainConfig, train
from models.ssd300 import build_ssd300
from transfer.errors import DetstyleError
from weights import WeightsError, read_checkpoint
from weights.torch_pth_write import ALIGNMENT, write_torch_pth

TORCH_REASON = "torch==2.13.0 loads the written .pth files and runs the reference network (make test installs it)"


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason=TORCH_REASON)


@pytest.fixture(scope="module")
def golden(torch):
    """tests/golden/make_ssd300_golden.py: ssd.pytorch's network from torch's own layers."""
    return importlib.import_module("tests.golden.make_ssd300_golden")


def _randomised_keras(model, seed: int):
    """He-scaled random kernels, random biases and L2Norm scales: a misplaced tensor shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if len(shape) == 4:
                values.append(rng.normal(0, (2.0 / np.prod(shape[:3])) ** 0.5, shape).astype(np.float32))
            elif layer.name == "l2norm":
                values.append((20 + 5 * rng.normal(size=shape)).astype(np.float32))
            else:
                values.append(rng.normal(0, 0.1, shape).astype(np.float32))
        if values:
            layer.set_weights(values)
    return model


# ----------------------------------------------------------------------------- the writer alone


def test_writer_round_trips_through_our_reader_and_torch(torch, tmp_path):
    state = collections.OrderedDict([
        ("vgg.0.weight", np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20.5),
        ("vgg.0.bias", np.array([1.5, -2.0], np.float64)),  # float64 is written as float32
        ("L2Norm.weight", np.full(70_000, 20.0, np.float32)),  # > 64 KiB: BININT sizes
        ("scalar", np.array(3.25, np.float32)),
    ])
    path = write_torch_pth(tmp_path / "out.pth", state)

    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert loaded[key].dtype == torch.float32 and tuple(loaded[key].shape) == value.shape
        np.testing.assert_array_equal(loaded[key].numpy(), value.astype(np.float32))
    mapped = torch.load(path, weights_only=True, mmap=True)  # needs aligned storage records
    np.testing.assert_array_equal(mapped["vgg.0.weight"].numpy(), state["vgg.0.weight"])

    ours = read_checkpoint(path)
    assert ours.layout == "ssd300-pth" and ours.meta["serialisation"] == "zip"
    for key, value in state.items():
        np.testing.assert_array_equal(ours.tensors[key], value.astype(np.float32))


class _Global:
    """A pickle global, recorded by name instead of imported; calling it records the call."""

    def __init__(self, name: str):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, _Global) and other.name == self.name

    def __call__(self, *args):
        return (self.name, args)


class _Recorder(pickle.Unpickler):
    """Reads a state-dict pickle into plain tuples, so two writers' pickles compare by meaning
    (torch memoises and uses TUPLE2 & co., ours need not) and nothing is imported or run."""

    def find_class(self, module, name):
        return collections.OrderedDict if (module, name) == ("collections", "OrderedDict") else _Global(f"{module}.{name}")

    def persistent_load(self, pid):
        return ("persistent", pid)


def test_writer_lays_out_the_zip_as_torch_save_does(torch, tmp_path):
    ours = write_torch_pth(tmp_path / "ours.pth", {"a": np.ones((2, 3), np.float32), "b": np.zeros(5, np.float32)})
    theirs = tmp_path / "theirs.pth"
    torch.save(collections.OrderedDict(a=torch.ones(2, 3), b=torch.zeros(5)), theirs)

    def layout(path):
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            rows = []
            for info in archive.infolist():
                raw.seek(info.header_offset + 26)
                name_len, extra_len = np.frombuffer(raw.read(4), "<u2")
                start = info.header_offset + 30 + int(name_len) + int(extra_len)
                content = archive.read(info)
                if info.filename.endswith("data.pkl"):
                    content = _Recorder(io.BytesIO(content)).load()
                rows.append((info.filename.split("/", 1)[1], info.compress_type, start % ALIGNMENT, content))
            return rows

    expected = [row for row in layout(theirs) if row[0] != ".data/serialization_id"]  # a random id per save
    assert layout(ours) == expected  # same records in order, stored, 64-byte aligned, same bytes and pickled meaning


def test_writer_refuses_integer_arrays_and_leaves_no_file(tmp_path):
    with pytest.raises(WeightsError, match="not floating point"):
        write_torch_pth(tmp_path / "bad.pth", {"vgg.0.weight": np.ones(3, np.int64)})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- Keras -> torch


@pytest.fixture(scope="module")
def keras_ssd():
    return _randomised_keras(build_ssd300(num_classes=21), seed=3)


def test_exported_model_loads_strictly_into_ssd_pytorch_and_computes_the_same(torch, golden, keras_ssd, tmp_path):
    path = save_ssd300_pth(keras_ssd, tmp_path / "ssd300.pth")
    state = torch.load(path, weights_only=True)
    net = golden.build_ssd300_torch(21)
    assert list(state) == list(net.state_dict())  # their order, too
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    x = np.random.default_rng(1).uniform(-120, 130, (1, 300, 300, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = [t.numpy() for t in net.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous())]
    ours = [o.numpy() for o in keras_ssd(x)]
    for o, t in zip(ours, theirs):
        assert o.shape == t.shape
        np.testing.assert_allclose(o, t, atol=1e-4 * np.abs(t).max(), rtol=0)


def test_state_dict_is_torch_layout_of_the_keras_weights(keras_ssd):
    state = ssd300_state_dict(keras_ssd)
    kernel = keras_ssd.get_layer("conv6").weights[0].numpy()  # HWIO (3, 3, 512, 1024)
    assert state["vgg.31.weight"].shape == (1024, 512, 3, 3)
    assert state["vgg.31.weight"][7, 5, 2, 1] == kernel[2, 1, 5, 7]
    np.testing.assert_array_equal(state["L2Norm.weight"], keras_ssd.get_layer("l2norm").weights[0].numpy())


# ----------------------------------------------------------------------------- torch -> Keras


@pytest.fixture(scope="module")
def torch_written(torch, golden, tmp_path_factory):
    """ssd.pytorch's network (3 classes) with seeded weights, saved by torch.save, and its outputs."""
    net = golden.build_ssd300_torch(3)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in net.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            param.copy_(noise * (2.0 / param[0].numel()) ** 0.5 if param.ndim == 4 else 20 + noise)
    path = tmp_path_factory.mktemp("pth") / "theirs.pth"
    torch.save(net.state_dict(), path)
    x = np.random.default_rng(2).uniform(-120, 130, (1, 300, 300, 3)).astype(np.float32)
    with torch.no_grad():
        outputs = [t.numpy() for t in net.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous())]
    return path, x, outputs


def test_torch_saved_file_loads_into_ours_with_the_same_outputs(torch_written):
    path, x, theirs = torch_written
    model = build_ssd300(num_classes=3)
    load_ssd300_pth(model, path)
    for o, t in zip(model(x), theirs):
        np.testing.assert_allclose(o.numpy(), t, atol=1e-4 * np.abs(t).max(), rtol=0)


def test_torch_saved_file_resumes_training(torch_written, tmp_path):
    """A .pth from torch is a training start: one step runs with a finite loss and moves the weights."""
    path, _, _ = torch_written
    model = build_ssd300(num_classes=3)
    load_ssd300_pth(model, path)
    before = model.get_layer("conf_0").weights[0].numpy().copy()
    priors = model.outputs[0].shape[1]
    conf_t = np.zeros((1, priors), np.int32)
    conf_t[0, :40] = 1
    batch = (np.random.default_rng(0).uniform(-100, 100, (1, 300, 300, 3)).astype(np.float32),
             np.zeros((1, priors, 4), np.float32), conf_t)
    config = TrainConfig(steps=1, warmup_steps=0, freeze_until="conv7", checkpoint_every=0)
    result = train(model, [batch], config, tmp_path / "run")
    assert result.step == 1 and np.isfinite(result.history[0]["loss"])
    assert not np.array_equal(model.get_layer("conf_0").weights[0].numpy(), before)


def test_wrong_class_count_is_refused_in_one_line(torch_written):
    path, _, _ = torch_written
    model = build_ssd300(num_classes=21)
    before = model.get_layer("block1_conv1").weights[0].numpy().copy()
    with pytest.raises(DetstyleError, match="3 classes; the model has 21"):
        load_ssd300_pth(model, path)
    np.testing.assert_array_equal(model.get_layer("block1_conv1").weights[0].numpy(), before)
