"""Reading Keras HDF5 weights with h5py: legacy attribute layout (both spellings), Keras 3 files.

The Keras 2 layout is written attribute by attribute with h5py, at the full VGG16 notop
shapes of the published ImageNet file; `model_weights` files, `.weights.h5` and `.keras`
files come from Keras 3 itself (the real writers).
"""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from weights import WeightsError, describe, read_checkpoint  # noqa: E402
from weights.keras_h5 import read_keras_h5  # noqa: E402

VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def vgg16_notop_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes, in_c = {}, 3
    for block, n, filters in VGG16_BLOCKS:
        for i in range(1, n + 1):
            shapes[f"block{block}_conv{i}"] = ((3, 3, in_c, filters), (filters,))
            in_c = filters
    return shapes


def vgg16_layer_names() -> list[str]:
    names = ["input_1"]
    for block, n, _ in VGG16_BLOCKS:
        names += [f"block{block}_conv{i}" for i in range(1, n + 1)] + [f"block{block}_pool"]
    return names


def write_keras2_h5(path, spelling: str, seed: int = 0, *, under_model_weights: bool = False):
    """A Keras-2 style weights file; returns {"<layer>/kernel"|"<layer>/bias": array}."""
    rng = np.random.default_rng(seed)
    shapes = vgg16_notop_shapes()
    expected = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if under_model_weights else f
        root.attrs["layer_names"] = np.array([n.encode() for n in vgg16_layer_names()])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        for layer in vgg16_layer_names():
            group = root.create_group(layer)
            if layer not in shapes:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel = rng.standard_normal(shapes[layer][0], dtype=np.float32)
            bias = rng.standard_normal(shapes[layer][1], dtype=np.float32)
            if spelling == "flat":  # the published file: block1_conv1_W_1:0, block1_conv1_b_1:0
                names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
            else:  # later Keras 2: nested group, kernel:0 / bias:0
                names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            # datasets created bias first: the order must come from weight_names, not the file
            group.create_dataset(names[1], data=bias)
            group.create_dataset(names[0], data=kernel)
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            expected[f"{layer}/kernel"], expected[f"{layer}/bias"] = kernel, bias
    return expected


@pytest.mark.parametrize("spelling", ["flat", "nested"])
def test_keras2_layout_full_vgg16_bit_exact(tmp_path, spelling):
    path = tmp_path / f"vgg16_{spelling}.h5"
    expected = write_keras2_h5(path, spelling)
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "keras-h5-legacy"
    assert ckpt.parameter_count == 14_714_688
    assert list(ckpt.tensors) == list(expected)
    for key, value in expected.items():
        assert ckpt.tensors[key].dtype == np.float32
        assert np.array_equal(ckpt.tensors[key], value), key
    assert ckpt.tensors["block1_conv1/kernel"].shape == (3, 3, 3, 64)  # HWIO
    assert ckpt.meta["layer_names"][0] == "block1_conv1" and len(ckpt.meta["layer_names"]) == 13
    assert ckpt.meta["keras_version"] == "2.2.4"
    text = describe(ckpt)
    assert "Keras legacy weights" in text and "parameters 14,714,688" in text


def test_model_weights_group_written_by_hand(tmp_path):
    path = tmp_path / "full_model.h5"
    expected = write_keras2_h5(path, "nested", seed=1, under_model_weights=True)
    ckpt = read_keras_h5(path)
    assert ckpt.meta["weights_group"] == "model_weights"
    assert all(np.array_equal(ckpt.tensors[k], v) for k, v in expected.items())


def test_missing_layer_names_and_weight_names(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match=r"bare\.h5: HDF5 file has no 'layer_names' attribute"):
        read_keras_h5(path)

    path = tmp_path / "no_weight_names.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv"])
        f.create_group("conv")
    with pytest.raises(WeightsError, match="layer group 'conv' has no 'weight_names' attribute"):
        read_keras_h5(path)

    path = tmp_path / "no_group.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv"])
    with pytest.raises(WeightsError, match="layer 'conv' is in layer_names but has no group"):
        read_keras_h5(path)

    path = tmp_path / "no_dataset.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv"])
        f.create_group("conv").attrs["weight_names"] = np.array([b"conv/kernel:0"])
    with pytest.raises(WeightsError, match="lists weight 'conv/kernel:0' but has no such dataset"):
        read_keras_h5(path)


def test_not_hdf5_and_truncated(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(WeightsError, match=r"x\.h5: not a readable HDF5 file"):
        read_keras_h5(path)
    whole = tmp_path / "whole.h5"
    write_keras2_h5(whole, "flat")
    data = whole.read_bytes()
    for cut in (100, len(data) // 2, len(data) - 1000):
        cut_path = tmp_path / f"cut{cut}.h5"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(WeightsError) as info:
            read_checkpoint(cut_path)
        assert str(cut_path) in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- real Keras 3 writer


@pytest.fixture(scope="module")
def keras_model():
    keras = pytest.importorskip("keras", reason="Keras writes the .weights.h5 / .keras fixtures")
    from keras import layers

    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, name="block1_conv1")(inputs)
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = layers.Conv2D(12, 3, name="block2_conv1")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Conv2D(5, 1, use_bias=False, name="head")(x)
    for i in range(10):  # enough convs for class-based names conv2d_10 to sort after conv2d_9
        x = layers.Conv2D(5, 1, name=f"extra{i}")(x)
    model = keras.Model(inputs, x, name="tiny")
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.weights])
    expected = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) <= 2:
            for label, w in zip(("kernel", "bias"), weights):
                expected[f"{layer.name}/{label}"] = w
    bn = model.get_layer("bn").get_weights()
    return keras, model, expected, bn


def test_keras3_weights_h5_read_without_keras(keras_model, tmp_path):
    keras, model, expected, bn = keras_model
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "keras3-weights-h5"
    for key, value in expected.items():
        assert np.array_equal(ckpt.tensors[key], value), key
    assert "head/bias" not in ckpt.tensors and ckpt.tensors["head/kernel"].shape == (1, 1, 12, 5)
    for i, value in enumerate(bn):
        assert np.array_equal(ckpt.tensors[f"bn/{i}"], value)
    assert ckpt.meta["layer_names"][:3] == ["bn", "block1_conv1", "block2_conv1"]
    convs = [n for n in ckpt.meta["layer_names"] if n.startswith("extra")]
    assert convs == [f"extra{i}" for i in range(10)]  # natural order of conv2d_N groups


def test_keras3_nested_model_weights_h5(keras_model, tmp_path):
    keras, model, expected, _ = keras_model
    outer = keras.Sequential([keras.Input((None, None, 3)), model], name="outer")
    path = tmp_path / "outer.weights.h5"
    outer.save_weights(path)
    ckpt = read_keras_h5(path)
    assert all(np.array_equal(ckpt.tensors[k], v) for k, v in expected.items())


def test_keras3_model_save_h5_is_legacy_layout(keras_model, tmp_path):
    _, model, expected, bn = keras_model
    path = tmp_path / "tiny.h5"
    model.save(path)
    ckpt = read_keras_h5(path)
    assert ckpt.layout == "keras-h5-legacy" and ckpt.meta["weights_group"] == "model_weights"
    for key, value in expected.items():
        assert np.array_equal(ckpt.tensors[key], value), key
    for label, value in zip(("gamma", "beta", "moving_mean", "moving_variance"), bn):
        assert np.array_equal(ckpt.tensors[f"bn/{label}"], value)


def test_dot_keras_archive(keras_model, tmp_path):
    _, model, expected, _ = keras_model
    path = tmp_path / "tiny.keras"
    model.save(path)
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "keras3-weights-h5" and ckpt.source == path
    assert all(np.array_equal(ckpt.tensors[k], v) for k, v in expected.items())
