"""Reading ssd.pytorch `.pth` files without torch: both serialisations, safety, validation.

Fixtures are written at test time by the real writer (`torch.save`, legacy stream and zip
archive) with the full shapes of checkpoint-layouts.md section 1.  torch is a test-only
dependency; tests that need no torch writer run without it.
"""

from __future__ import annotations

import collections
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weights import UnsafeCheckpointError, WeightsError, describe, read_checkpoint
from weights.torch_pth import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    check_layout,
    read_torch_pth,
    reducedfc_shapes,
    ssd300_shapes,
)

ROOT = Path(__file__).resolve().parents[1]
SSD_PARAMS = 26_285_486
REDUCEDFC_PARAMS = 14_714_688 + 1024 * 512 * 9 + 1024 + 1024 * 1024 + 1024

def _torch():
    return pytest.importorskip("torch", reason="torch writes the .pth fixtures (test-only dependency)")


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    return collections.OrderedDict((k, torch.randn(s, generator=gen)) for k, s in shapes.items())


def _expanded_state(shapes: dict[str, tuple[int, ...]]):
    """Full logical shapes from one-element storages (stride 0): tiny files, real shapes."""
    torch = _torch()
    return collections.OrderedDict(
        (k, torch.full((1,) * len(s), float(i)).expand(*s)) for i, (k, s) in enumerate(shapes.items())
    )


def _save(obj, path: Path, legacy: bool) -> Path:
    _torch().save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(scope="module")
def ssd_files(tmp_path_factory):
    """The full-size SSD300 state dict (26.3 M params) saved in both serialisations."""
    state = _random_state(ssd300_shapes(), seed=0)
    base = tmp_path_factory.mktemp("ssd")
    files = {
        "legacy": _save(state, base / "ssd300_legacy.pth", legacy=True),
        "zip": _save(state, base / "ssd300_zip.pth", legacy=False),
    }
    return state, files


# ----------------------------------------------------------------------------- full-size


def test_full_ssd_state_dict_matches_documented_parameter_count():
    shapes = ssd300_shapes()
    assert len(shapes) == 71
    assert sum(int(np.prod(s)) for s in shapes.values()) == SSD_PARAMS
    vgg = {k: s for k, s in shapes.items() if k.startswith("vgg.") and int(k.split(".")[1]) <= 28}
    assert sum(int(np.prod(s)) for s in vgg.values()) == 14_714_688


@pytest.mark.parametrize("serialisation", ["legacy", "zip"])
def test_full_ssd_is_read_bit_exact(ssd_files, serialisation):
    state, files = ssd_files
    path = files[serialisation]
    head = path.read_bytes()[:4]
    assert head == (b"\x80\x02\x8a\x0a" if serialisation == "legacy" else b"PK\x03\x04")
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "ssd300-pth"
    assert ckpt.meta["serialisation"] == serialisation
    assert ckpt.meta["num_classes"] == 21
    assert "notes" not in ckpt.meta
    assert list(ckpt.tensors) == list(state)
    assert ckpt.parameter_count == SSD_PARAMS
    for key, tensor in state.items():
        got = ckpt.tensors[key]
        assert got.dtype == np.float32 and got.shape == tuple(tensor.shape), key
        assert np.array_equal(got, tensor.numpy()), key
        assert got.flags.c_contiguous and got.flags.writeable


def test_full_reducedfc_is_read_bit_exact(tmp_path):
    state = _random_state(reducedfc_shapes(), seed=1)
    path = _save(state, tmp_path / "vgg16_reducedfc.pth", legacy=True)
    ckpt = read_torch_pth(path)
    assert ckpt.layout == "vgg16-reducedfc-pth"
    assert ckpt.parameter_count == REDUCEDFC_PARAMS == 20_483_904
    assert sorted(ckpt.tensors) == sorted(f"{i}.{w}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33) for w in ("weight", "bias"))
    for key, tensor in state.items():
        assert np.array_equal(ckpt.tensors[key], tensor.numpy()), key


def test_truncated_full_size_file_is_refused(ssd_files, tmp_path):
    _, files = ssd_files
    cut = tmp_path / "cut.pth"
    shutil.copyfile(files["legacy"], cut)
    os.truncate(cut, cut.stat().st_size // 2)
    with pytest.raises(WeightsError, match=r"cut\.pth: truncated"):
        read_torch_pth(cut)


def test_library_never_imports_torch(ssd_files):
    _, files = ssd_files
    code = (
        "import sys; import weights; c = weights.read_checkpoint(sys.argv[1]); "
        "assert c.layout == 'ssd300-pth'; assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(files["zip"])], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_describe_reports_layout_classes_and_parameters(ssd_files):
    _, files = ssd_files
    text = describe(read_checkpoint(files["legacy"]))
    assert "layout:      ssd300-pth" in text
    assert "num_classes: 21" in text
    assert "parameters 26,285,486" in text
    assert "legacy pickle stream" in text
    assert "vgg.31.weight" in text and "1024x512x3x3" in text


# ----------------------------------------------------------------------------- variants


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_module_prefix_and_nesting_are_accepted(tmp_path, legacy):
    state = _expanded_state(ssd300_shapes())
    prefixed = collections.OrderedDict(("module." + k, v) for k, v in state.items())
    path = _save({"state_dict": prefixed, "epoch": 3}, tmp_path / "dp.pth", legacy)
    ckpt = read_torch_pth(path)
    assert ckpt.layout == "ssd300-pth"
    assert ckpt.meta["module_prefix_stripped"] is True
    assert ckpt.meta["nested_under"] == "state_dict"
    assert set(ckpt.tensors) == set(ssd300_shapes())
    # stride-0 storages are materialised at full size with the right values
    assert ckpt.tensors["vgg.31.weight"].shape == (1024, 512, 3, 3)
    assert np.all(ckpt.tensors["conf.5.bias"] == float(list(state).index("conf.5.bias")))
    assert ckpt.parameter_count == SSD_PARAMS


def test_model_key_nesting(tmp_path):
    state = _expanded_state(reducedfc_shapes())
    ckpt = read_torch_pth(_save({"model": state}, tmp_path / "m.pth", legacy=False))
    assert ckpt.meta["nested_under"] == "model" and ckpt.layout == "vgg16-reducedfc-pth"


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_num_classes_other_than_voc_is_read_and_reported(tmp_path, legacy):
    state = _expanded_state(ssd300_shapes(num_classes=5))
    ckpt = read_checkpoint(_save(state, tmp_path / "coco5.pth", legacy))
    assert ckpt.layout == "ssd300-pth"
    assert ckpt.meta["num_classes"] == 5
    assert any("num_classes is 5, not 21" in note for note in ckpt.meta["notes"])
    assert ckpt.tensors["conf.1.weight"].shape == (30, 1024, 3, 3)
    assert "num_classes: 5 (not VOC's 21)" in describe(ckpt)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_views_offsets_strides_and_dtypes_round_trip(tmp_path, legacy):
    torch = _torch()
    gen = torch.Generator().manual_seed(2)
    shared = torch.randn(40, generator=gen)
    state = collections.OrderedDict(
        transposed=torch.randn(5, 6, generator=gen).t(),
        offset_view=shared[3:17],
        strided_view=shared[::3],
        same_storage_2d=shared[:20].view(4, 5),
        half=torch.randn(7, generator=gen).half(),
        bfloat16=torch.randn(7, generator=gen).to(torch.bfloat16),
        float64=torch.randn(3, 2, generator=gen).double(),
        int64=torch.arange(-5, 5),
        uint8=torch.arange(250, 256, dtype=torch.uint8),
        boolean=torch.tensor([True, False, True]),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
        parameter=torch.nn.Parameter(torch.randn(4, generator=gen)),
    )
    ckpt = read_torch_pth(_save(state, tmp_path / "mixed.pth", legacy), strict=False)
    assert ckpt.layout == "torch-state-dict"
    for key, tensor in state.items():
        want = tensor.detach()
        want = want.float().numpy() if want.dtype == torch.bfloat16 else want.numpy()
        got = ckpt.tensors[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert np.array_equal(got, want), key
    # tensors sharing one storage are independent copies
    ckpt.tensors["offset_view"][0] = 1e9
    assert ckpt.tensors["same_storage_2d"].ravel()[3] == shared[3].item()


# ----------------------------------------------------------------------------- refusals


class _Evil:
    def __init__(self, how: str, marker: Path) -> None:
        self.how, self.marker = how, marker

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        return (open, (str(self.marker), "w"))


def _legacy_stream(path: Path, obj) -> Path:
    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC_NUMBER, f, protocol=2)
        pickle.dump(LEGACY_PROTOCOL_VERSION, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f, protocol=2)
        pickle.dump(obj, f, protocol=2)
        pickle.dump([], f, protocol=2)
    return path


@pytest.mark.parametrize("how", ["system", "open"])
def test_malicious_plain_legacy_stream_is_refused_and_not_run(tmp_path, how):
    marker = tmp_path / "MARKER"
    path = _legacy_stream(tmp_path / "evil.pth", collections.OrderedDict(w=_Evil(how, marker)))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert ("system" if how == "system" else "io.open") in message
    assert "nothing was executed" in message
    assert not marker.exists()
    # control: the stream really is an exploit for a plain unpickler
    with open(path, "rb") as f:
        for _ in range(3):
            pickle.load(f)
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
@pytest.mark.parametrize("how", ["system", "open"])
def test_malicious_torch_file_is_refused_and_not_run(tmp_path, legacy, how):
    torch = _torch()
    marker = tmp_path / "MARKER"
    state = collections.OrderedDict(w=torch.zeros(2), payload=_Evil(how, marker))
    path = _save(state, tmp_path / "evil.pth", legacy)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="refuses to load: pickle asks for global"):
        read_torch_pth(path, strict=False)
    assert not marker.exists()


def test_plain_pickle_without_magic_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps(_Evil("open", marker), protocol=4))
    with pytest.raises(WeightsError, match="wrong magic bytes 80 04"):
        read_checkpoint(path)
    assert not marker.exists()


def test_global_inside_header_pickle_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil_header.pth"
    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC_NUMBER, f, protocol=2)
        pickle.dump(LEGACY_PROTOCOL_VERSION, f, protocol=2)
        pickle.dump({"little_endian": _Evil("open", marker)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        read_torch_pth(path)
    assert not marker.exists()


def test_wrong_magic_number_after_legacy_prefix(tmp_path):
    path = tmp_path / "magic.pth"
    path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6D, protocol=2) + b"rest")
    assert path.read_bytes()[:4] == b"\x80\x02\x8a\x0a"
    with pytest.raises(WeightsError, match=r"magic\.pth: wrong magic number"):
        read_torch_pth(path)


@pytest.mark.parametrize("content", [b"", b"GARBAGE!" * 4, b"\x89HDF\r\n\x1a\n" + b"\0" * 8])
def test_not_a_torch_file(tmp_path, content):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"x\.pth: (empty file|wrong magic bytes)"):
        read_torch_pth(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        read_torch_pth(tmp_path / "nope.pth")


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_truncated_files_are_refused_at_every_cut(tmp_path, legacy):
    torch = _torch()
    gen = torch.Generator().manual_seed(3)
    state = collections.OrderedDict((f"t{i}", torch.randn(8, 16, generator=gen)) for i in range(6))
    whole = _save(state, tmp_path / "whole.pth", legacy).read_bytes()
    assert read_torch_pth(tmp_path / "whole.pth", strict=False).parameter_count == 6 * 128
    cuts = sorted({1, 2, 3, 4, 5, 8, 15, 16, 40, 100, 300, len(whole) - 100, len(whole) - 9, len(whole) - 1}
                  | set(range(0, len(whole), max(1, len(whole) // 25))) - {0})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(whole[:cut])
        with pytest.raises(WeightsError) as info:
            read_torch_pth(path, strict=False)
        assert str(path) in str(info.value) and "\n" not in str(info.value), cut


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_wrong_key_set_is_refused(tmp_path, legacy):
    state = _expanded_state(ssd300_shapes())
    del state["extras.3.bias"]
    state["priors"] = _torch().zeros(3)
    with pytest.raises(WeightsError, match=r"wrong key set for ssd300-pth: 1 missing key\(s\) extras\.3\.bias; 1 unexpected key\(s\) priors"):
        read_torch_pth(_save(state, tmp_path / "keys.pth", legacy))
    other = collections.OrderedDict(fc=_torch().zeros(3))
    with pytest.raises(WeightsError, match=r"wrong key set: keys match neither"):
        read_torch_pth(_save(other, tmp_path / "other.pth", legacy))
    assert read_torch_pth(tmp_path / "other.pth", strict=False).layout == "torch-state-dict"


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_wrong_shape_is_refused(tmp_path, legacy):
    shapes = ssd300_shapes()
    shapes["vgg.12.weight"] = (256, 256, 5, 5)
    path = _save(_expanded_state(shapes), tmp_path / "shape.pth", legacy)
    with pytest.raises(WeightsError) as info:
        read_torch_pth(path)
    assert str(info.value) == (
        f"{path}: vgg.12.weight has shape (256, 256, 5, 5), expected (256, 256, 3, 3) for ssd300-pth"
    )
    lenient = read_torch_pth(path, strict=False)
    assert lenient.meta["problems"] == [str(info.value)]


# ----------------------------------------------------------------------------- no torch needed


def test_check_layout_every_key_and_classes():
    def arrays(shapes):
        return {k: np.empty(s, np.float32) for k, s in shapes.items()}

    assert check_layout(Path("f"), arrays(ssd300_shapes()), "ssd300-pth") == {"num_classes": 21}
    meta = check_layout(Path("f"), arrays(ssd300_shapes(81)), "ssd300-pth")
    assert meta["num_classes"] == 81 and "81" in meta["notes"][0]
    assert check_layout(Path("f"), arrays(reducedfc_shapes()), "vgg16-reducedfc-pth") == {}
    for key, shape in ssd300_shapes().items():  # every documented shape is checked
        bad = arrays(ssd300_shapes())
        bad[key] = np.empty(shape[:-1] + (shape[-1] + 1,), np.float32)
        with pytest.raises(WeightsError):
            check_layout(Path("f"), bad, "ssd300-pth")
    uneven = arrays(ssd300_shapes())
    uneven["conf.2.weight"] = np.empty((125, 512, 3, 3), np.float32)
    with pytest.raises(WeightsError, match="not a multiple of 6 boxes"):
        check_layout(Path("f"), uneven, "ssd300-pth")
    ints = arrays(reducedfc_shapes())
    ints["0.bias"] = np.zeros(64, np.int64)
    with pytest.raises(WeightsError, match="0.bias has dtype int64"):
        check_layout(Path("f"), ints, "vgg16-reducedfc-pth")
