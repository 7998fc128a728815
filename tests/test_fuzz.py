"""Seeded mutation fuzzing of every checkpoint reader and of the image reader.

Each format starts from one small valid file written by its real writer (torch.save in both
serialisations, h5py, onnx.helper, Pillow), created once per session.  Every case applies one
or two seeded mutations (bit flips, byte runs, boundary integers, truncation, insertion,
deletion; for zips a rewritten header field, for ONNX a parsed initializer given odd dims,
types, data or external references), writes the result to tmp_path and reads it
under `ReadLimits(checkpoint_bytes=64 MiB)`.  A case passes when the read succeeds or raises
the reader's own one-line error (WeightsError; ImageError/DetstyleError for images) within
CASE_SECONDS, and the memory traced during the read (Python and numpy allocations; not the
private buffers of HDF5 or Pillow) stays under MAX_PEAK.

Every case has its own generator, seeded from (SEED, format, index), so a failure message
names what reproduces it: `DETSTYLE_FUZZ_SEED=<seed> DETSTYLE_FUZZ_ONLY=<index> pytest
tests/test_fuzz.py -k <format>` (`DETSTYLE_FUZZ_CASES` sets how many cases; 1000 by default).  No new dependency: `random.Random` drives the mutations.
"""

from __future__ import annotations

import collections
import io
import os
import random
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from test_weights_limits import (
    MIB, Hang, dataset, deadline, keras2_h5, outcome_and_peak, torch_module, torch_save, vgg16_onnx,
)
from weights import WeightsError, read_checkpoint
from weights.errors import first_line
from weights.limits import ReadLimits, using

SEED = int(os.environ.get("DETSTYLE_FUZZ_SEED", "1906"))
CASES = int(os.environ.get("DETSTYLE_FUZZ_CASES", "1000"))
ONLY = os.environ.get("DETSTYLE_FUZZ_ONLY")  # one case index, to reproduce a failure
LIMITS = ReadLimits(checkpoint_bytes=64 * MIB)
MAX_PEAK = 2 * LIMITS.checkpoint_bytes
CASE_SECONDS = 5

# ----------------------------------------------------------------------------- mutations

#: Values that sit on the edges parsers get wrong: zero, one, sign bits, all ones.
_BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**63 - 1)


def _boundary_bytes(rng: random.Random, width: int) -> bytes:
    value = rng.choice(_BOUNDARIES + (rng.getrandbits(8 * width),)) % (1 << (8 * width))
    return value.to_bytes(width, rng.choice(("little", "big")))


def flip_bits(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    out = bytearray(data)
    offsets = [rng.randrange(len(out)) for _ in range(rng.randint(1, 8))]
    for offset in offsets:
        out[offset] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip bits at {offsets}"


def overwrite_run(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    start, length = rng.randrange(len(data)), rng.randint(1, 32)
    run = bytes([rng.choice((0x00, 0xFF, 0x7F, 0x80))]) * length if rng.random() < 0.5 else rng.randbytes(length)
    return data[:start] + run + data[start + length :], f"overwrite {length} bytes at {start}"


def boundary_integer(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    width = rng.choice((1, 2, 4, 8))
    start = rng.randrange(max(1, len(data) - width))
    value = _boundary_bytes(rng, width)
    return data[:start] + value + data[start + width :], f"write {value.hex()} at {start}"


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(len(data))
    return data[:cut], f"truncate at {cut}"


def insert_span(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    start, span = rng.randrange(len(data) + 1), rng.randbytes(rng.randint(1, 64))
    return data[:start] + span + data[start:], f"insert {len(span)} bytes at {start}"


def delete_span(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    start, length = rng.randrange(len(data)), rng.randint(1, 64)
    return data[:start] + data[start + length :], f"delete {length} bytes at {start}"


#: Zip header fields worth lying in: (signature, {field offset: width}).
_ZIP_FIELDS = {
    b"PK\x03\x04": {6: 2, 8: 2, 14: 4, 18: 4, 22: 4, 26: 2, 28: 2},  # flags, method, crc, sizes, name/extra lengths
    b"PK\x01\x02": {8: 2, 10: 2, 16: 4, 20: 4, 24: 4, 28: 2, 30: 2, 32: 2, 42: 4},  # ... and the local header offset
    b"PK\x05\x06": {8: 2, 10: 2, 12: 4, 16: 4, 20: 2},  # entry counts, directory size and offset, comment length
}


def zip_header_field(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Rewrite one field of one local header, central directory entry or end record."""
    headers = [(i, sig) for sig in _ZIP_FIELDS for i in _find_all(data, sig)]
    if not headers:  # an earlier mutation destroyed them all
        return flip_bits(rng, data)
    start, signature = rng.choice(headers)
    offset, width = rng.choice(list(_ZIP_FIELDS[signature].items()))
    old = int.from_bytes(data[start + offset : start + offset + width], "little")
    value = rng.choice((_boundary_bytes(rng, width), ((old * 2) % (1 << 8 * width)).to_bytes(width, "little"),
                        ((old + 1) % (1 << 8 * width)).to_bytes(width, "little")))
    at = start + offset
    return data[:at] + value + data[at + width :], f"zip {signature!r} field +{offset} at {start} := {value.hex()}"


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


#: What a structure-aware ONNX mutation may write: odd dims, types, data sizes, external references.
_ONNX_DIMS = (-1, 0, 3, 2**31, 2**40, 2**62)
_ONNX_TYPES = (0, 1, 7, 10, 11, 16, 99)
_ONNX_LOCATIONS = ("", "missing.bin", "../escape.bin", "/etc/passwd", "/dev/zero", ".", "original.onnx")
_ONNX_NUMBERS = ("0", "4", "-1", "8", "abc", str(2**40))


def onnx_initializer_field(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Parse the model and lie in one initializer: its dims, data type, data length or external data.

    Byte mutations mostly break the protobuf encoding; this reaches the reader's own checks.
    """
    import onnx

    try:
        model = onnx.load_from_string(data)
        tensor = rng.choice(model.graph.initializer)
    except Exception:  # noqa: BLE001 - an earlier mutation broke the encoding: mutate bytes instead
        return flip_bits(rng, data)
    field = rng.choice(("dims", "data_type", "raw_data", "external", "float_data"))
    if field == "dims" and tensor.dims:
        tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice(_ONNX_DIMS)
    elif field == "data_type":
        tensor.data_type = rng.choice(_ONNX_TYPES)
    elif field == "raw_data":
        tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)] + rng.randbytes(rng.randint(0, 8))
    elif field == "external":
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=rng.choice(_ONNX_LOCATIONS))
        for key in rng.sample(("offset", "length"), rng.randint(0, 2)):
            tensor.external_data.add(key=key, value=rng.choice(_ONNX_NUMBERS))
    else:
        tensor.ClearField("raw_data")
        tensor.float_data.extend([1.0] * rng.randint(0, 10))
    return model.SerializeToString(), f"onnx {tensor.name} {field} := {_onnx_field_text(tensor, field)}"


def _onnx_field_text(tensor, field: str) -> str:
    if field == "external":
        return ", ".join(f"{e.key}={e.value}" for e in tensor.external_data)
    if field == "raw_data":
        return f"{len(tensor.raw_data)} bytes"
    if field == "float_data":
        return f"{len(tensor.float_data)} floats"
    return str(list(tensor.dims) if field == "dims" else tensor.data_type)


MUTATIONS: list[Callable[[random.Random, bytes], tuple[bytes, str]]] = [
    flip_bits, overwrite_run, boundary_integer, truncate, insert_span, delete_span,
]


def mutate(rng: random.Random, data: bytes, structured: Callable | None = None) -> tuple[bytes, str]:
    """One or two mutations; `structured` (a format-aware mutation) is picked a third of the time."""
    steps = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        mutation = structured if structured and rng.random() < 1 / 3 else rng.choice(MUTATIONS)
        if data:
            data, how = mutation(rng, data)
            steps.append(how)
    return data, "; ".join(steps)


# ----------------------------------------------------------------------------- running cases


def run_cases(tmp_path: Path, name: str, original: bytes, suffix: str, read: Callable[[Path], object],
              allowed: tuple[type[BaseException], ...], structured: Callable | None = None) -> None:
    """Read CASES mutants of `original`; fail listing every case that broke a rule, with its seed."""
    read(_write(tmp_path / f"original{suffix}", original))  # the fixture itself must read
    indices = [int(ONLY)] if ONLY is not None else range(CASES)
    failures, outcomes = [], collections.Counter()
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for index in indices:
            data, how = mutate(random.Random(f"{SEED}:{name}:{index}"), original, structured)
            path = _write(tmp_path / f"case{index}{suffix}", data)
            problem, outcome = _one_case(path, read, allowed)
            outcomes[outcome] += 1
            if problem:
                failures.append(f"seed={SEED} format={name} case={index} ({how}): {problem}")
            path.unlink()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    print(f"\nfuzz {name}: {len(indices)} cases in {elapsed:.1f} s, seed {SEED}: {dict(outcomes)}")
    again = f"reproduce one with DETSTYLE_FUZZ_SEED={SEED} DETSTYLE_FUZZ_ONLY=<case> pytest tests/test_fuzz.py -k {name.replace('-', '_')}"
    assert not failures, f"{len(failures)} of {len(indices)} cases failed ({again}):\n" + "\n".join(failures[:25])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _one_case(path: Path, read: Callable[[Path], object], allowed: tuple[type[BaseException], ...]) -> tuple[str, str]:
    """`(problem or "", outcome)` for one mutant: the exception type, its message, time and memory."""

    def call() -> object:
        with deadline(CASE_SECONDS), using(LIMITS):
            return read(path)

    started = time.perf_counter()
    result, peak = outcome_and_peak(call)
    seconds = time.perf_counter() - started
    if isinstance(result, Hang):
        return f"no answer within {CASE_SECONDS} s", "hang"
    if isinstance(result, allowed):
        message = str(result)
        if "\n" in message or str(path) not in message:
            return f"message is not one line naming the file: {message[:300]!r}", type(result).__name__
    elif isinstance(result, Exception):
        return f"escaped as {first_line(result, 300)}", "escaped"
    outcome = type(result).__name__ if isinstance(result, Exception) else "read"
    if seconds > CASE_SECONDS:
        return f"took {seconds:.1f} s", outcome
    if peak > MAX_PEAK:
        return f"peak {peak:,} bytes traced, above {MAX_PEAK:,}", outcome
    return "", outcome


def _read_checkpoint(path: Path) -> object:
    return read_checkpoint(path, strict=False)  # lenient: every tensor is materialised, nothing stops early


# ----------------------------------------------------------------------------- fixtures (one per session)


def _small_torch_state():
    """ssd.pytorch-like keys, a few tiny tensors, one sharing its storage with another."""
    torch = torch_module()
    gen = torch.Generator().manual_seed(SEED)
    base = torch.randn(4, 3, 3, 3, generator=gen)
    return collections.OrderedDict([
        ("vgg.0.weight", base), ("vgg.0.bias", torch.randn(4, generator=gen)),
        ("vgg.2.weight", torch.randn(2, 4, 1, 1, generator=gen)), ("vgg.2.bias", base.view(-1)[5:7]),
        ("L2Norm.weight", torch.randn(3, generator=gen).half()),
    ])


@pytest.fixture(scope="session")
def fuzz_originals(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_originals")
    originals = {}
    for legacy in (False, True):
        name = "legacy" if legacy else "zip"
        originals[f"torch-{name}"] = torch_save(_small_torch_state(), folder / f"{name}.pth", legacy).read_bytes()
    rng = np.random.default_rng(SEED)
    originals["keras-h5"] = keras2_h5(folder / "w.h5", {
        "block1_conv1": {"block1_conv1/kernel:0": dataset(rng.standard_normal((3, 3, 3, 4), np.float32),
                                                          compression="gzip", chunks=(3, 3, 3, 2)),
                         "block1_conv1/bias:0": dataset(rng.standard_normal(4, np.float32))},
        "block1_pool": {},
    }).read_bytes()
    vgg16_onnx(folder / "vgg16.onnx", seed=SEED)
    originals["onnx"] = (folder / "vgg16.onnx").read_bytes()
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), np.uint8)).save(png, "PNG")
    originals["png"] = png.getvalue()
    return originals


# ----------------------------------------------------------------------------- one test per format


def test_fuzz_torch_zip(fuzz_originals, tmp_path):
    run_cases(tmp_path, "torch-zip", fuzz_originals["torch-zip"], ".pth", _read_checkpoint, (WeightsError,),
              structured=zip_header_field)


def test_fuzz_torch_legacy(fuzz_originals, tmp_path):
    run_cases(tmp_path, "torch-legacy", fuzz_originals["torch-legacy"], ".pth", _read_checkpoint, (WeightsError,))


def test_fuzz_keras_h5(fuzz_originals, tmp_path):
    pytest.importorskip("h5py")
    run_cases(tmp_path, "keras-h5", fuzz_originals["keras-h5"], ".h5", _read_checkpoint, (WeightsError,))


def test_fuzz_onnx(fuzz_originals, tmp_path):
    pytest.importorskip("onnx")
    run_cases(tmp_path, "onnx", fuzz_originals["onnx"], ".onnx", _read_checkpoint, (WeightsError,),
              structured=onnx_initializer_field)


def test_fuzz_png(fuzz_originals, tmp_path):
    from transfer.errors import DetstyleError, ImageError
    from transfer.io.images import load_image

    run_cases(tmp_path, "png", fuzz_originals["png"], ".png", load_image, (ImageError, DetstyleError))


def test_mutations_change_the_file_and_reproduce():
    """The generator is seeded per case: the same (seed, format, index) gives the same mutant."""
    data = bytes(range(256)) * 4
    first = [mutate(random.Random(f"{SEED}:x:{i}"), data, zip_header_field) for i in range(50)]
    again = [mutate(random.Random(f"{SEED}:x:{i}"), data, zip_header_field) for i in range(50)]
    assert first == again
    assert sum(mutant != data for mutant, _ in first) >= 45


def test_png_whose_idat_length_lies_stays_within_the_memory_bound(fuzz_originals, tmp_path):
    from transfer.errors import DetstyleError
    from transfer.io.images import load_image

    data = fuzz_originals["png"]
    at = data.index(b"IDAT") - 4
    path = _write(tmp_path / "idat.png", data[:at] + struct.pack(">I", 0x7FFF0000) + data[at + 4 :])
    problem, outcome = _one_case(path, load_image, (DetstyleError,))
    assert problem == "", problem
