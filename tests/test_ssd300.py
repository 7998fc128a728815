"""SSD300: architecture, L2Norm, detection and training.

ssd.pytorch's key names and the forward parity with its network are the converter's tests
(tests/test_checkpoint_convert.py): this model knows no file format.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import box_utils
from models.priors import VOC_300, PriorConfig, prior_boxes
from models.ssd300 import (
    L2Normalization,
    SSDTrainer,
    backbone,
    build_ssd300,
    detect,
    feature_map_sizes,
    get_vgg16,
    train_step,
)
from models.vgg16 import VGG16_CONV_LAYERS, conv_parameter_count


@pytest.fixture(scope="module")
def ssd() -> keras.Model:
    return build_ssd300()


# ---------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------


def test_parameter_counts(ssd):
    assert ssd.count_params() == 26_285_486
    assert conv_parameter_count(ssd) == 14_714_688


def test_layer_configuration_matches_ssd_pytorch(ssd):
    for name in VGG16_CONV_LAYERS + ("conv6", "conv7") + tuple(f"extras_{i}" for i in range(8)):
        assert ssd.get_layer(name).get_config()["activation"] == "relu", name
    for k in range(6):
        assert ssd.get_layer(f"loc_{k}").get_config()["activation"] == "linear"
    assert ssd.get_layer("conv6").dilation_rate == (6, 6)
    assert (
        ssd.get_layer("extras_1").strides == (2, 2) and ssd.get_layer("extras_1").padding == "valid"
    )
    assert (
        ssd.get_layer("extras_3").strides == (2, 2) and ssd.get_layer("extras_3").padding == "valid"
    )
    assert (
        ssd.get_layer("extras_1_pad").padding
        == ((1, 1), (1, 1))
        == ssd.get_layer("extras_3_pad").padding
    )
    assert (
        ssd.get_layer("extras_5").padding == "valid"
        and ssd.get_layer("extras_7").padding == "valid"
    )
    sides = {
        "block3_pool": 38,  # ceil mode 75 -> 38
        "block4_conv3": 38,
        "block5_pool": 19,  # 3x3 stride 1
        "conv7": 19,
        "extras_1": 10,
        "extras_3": 5,
        "extras_5": 3,
        "extras_7": 1,
    }
    for name, side in sides.items():
        assert ssd.get_layer(name).output.shape[1:3] == (side, side), name
    assert feature_map_sizes(300) == VOC_300.feature_maps


def test_output_shapes_and_nhwc_flattening_at_300(ssd):
    probe = keras.Model(
        ssd.input, [*ssd.outputs, ssd.get_layer("loc_0").output, ssd.get_layer("conf_1").output]
    )
    x = np.random.default_rng(0).uniform(-120, 130, (1, 300, 300, 3)).astype(np.float32)
    loc, conf, loc_0, conf_1 = (t.numpy() for t in probe(x))
    assert loc.shape == (1, 8732, 4) and conf.shape == (1, 8732, 21)
    assert ssd.output_names == ["loc", "conf"]
    # Rows follow (row, column, box) like PyTorch's permute(0, 2, 3, 1).view(B, -1, k).
    assert loc_0.shape == (1, 38, 38, 16) and conf_1.shape == (1, 19, 19, 126)
    np.testing.assert_array_equal(loc[:, :5776], loc_0.reshape(1, -1, 4))
    np.testing.assert_array_equal(conf[:, 5776:7942], conf_1.reshape(1, -1, 21))


def test_input_size_must_match_the_config():
    with pytest.raises(ValueError, match="268"):
        build_ssd300(input_size=267)
    with pytest.raises(ValueError, match="expects"):
        build_ssd300(input_size=268)  # maps (34, 17, 9, 5, 3, 1) vs VOC's 38, 19, 10
    assert feature_map_sizes(268) == (34, 17, 9, 5, 3, 1)


def test_backbone_is_the_vgg16_part_sharing_weights(ssd):
    vgg = backbone(ssd)
    conv_names = [layer.name for layer in vgg.layers if isinstance(layer, keras.layers.Conv2D)]
    assert tuple(conv_names) == VGG16_CONV_LAYERS
    pools = [layer.name for layer in vgg.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == ["block1_pool", "block2_pool", "block3_pool", "block4_pool"]
    assert vgg.output.shape[1:] == (19, 19, 512)
    assert vgg.count_params() == 14_714_688
    for name in VGG16_CONV_LAYERS:
        assert vgg.get_layer(name) is ssd.get_layer(name)
        assert vgg.get_layer(name).kernel is ssd.get_layer(name).kernel
    assert get_vgg16 is backbone


# ---------------------------------------------------------------------------------------
# L2Norm
# ---------------------------------------------------------------------------------------


def test_l2norm_matches_numpy_and_serialises():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0] = 0.0  # eps keeps an all-zero vector finite
    layer = L2Normalization(name="l2norm")
    layer.build(x.shape)
    np.testing.assert_allclose(layer.weight.numpy(), np.full(5, 20.0))
    scale = rng.uniform(1, 3, 5).astype(np.float32)
    layer.weight.assign(scale)
    expected = x / (np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True)) + 1e-10) * scale
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.all(layer(x).numpy()[0, 0, 0] == 0.0)

    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "detstyle>L2Normalization"
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, L2Normalization) and clone.epsilon == 1e-10 and clone.scale == 20.0


# ---------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------


def _fixed_output_model(loc: np.ndarray, conf: np.ndarray) -> keras.Model:
    """A 'network' that ignores its input and returns fixed (loc, conf) for each image."""
    inputs = keras.Input((300, 300, 3))
    batch_zero = keras.layers.Lambda(lambda x: x[:, :1, :1, :1] * 0.0)(inputs)
    outputs = [
        keras.layers.Lambda(lambda z, c=c: tf.reshape(z, (-1, 1, 1)) + c[None])(batch_zero)
        for c in (tf.constant(loc), tf.constant(conf))
    ]
    return keras.Model(inputs, outputs)


def test_detect_decodes_and_suppresses_per_class():
    priors = prior_boxes(VOC_300)
    n = len(priors)
    loc = np.zeros((n, 4), np.float32)
    conf = np.zeros((n, 21), np.float32)
    conf[:, 0] = 10.0  # background everywhere: other classes get p ~ 5e-5 < 0.01
    a, b = 7942, 7943  # the first cell of the 10x10 map: (s_k, s_k) and (s'_k, s'_k), IoU 0.69
    assert (
        box_utils.jaccard(box_utils.point_form(priors[[a]]), box_utils.point_form(priors[[b]]))[
            0, 0
        ]
        > 0.45
    )
    conf[a, 5], conf[b, 5], conf[b, 7] = 20.0, 19.0, 18.0
    loc[a] = [1.0, -1.0, 0.5, 0.0]  # shifted and widened
    model = _fixed_output_model(loc, conf)
    results = detect(model, np.zeros((2, 300, 300, 3), np.float32))
    assert len(results) == 2
    found = results[1]
    assert found["labels"].tolist() == [5, 7]  # b's class 5 suppressed by a; class 7 kept
    assert np.all(np.diff(found["scores"]) <= 0)
    expected = box_utils.decode(loc[[a]], priors[[a]]).numpy()[0]
    np.testing.assert_allclose(found["boxes"][0], np.clip(expected, 0, 1), atol=1e-6)
    assert found["boxes"].min() >= 0.0 and found["boxes"].max() <= 1.0
    assert found["scores"][0] == pytest.approx(
        np.exp(20) / (np.exp(20) + np.exp(10) + 19), rel=1e-5
    )


def test_detect_on_a_real_ssd_returns_well_formed_results(ssd):
    x = np.random.default_rng(0).uniform(-120, 130, (1, 300, 300, 3)).astype(np.float32)
    (found,) = detect(ssd, x)
    k = len(found["scores"])
    assert k > 0 and all(np.sum(found["labels"] == c) <= 200 for c in range(1, 21))  # top_k per class
    assert found["boxes"].shape == (k, 4) and found["labels"].shape == (k,)
    assert found["labels"].min() >= 1 and found["labels"].max() <= 20
    assert found["scores"].min() > 0.01
    with pytest.raises(ValueError, match="priors"):
        detect(ssd, x, config=PriorConfig(feature_maps=(38, 19, 10, 5, 3, 2)))


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def test_overfits_one_image():
    """The loss on one image with two objects falls by 10x: loss, matching and heads agree.

    The VGG16 convs are frozen (as when reusing a trained backbone) to keep the step cheap;
    conv6/conv7, the extras and the heads learn.  268 is the smallest input with all six
    sources (~25 s on 2 CPU cores).
    """
    keras.utils.set_random_seed(0)
    config = PriorConfig(image_size=268, feature_maps=feature_map_sizes(268))
    model = build_ssd300(config=config)
    for name in VGG16_CONV_LAYERS:
        model.get_layer(name).trainable = False
    images = np.random.default_rng(0).uniform(-120, 130, (1, 268, 268, 3)).astype(np.float32)
    targets = [
        {
            "boxes": np.array([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8]], np.float32),
            "labels": np.array([3, 7]),
        }
    ]
    optimizer = keras.optimizers.Adam(1e-3)
    frozen_before = model.get_layer("block1_conv1").kernel.numpy().copy()

    first = train_step(model, optimizer, images, targets, config)  # the eager path, once
    assert np.isfinite(first["loss"]) and first["loss"] > 0
    trainer = SSDTrainer(model, optimizer, config)
    start, losses = time.time(), [first["loss"]]
    for _ in range(40):
        losses.append(trainer(images, targets)["loss"])
        if losses[-1] <= first["loss"] / 10:
            break
    assert losses[-1] <= first["loss"] / 10, f"losses: {np.round(losses, 3).tolist()}"
    np.testing.assert_array_equal(model.get_layer("block1_conv1").kernel.numpy(), frozen_before)
    seconds = time.time() - start
    print(f"overfit: {len(losses)} steps, {seconds:.1f} s, {losses[0]:.2f} -> {losses[-1]:.2f}")
