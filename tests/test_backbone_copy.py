import numpy as np
import pytest

from models.vgg16 import VGG16, VGG16_CONV_LAYERS, until_stage5
from transfer.backbones.copy import BackboneMismatchError, copy_backbone, layer_weights


def _randomise(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.weights])


def test_copy_from_model_is_bit_exact_and_reported():
    source, target = until_stage5(VGG16()), until_stage5(VGG16())
    _randomise(source, 1)
    report = copy_backbone(source, target)
    assert report.copied == list(VGG16_CONV_LAYERS)
    assert report.ok and not report.unused
    for name in VGG16_CONV_LAYERS:
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_copy_from_dict_reports_unused_and_missing_with_partial():
    target = until_stage5(VGG16())
    weights = layer_weights(target)
    weights.pop("block5_conv3")
    weights["conv6"] = [np.zeros((3, 3, 512, 1024), np.float32), np.zeros(1024, np.float32)]
    report = copy_backbone(weights, target, allow_partial=True)
    assert report.missing == ["block5_conv3"]
    assert report.unused == ["conv6"]
    assert len(report.copied) == 12
    assert "missing in source" in report.summary()


def test_shape_mismatch_is_refused_and_nothing_is_copied():
    target = until_stage5(VGG16())
    before = target.get_layer("block1_conv1").get_weights()[0].copy()
    weights = {name: [w + 1.0 for w in ws] for name, ws in layer_weights(target).items()}
    weights["block2_conv1"] = [np.zeros((3, 3, 64, 64), np.float32), np.zeros(64, np.float32)]
    with pytest.raises(BackboneMismatchError, match="block2_conv1"):
        copy_backbone(weights, target)
    np.testing.assert_array_equal(target.get_layer("block1_conv1").get_weights()[0], before)


def test_missing_layer_is_refused_without_partial():
    target = until_stage5(VGG16())
    weights = layer_weights(target)
    del weights["block3_conv2"]
    with pytest.raises(BackboneMismatchError, match="block3_conv2"):
        copy_backbone(weights, target)
