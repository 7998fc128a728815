"""Hostile checkpoint files: bombs, lying headers, unsafe references, non-regular files, NaN.

Every file is built here at test time (no committed binaries), most by hand so that it can
lie exactly where a reader must not believe it.  Memory is measured with `tracemalloc`, which
sees numpy's and Python's allocations: each refusal must come *before* the allocation the
file asks for, so the peak stays a tiny fraction of what the file claims.  The helpers at the
top are shared with tests/test_fuzz.py.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from weights import WeightsError, describe, detect_format, read_checkpoint, read_keras_h5, read_onnx_vgg16, read_torch_pth
from weights.checksum import file_digest
from weights.limits import ReadLimits, using
from weights.torch_pth import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION
from weights.torch_pth_write import _empty_ordered_dict, _global, _int, _str, _tuple

ROOT = Path(__file__).resolve().parents[1]
MIB, GIB = 2**20, 2**30

# ----------------------------------------------------------------------------- shared helpers


class Hang(Exception):
    """A read that did not return within its time."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the block after `seconds` (SIGALRM: interrupts blocking opens and Python loops)."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome_and_peak(call: Callable[[], Any]) -> tuple[Any, int]:
    """`(result or the exception raised, peak bytes traced while calling)`."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        outcome = call()
    except Exception as exc:  # noqa: BLE001 - the caller checks which
        outcome = exc
    peak = tracemalloc.get_traced_memory()[1] - base
    if started:
        tracemalloc.stop()
    return outcome, peak


def refusal(call: Callable[[], Any], path: Path, *, max_peak: int = 4 * MIB, seconds: float = 20) -> str:
    """The one-line WeightsError message `call` raises for `path`, promptly and within `max_peak` bytes."""
    with deadline(seconds):
        outcome, peak = outcome_and_peak(call)
    assert isinstance(outcome, WeightsError), f"expected a WeightsError, got {outcome!r}"
    message = str(outcome)
    assert message.startswith(str(path)) and "\n" not in message, message
    assert peak < max_peak, f"peak {peak:,} bytes while refusing: {message}"
    return message


# torch pickles, written opcode by opcode (the helpers of weights.torch_pth_write, which writes
# what torch.save writes), so that every number in them can lie.


def storage_id(key: str, numel: int, legacy: bool = False) -> bytes:
    """The persistent id `('storage', torch.FloatStorage, key, 'cpu', numel[, None])`."""
    fields = [_str("storage"), _global("torch", "FloatStorage"), _str(key), _str("cpu"), _int(numel)]
    return _tuple(fields + ([pickle.NONE] if legacy else [])) + pickle.BINPERSID


def tensor_rebuild(storage: bytes, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0) -> bytes:
    arguments = [storage, _int(offset), _tuple([_int(n) for n in size]), _tuple([_int(s) for s in stride]),
                 pickle.NEWFALSE, _empty_ordered_dict()]
    return _global("torch._utils", "_rebuild_tensor_v2") + _tuple(arguments) + pickle.REDUCE


def state_pickle(entries: dict[str, bytes]) -> bytes:
    """An OrderedDict pickle (protocol 2) of `{key: pickled value}`."""
    body = b"".join(_str(key) + value for key, value in entries.items())
    return pickle.PROTO + b"\x02" + _empty_ordered_dict() + pickle.MARK + body + pickle.SETITEMS + pickle.STOP


def one_tensor_pickle(numel: int, size: tuple[int, ...], stride: tuple[int, ...], legacy: bool = False) -> bytes:
    return state_pickle({"vgg.0.weight": tensor_rebuild(storage_id("0", numel, legacy), size, stride)})


def deflated_zeros(mib: int) -> bytes:
    """A raw deflate stream that inflates to `mib` MiB of zeros, ~1 KB per MiB.

    One compressed MiB ends in a full flush (so it refers to nothing before it) and is repeated;
    a final empty block ends the stream: a 2 GiB bomb costs 2 MB and no time to make.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def raw_zip(path: Path, records: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip whose headers say exactly what they are told: `(name, payload, method, file_size, crc)`.

    `payload` is written as is (already deflated for method 8), so `file_size` and `crc` can lie;
    a `file_size` of 4 GiB or more goes in a ZIP64 extra field, as zip writers do.
    """
    local, central = bytearray(), bytearray()
    for name, payload, method, file_size, crc in records:
        raw_name = name.encode()
        extra = struct.pack("<HHQ", 1, 8, file_size) if file_size >= 0xFFFFFFFF else b""
        stated = 0xFFFFFFFF if extra else file_size
        fields = (45 if extra else 20, 0, method, 0, 0x21, crc, len(payload), stated, len(raw_name), len(extra))
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, *fields, 0, 0, 0, 0, len(local)) + raw_name + extra
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + raw_name + extra + payload
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return name, data, zipfile.ZIP_STORED, len(data), zlib.crc32(data)


def pth_zip(path: Path, pickle_bytes: bytes, *storages: tuple[str, bytes, int, int, int]) -> Path:
    """A torch zip archive: `archive/data.pkl`, `archive/byteorder` and the given storage records."""
    return raw_zip(path, [stored("archive/data.pkl", pickle_bytes), stored("archive/byteorder", b"little"),
                          *storages])


def legacy_stream(path: Path, obj_pickle: bytes, keys: list[str], tail: bytes) -> Path:
    """A torch legacy stream: magic, version, sys_info, the object pickle, the key list, then `tail`."""
    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC_NUMBER, f, protocol=2)
        pickle.dump(LEGACY_PROTOCOL_VERSION, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f, protocol=2)
        f.write(obj_pickle)
        pickle.dump(keys, f, protocol=2)
        f.write(tail)
    return path


def torch_module():
    return pytest.importorskip("torch", reason="torch writes the .pth fixtures (test-only dependency)")


def torch_save(state: dict, path: Path, legacy: bool) -> Path:
    torch_module().save(collections.OrderedDict(state), path, _use_new_zipfile_serialization=not legacy)
    return path


def keras2_h5(path: Path, layers: dict[str, dict[str, Callable]]) -> Path:
    """A Keras-2 weights file; `layers[layer][weight_name](group, name)` creates each dataset."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name in layers])
        for layer, weights in layers.items():
            group = f.create_group(layer)
            for name, create in weights.items():
                create(group, name)
            group.attrs["weight_names"] = np.array([name.encode() for name in weights])
    return path


def dataset(array: np.ndarray, **options) -> Callable:
    return lambda group, name: group.create_dataset(name, data=array, **options)


ONNX_KERNEL = "functional_1/block{b}_conv{c}_1/convolution/ReadVariableOp:0"
ONNX_BIAS = "functional_1/block{b}_conv{c}_1/Squeeze:0"
VGG16_CONVS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 1), (4, 2), (4, 3), (5, 1), (5, 2), (5, 3)]


def vgg16_onnx(path: Path, seed: int = 0, external: dict[str, dict[str, str]] | None = None,
               bias_values: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A tiny stand-in of the tf2onnx VGG16 (13 kernels 2x2x1x1 and biases, as initializers).

    `external[name]` turns that initializer into external data with those entries (location,
    offset, length); its bytes are then not in the model.  Returns the initializers by name.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    arrays = {}
    for block, conv in VGG16_CONVS:
        arrays[ONNX_KERNEL.format(b=block, c=conv)] = rng.standard_normal((2, 2, 1, 1)).astype(np.float32)
        arrays[ONNX_BIAS.format(b=block, c=conv)] = rng.standard_normal(2).astype(np.float32)
    if bias_values is not None:
        arrays[ONNX_BIAS.format(b=1, c=1)] = bias_values.astype(np.float32)
    initializers = []
    for name, array in arrays.items():
        tensor = numpy_helper.from_array(array, name)
        if external and name in external:
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in external[name].items():
                tensor.external_data.add(key=key, value=value)
        initializers.append(tensor)
    graph = helper.make_graph([], "vgg16", [], [], initializer=initializers)
    onnx.save(helper.make_model(graph, producer_name="tests"), str(path))
    return arrays


# ----------------------------------------------------------------------------- zip bombs


def test_deflated_zeros_really_inflate():
    """The bomb builder is honest: what the tests below refuse really is that large."""
    stream = deflated_zeros(64)
    assert len(stream) < 70_000
    inflater, total, data = zlib.decompressobj(-15), 0, stream
    while data and not inflater.eof:
        total += len(inflater.decompress(data, MIB))
        data = inflater.unconsumed_tail
    assert total == 64 * MIB


def _bomb_in_a_storage(path: Path) -> Path:
    """16 Mi float32 elements (64 MiB), honestly declared, deflated into 66 KB."""
    numel = 16 * MIB
    bomb = ("archive/data/0", deflated_zeros(64), zipfile.ZIP_DEFLATED, 64 * MIB, zlib.crc32(bytes(64 * MIB)))
    return pth_zip(path, one_tensor_pickle(numel, (numel,), (1,)), bomb)


def _bomb_in_the_pickle_record(path: Path) -> Path:
    bomb = ("archive/data.pkl", deflated_zeros(64), zipfile.ZIP_DEFLATED, 64 * MIB, zlib.crc32(bytes(64 * MIB)))
    return raw_zip(path, [bomb])


def _many_records_each_under_the_limit(path: Path) -> Path:
    """Three 512 KiB storages: each fits a 1 MiB limit, together they do not."""
    numel, data = 128 * 1024, bytes(512 * 1024)
    entries = {f"vgg.{i}.weight": tensor_rebuild(storage_id(str(i), numel), (numel,), (1,)) for i in range(3)}
    return pth_zip(path, state_pickle(entries), *(stored(f"archive/data/{i}", data) for i in range(3)))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_bomb_in_a_storage, r"storage '0' \(16,777,216 elements\) needs 67,10\d,\d{3} bytes, more than the limit "
                             r"of 1,048,576 \(raise it with --limit checkpoint_bytes=N\)"),
        (_bomb_in_the_pickle_record, r"zip record archive/data.pkl needs 67,108,864 bytes, more than the limit"),
        (_many_records_each_under_the_limit, r"the checkpoint up to storage '1' .* needs 1,0\d\d,\d\d\d bytes, more "
                                             r"than the limit of 1,048,576"),
    ],
    ids=["storage-record", "pickle-record", "records-in-total"],
)
def test_zip_bomb_is_refused_within_the_limit(tmp_path, make, expected):
    path = make(tmp_path / "bomb.pth")
    assert path.stat().st_size < 2 * MIB
    with using(ReadLimits(checkpoint_bytes=MIB)):
        message = refusal(lambda: read_checkpoint(path), path, max_peak=MIB // 2)
    assert re.search(expected, message), message


def test_zip_bomb_at_the_default_limit_is_refused_before_inflating(tmp_path):
    """A 2 MB file whose pickle and zip header both say 8 GiB, with a record that really inflates to 2 GiB."""
    numel = 2**31
    bomb = ("archive/data/0", deflated_zeros(2048), zipfile.ZIP_DEFLATED, 8 * GIB, 0)
    path = pth_zip(tmp_path / "bomb.pth", one_tensor_pickle(numel, (numel,), (1,)), bomb)
    assert path.stat().st_size < 2.5 * MIB
    message = refusal(lambda: read_checkpoint(path), path)
    assert re.search(r"storage '0' \(2,147,483,648 elements\) needs 8,589,93\d,\d{3} bytes, more than the limit of "
                     r"4,294,967,296 \(raise it with --limit checkpoint_bytes=N\)", message), message


def test_zip_record_whose_header_understates_a_bomb_inflates_only_what_it_states(tmp_path):
    """The header says 64 bytes, the deflate stream holds 2 GiB: the reader inflates 64 bytes."""
    lying = ("archive/data/0", deflated_zeros(2048), zipfile.ZIP_DEFLATED, 64, zlib.crc32(bytes(64)))
    path = pth_zip(tmp_path / "liar.pth", one_tensor_pickle(16, (16,), (1,)), lying)
    with deadline(20):
        checkpoint, peak = outcome_and_peak(lambda: read_checkpoint(path))
    assert not isinstance(checkpoint, Exception), checkpoint
    assert np.array_equal(checkpoint.tensors["vgg.0.weight"], np.zeros(16, np.float32))
    assert peak < 2 * MIB, peak


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (("archive/data/0", b"\x03\x00" * 50, zipfile.ZIP_DEFLATED, 2**31, 0),
         r"claims 2,147,483,648 bytes from 100 deflated bytes; its header lies"),
        (("archive/data/0", b"x" * 100, zipfile.ZIP_STORED, 2**20, 0),
         r"claims 1,048,576 bytes from 100 stored bytes; its header lies"),
        (("archive/data/0", bytes(100), zipfile.ZIP_BZIP2, 64, 0), r"uses compression method 12; only stored and deflated"),
        (("archive/data/0", bytes(100), zipfile.ZIP_DEFLATED, 64, 0), r"corrupt or truncated storage record"),
    ],
    ids=["deflate-ratio", "stored-size", "bzip2", "bad-deflate"],
)
def test_zip_record_headers_that_cannot_be_true_are_refused(tmp_path, record, expected):
    path = pth_zip(tmp_path / "liar.pth", one_tensor_pickle(16, (16,), (1,)), record)
    assert re.search(expected, refusal(lambda: read_checkpoint(path), path)), record


# ----------------------------------------------------------------------------- tensors against storages


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_zero_stride_tensor_is_refused_before_allocation(tmp_path, legacy):
    """torch.save of a 1-element storage expanded to 100000 x 100000 (stride 0): 10**10 elements."""
    torch = torch_module()
    path = torch_save({"vgg.0.weight": torch.zeros(1).expand(100_000, 100_000)}, tmp_path / "wide.pth", legacy)
    assert path.stat().st_size < 10_000
    message = refusal(lambda: read_checkpoint(path), path, max_peak=MIB)
    assert ("tensor 'vgg.0.weight' (offset 0, size (100000, 100000), stride (0, 0)) has 10,000,000,000 elements "
            "but its storage holds 1; a state-dict tensor never has more elements than its storage") in message


@pytest.mark.parametrize(
    ("numel", "size", "stride", "expected"),
    [
        (16, (4, 4), (1, 1), None),  # overlapping rows inside the storage: read as torch views it
        (16, (5, 4), (4, 1), r"has 20 elements but its storage holds 16"),
        (16, (2, 4), (8, 3), r"reads past its storage of 16 elements"),
        (16, (4,), (-1,), r"size \(4,\) with stride \(-1,\)"),
        (16, (-4,), (1,), r"size \(-4,\) with stride \(1,\)"),
    ],
    ids=["overlap", "more-than-storage", "past-the-end", "negative-stride", "negative-size"],
)
def test_tensor_extent_is_checked_against_its_storage(tmp_path, numel, size, stride, expected):
    data = np.arange(numel, dtype="<f4").tobytes()
    path = pth_zip(tmp_path / "t.pth", one_tensor_pickle(numel, size, stride), stored("archive/data/0", data))
    outcome, _ = outcome_and_peak(lambda: read_checkpoint(path))
    if expected is None:
        assert not isinstance(outcome, Exception), outcome
        assert outcome.tensors["vgg.0.weight"][3, 3] == 6.0
        return
    assert isinstance(outcome, WeightsError) and re.search(expected, str(outcome)), outcome


def test_tensor_over_the_element_limit_is_refused(tmp_path):
    torch = torch_module()
    path = torch_save({"vgg.0.weight": torch.ones(64, 64)}, tmp_path / "big.pth", legacy=False)
    with using(ReadLimits(tensor_elements=1000)):
        message = refusal(lambda: read_checkpoint(path), path)
    assert "needs 4,096 elements, more than the limit of 1,000 (raise it with --limit tensor_elements=N)" in message


@pytest.mark.parametrize(
    ("numel", "expected"),
    [
        (2**40, r"storage '0' \(1,099,511,627,776 elements\) needs 4,398,046,511,104 bytes, more than the limit"),
        (2**26, r"truncated file: the pickle names storages of 268,435,456 bytes but only 72 bytes follow it"),
        (-5, r"storage '0' \(-5 elements\) has a negative size"),
    ],
    ids=["over-the-limit", "past-the-end-of-file", "negative"],
)
def test_legacy_storage_claiming_huge_numel_is_refused_before_allocating(tmp_path, numel, expected):
    obj = one_tensor_pickle(numel, (4,), (1,), legacy=True)
    path = legacy_stream(tmp_path / "legacy.pth", obj, ["0"], struct.pack("<q", numel) + bytes(64))
    message = refusal(lambda: read_checkpoint(path), path)
    assert re.search(expected, message), message


# ----------------------------------------------------------------------------- hostile pickles


def _doubling_tuples(levels: int) -> bytes:
    """t0 = (); t[i] = (t[i-1], t[i-1]), each through the memo; t[levels] as a dict key.

    A few bytes per level, but hashing the key visits 2**levels tuples: a hang in C."""
    body = pickle.EMPTY_TUPLE + pickle.BINPUT + b"\x00"
    for i in range(1, levels + 1):
        body += pickle.POP + pickle.BINGET + bytes([i - 1]) + pickle.BINGET + bytes([i - 1]) + pickle.TUPLE2
        body += pickle.BINPUT + bytes([i])
    return pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + body + pickle.NONE + pickle.SETITEM + pickle.STOP


HOSTILE_PICKLES = {
    # BINBYTES claiming 4 GiB: the C unpickler allocates the claim before reading
    "bytes-claim": (pickle.PROTO + b"\x02" + pickle.BINBYTES + struct.pack("<I", 0xF0000000) + b"abc",
                    r"state dict pickle ends early"),
    # LONG_BINPUT 2**28: the C unpickler grows (and zeroes) a 2 GiB memo table
    "memo-index": (pickle.PROTO + b"\x02" + pickle.NONE + pickle.LONG_BINPUT + struct.pack("<I", 2**28)
                   + pickle.STOP, r"memo index 268,435,456 at byte 3 is beyond any real pickle's memo"),
    "shared-tuples": (_doubling_tuples(60), r"expands to \d[\d,]* nodes through shared references"),
    # 100000 nested 1-tuples as a dict key: hashing recurses in C past the stack's end
    "deep-nesting": (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.EMPTY_TUPLE + pickle.TUPLE1 * 100_000
                     + pickle.NONE + pickle.SETITEM + pickle.STOP, r"objects nested more than 100 levels deep"),
}


@pytest.mark.parametrize("case", list(HOSTILE_PICKLES))
def test_hostile_pickle_is_refused_without_allocating_or_hanging(tmp_path, case):
    """Run in a child process: without the scan these hang, crash or allocate gigabytes."""
    data, expected = HOSTILE_PICKLES[case]
    path = pth_zip(tmp_path / f"{case}.pth", data)
    code = (
        "import json, sys, tracemalloc; from weights import read_checkpoint, WeightsError\n"
        "tracemalloc.start()\n"
        "try:\n    read_checkpoint(sys.argv[1]); outcome = 'read'\n"
        "except WeightsError as exc:\n    outcome = str(exc)\n"
        "print(json.dumps([outcome, tracemalloc.get_traced_memory()[1]]))\n"
    )
    child = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    message, peak = json.loads(child.stdout)
    assert message.startswith(str(path)) and re.search(expected, message), message
    assert peak < 8 * MIB, peak


# ----------------------------------------------------------------------------- HDF5


@pytest.mark.parametrize(
    ("layers", "expected", "max_peak"),
    [
        ({"conv": {"kernel:0": dataset(np.zeros((4096, 4096), np.float32), compression="gzip")}},
         r"dataset conv/kernel:0 needs 67,108,\d{3} bytes, more than the limit of 16,777,216 "
         r"\(raise it with --limit checkpoint_bytes=N\)", 2 * MIB),
        ({f"conv{i}": {"kernel:0": dataset(np.zeros((1024, 1024 + i), np.float32), compression="gzip")}
          for i in range(5)},
         r"the checkpoint up to dataset conv3/kernel:0 needs 16,\d{3},\d{3} bytes, more than the limit of 16,777,216",
         16 * MIB),  # three datasets are read before the fourth is refused: the peak stays under the limit
    ],
    ids=["one-gzip-dataset", "datasets-in-total"],
)
def test_h5_dataset_over_the_limit_is_refused(tmp_path, layers, expected, max_peak):
    path = keras2_h5(tmp_path / "big.h5", layers)
    assert path.stat().st_size < 1 * MIB
    with using(ReadLimits(checkpoint_bytes=16 * MIB)):
        message = refusal(lambda: read_checkpoint(path), path, max_peak=max_peak)
    assert re.search(expected, message), message


def _external_link_to_a_fifo(folder: Path) -> dict:
    import h5py

    os.mkfifo(folder / "pipe.h5")
    return {"conv": {"kernel:0": lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(folder / "pipe.h5"), "/x"))}}


def _soft_link(folder: Path) -> dict:
    import h5py

    return {"conv": {"real": dataset(np.ones(3, np.float32)), "kernel:0": lambda g, n: g.__setitem__(n, h5py.SoftLink("/conv/real"))}}


def _external_storage(folder: Path) -> dict:
    outside = folder / "outside.bin"
    outside.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    return {"conv": {"kernel:0": lambda g, n: g.create_dataset(n, shape=(4,), dtype="<f4",
                                                               external=[(str(outside), 0, 16)])}}


def _virtual_dataset(folder: Path) -> dict:
    import h5py

    source = folder / "source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.arange(4, dtype=np.float32)
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(4,))
    return {"conv": {"kernel:0": lambda g, n: g.create_virtual_dataset(n, layout)}}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_external_link_to_a_fifo, r"'kernel:0' goes through an external link"),
        (_soft_link, r"'kernel:0' goes through a soft link"),
        (_external_storage, r"conv/kernel:0 keeps its data outside the file"),
        (_virtual_dataset, r"conv/kernel:0 keeps its data outside the file"),
    ],
    ids=["external-link-to-fifo", "soft-link", "external-storage", "virtual-dataset"],
)
def test_h5_data_outside_the_file_is_refused(tmp_path, make, expected):
    pytest.importorskip("h5py")
    path = keras2_h5(tmp_path / "refs.h5", make(tmp_path))
    assert re.search(expected, refusal(lambda: read_checkpoint(path), path, seconds=5))


# ----------------------------------------------------------------------------- ONNX external data


def _external(location: str, data: bytes | None = None, **entries: str) -> Callable[[Path], dict]:
    """Make `location` (relative to the model's folder, unless absolute) hold `data`, then point a bias at it."""

    def make(folder: Path) -> dict:
        if data is not None:
            target = Path(location) if os.path.isabs(location) else folder / location
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return {ONNX_BIAS.format(b=1, c=1): {"location": location, **entries}}

    return make


def _symlink_out(folder: Path) -> dict:
    (folder.parent / "secret.bin").write_bytes(bytes(8))
    (folder / "link.bin").symlink_to(folder.parent / "secret.bin")
    return {ONNX_BIAS.format(b=1, c=1): {"location": "link.bin"}}


def _fifo_beside(folder: Path) -> dict:
    os.mkfifo(folder / "pipe.bin")
    return {ONNX_BIAS.format(b=1, c=1): {"location": "pipe.bin"}}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda folder: _external(str(folder.parent / "abs.bin"), bytes(8))(folder),
         r"an external data location must be a file name relative to the model"),
        (_external("../escape.bin", bytes(8)), r"'../escape.bin', outside the model's folder .*; refused"),
        (_external("sub/../../escape.bin", bytes(8)), r"outside the model's folder"),
        (_symlink_out, r"'link.bin', outside the model's folder"),
        (_external("missing.bin"), r"'missing.bin', which does not exist \(looked in "),
        (_fifo_beside, r"'pipe.bin', which is not a regular file"),
        (_external("short.bin", bytes(4)), r"4 bytes at offset 0 do not fit its 4 bytes and the 8 bytes the shape needs"),
        (_external("offset.bin", bytes(8), offset="4"), r"do not fit"),
    ],
    ids=["absolute", "parent-escape", "nested-escape", "symlink-out", "missing", "fifo", "too-short", "offset-past-end"],
)
def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path, make, expected):
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "vgg16.onnx"
    vgg16_onnx(path, external=make(folder))
    message = refusal(lambda: read_checkpoint(path), path, seconds=5)
    assert re.search(expected, message), message


def test_onnx_external_data_is_read_from_the_model_folder(tmp_path, monkeypatch):
    """A relative location is the model's folder's file, not the same name in the working directory."""
    folder, elsewhere = tmp_path / "model", tmp_path / "cwd"
    folder.mkdir(), elsewhere.mkdir()
    mine = np.array([1.5, -2.5], np.float32)
    (folder / "bias.bin").write_bytes(mine.tobytes())
    (elsewhere / "bias.bin").write_bytes(np.array([9.0, 9.0], np.float32).tobytes())  # a decoy
    name = ONNX_BIAS.format(b=1, c=1)
    arrays = vgg16_onnx(folder / "vgg16.onnx", external={name: {"location": "bias.bin", "length": "8"}})
    monkeypatch.chdir(elsewhere)
    checkpoint = read_checkpoint(Path("..") / "model" / "vgg16.onnx")
    assert np.array_equal(checkpoint.tensors["block1_conv1/bias"], mine)
    kernel = arrays[ONNX_KERNEL.format(b=1, c=2)]
    assert np.array_equal(checkpoint.tensors["block1_conv2/kernel"], kernel.transpose(2, 3, 1, 0))


def test_onnx_initializer_over_the_limits_is_refused(tmp_path):
    path = tmp_path / "vgg16.onnx"
    vgg16_onnx(path, bias_values=np.zeros(5000))
    with using(ReadLimits(tensor_elements=4096)):
        assert "needs 5,000 elements, more than the limit of 4,096" in refusal(lambda: read_checkpoint(path), path)
    with using(ReadLimits(checkpoint_bytes=1000)):
        assert "the ONNX model file needs" in refusal(lambda: read_checkpoint(path), path)


# ----------------------------------------------------------------------------- not regular files


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.pth")
    return tmp_path / "pipe.pth"


READERS = {
    "read_checkpoint": read_checkpoint,
    "detect_format": detect_format,
    "read_torch_pth": read_torch_pth,
    "read_keras_h5": read_keras_h5,
    "read_onnx_vgg16": read_onnx_vgg16,
    "file_digest": file_digest,
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_fifo, r"pipe\.pth: is not a regular file"),
        (lambda tmp_path: tmp_path, r": is a directory, not a checkpoint file"),
        (lambda tmp_path: Path("/dev/zero"), r"/dev/zero: is not a regular file"),
    ],
    ids=["fifo", "directory", "dev-zero"],
)
def test_non_regular_files_are_refused_at_once(tmp_path, make, expected, reader):
    path = make(tmp_path)
    message = refusal(lambda: READERS[reader](path), path, seconds=5)
    assert re.search(expected, message), message


# ----------------------------------------------------------------------------- NaN / inf


def _nan_pth(tmp_path: Path, legacy: bool) -> tuple[Path, str]:
    torch = torch_module()
    weight = torch.zeros(4, 3, 3, 3)
    weight.view(-1)[:12] = float("nan")
    state = {"vgg.0.weight": weight, "vgg.0.bias": torch.zeros(4)}
    return torch_save(state, tmp_path / "nan.pth", legacy), "vgg.0.weight"


def _inf_h5(tmp_path: Path) -> tuple[Path, str]:
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    kernel.flat[:12] = [np.inf, -np.inf, np.nan] * 4
    path = keras2_h5(tmp_path / "inf.h5", {"block1_conv1": {"kernel:0": dataset(kernel), "bias:0": dataset(np.zeros(4))}})
    return path, "block1_conv1/kernel"


def _nan_onnx(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "nan.onnx"
    vgg16_onnx(path, bias_values=np.array([np.nan] * 12 + [0.0]))
    return path, "block1_conv1/bias"


@pytest.mark.parametrize(
    "make",
    [lambda p: _nan_pth(p, legacy=False), lambda p: _nan_pth(p, legacy=True), _inf_h5, _nan_onnx],
    ids=["pth-zip", "pth-legacy", "keras-h5", "onnx"],
)
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, make):
    path, name = make(tmp_path)
    message = refusal(lambda: read_checkpoint(path), path)
    assert message == f"{path}: tensor {name} has 12 non-finite values (NaN/inf); the checkpoint is corrupt"
    lenient = read_checkpoint(path, strict=False)  # what `weights inspect` can show
    assert lenient.meta["problems"] == [message]
    assert f"problem:     {message}" in describe(lenient)


def test_non_finite_check_is_cheap_on_100m_elements():
    from weights.checkpoint import non_finite_count
    import time

    array = np.ones(100_000_000, np.float32)
    array[[5, -1]] = [np.nan, np.inf]
    started = time.perf_counter()
    assert non_finite_count(array) == 2
    elapsed = time.perf_counter() - started
    _, peak = outcome_and_peak(lambda: non_finite_count(array))
    assert elapsed < 1.0 and peak < 16 * MIB, (elapsed, peak)  # ~0.03 s; 4 MiB masks, not a 100 MB one


# ----------------------------------------------------------------------------- .keras archives


def _keras_zip(path: Path, member: bytes | None, **options) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        if member is not None:
            archive.writestr("model.weights.h5", member, **options)
    return path


def _truncated_h5(tmp_path: Path) -> bytes:
    path = keras2_h5(tmp_path / "w.h5", {"conv": {"kernel:0": dataset(np.ones((64, 64), np.float32))}})
    return path.read_bytes()[:3000]


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (lambda tmp_path: b"not an hdf5 file", r"\(model\.weights\.h5\): not a readable HDF5 file"),
        (_truncated_h5, r"\(model\.weights\.h5\): "),
        (lambda tmp_path: None, r": \.keras archive has no model\.weights\.h5"),
        (lambda tmp_path: bytes(4 * MIB), r"zip record model\.weights\.h5 needs 4,194,304 bytes, more than the limit"),
    ],
    ids=["not-hdf5", "truncated-hdf5", "no-weights", "member-over-limit"],
)
def test_keras_archive_errors_name_the_archive(tmp_path, member, expected):
    path = _keras_zip(tmp_path / "model.keras", member(tmp_path))
    with using(ReadLimits(checkpoint_bytes=MIB)):
        message = refusal(lambda: read_checkpoint(path), path, max_peak=2 * MIB)
    assert re.search(expected, message), message
    assert "tmp" not in message.replace(str(path), ""), f"names a temporary file: {message}"
