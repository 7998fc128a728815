"""The bad-input catalogue behind docs/robustness.md: every row is a test.

Two kinds of row:

* `Run`: a command line, built in an empty folder by `setup(folder) -> argv`, that
  `tests/test_robustness.py` runs through `transfer.cli.main` and checks: the exit status, one
  `detstyle: error:` line matching `message` (or a `note` for runs that succeed), no traceback,
  and no file left behind other than those the setup made and `creates` names.
* `ProvenBy`: a case whose check needs more than a command line (a signal, a monkeypatched
  disk, a memory measurement); `test` is the pytest node that proves it, and
  `test_robustness.py` checks that node exists.

`python tests/robustness_cases.py` rewrites docs/robustness.md from this table; a test fails
when the committed file differs, so the document cannot drift from what is tested.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from transfer.limits import LIMIT_HELP, LIMIT_NAMES, Limits

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "robustness.md"
TINY = ["--backbone", "random", "--size", "32", "--steps", "1", "--quiet"]


@dataclasses.dataclass(frozen=True)
class Run:
    id: str
    area: str
    input: str
    expected: str
    setup: Callable[[Path], list[str]]
    exit: int
    message: str  # regex searched in the error line (exit != 0) or in the notes (exit 0)
    creates: tuple[str, ...] = ()  # files a successful or partly successful run may leave

    @property
    def test(self) -> str:
        return f"tests/test_robustness.py::test_command_line_case[{self.id}]"


@dataclasses.dataclass(frozen=True)
class ProvenBy:
    id: str
    area: str
    input: str
    expected: str
    test: str


# ---------------------------------------------------------------------------------------
# Inputs, generated at test time
# ---------------------------------------------------------------------------------------


def png(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(path)
    return path


def pair(d: Path) -> list[str]:
    return [str(png(d / "content.png")), str(png(d / "style.png", seed=1))]


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims `width` x `height` (a decompression bomb costs nothing to make)."""
    data = png(path, (1, 1)).read_bytes()
    ihdr = struct.pack(">II", width, height) + data[24:29]
    patched = data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]
    path.write_bytes(patched)
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def stylize(d: Path, *extra: str, content: str | None = None, style: str | None = None) -> list[str]:
    c, s = pair(d)
    return ["stylize", content or c, style or s, "-o", str(d / "out.png"), *TINY, *extra]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32), "F").save(path)
    return path


def sidecar_broken(d: Path) -> str:
    weights = d / "vgg.weights.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (d / "vgg.json").write_text("{ not json")
    return str(weights)


def with_files(argv: list[str], *made: Path) -> list[str]:
    """`argv`, once the files in `made` exist (they are made when the arguments are evaluated)."""
    assert all(path.exists() for path in made)
    return argv


def existing(path: Path, data: bytes = b"previous") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------

IMAGES = [
    Run("content-missing", "images", "a content path that does not exist", "names the file, exit 1",
        lambda d: stylize(d, content=str(d / "nope.jpg")), 1, r"nope\.jpg: no such file"),
    Run("content-directory", "images", "a directory as the content", "says it is a directory",
        lambda d: stylize(d, content=str(d)), 1, r"is a directory"),
    Run("content-fifo", "images", "a named pipe as the content (would block a reader)",
        "refused before opening it, no hang", lambda d: stylize(d, content=str(fifo(d / "pipe.png"))), 1,
        r"pipe\.png: is not a regular file"),
    Run("content-empty", "images", "an empty file", "says it is empty",
        lambda d: stylize(d, content=str(write(d / "empty.png", b""))), 1, r"empty\.png: file is empty"),
    Run("content-not-image", "images", "a text file named .jpg", "not an image Pillow can read",
        lambda d: stylize(d, content=str(write(d / "notes.jpg", b"hello, not a picture"))), 1,
        r"notes\.jpg: not an image file"),
    Run("content-truncated", "images", "a PNG cut in half", "cannot decode, one line",
        lambda d: stylize(d, content=str(write(d / "half.png", png(d / "full.png").read_bytes()[:200]))), 1,
        r"half\.png: cannot (decode image|read the image header)"),
    Run("content-bomb-header", "images", "a 1 px PNG whose header claims 30000 x 30000 (900 Mpx)",
        "refused from the header before decoding",
        lambda d: stylize(d, content=str(png_claiming(d / "bomb.png", 30000, 30000))), 1,
        r"bomb\.png: the header claims more than [\d,]+ pixels; refused before decoding"),
    Run("content-over-limit-header", "images", "a 1 px PNG whose header claims 12000 x 12000 (144 Mpx)",
        "refused from the header with the limit and how to raise it",
        lambda d: stylize(d, content=str(png_claiming(d / "big.png", 12000, 12000))), 1,
        r"big\.png: decoding this 12000x12000 image needs 144,000,000 pixels, more than the limit of 120,000,000 "
        r"\(raise it with --limit image_pixels=N\)"),
    Run("image-over-lowered-limit", "images", "a 40 x 30 image with --limit image_pixels=1000",
        "the stated limit acts at its value (Pillow's own acts only at twice its)",
        lambda d: stylize(d, "--limit", "image_pixels=1000"), 1, r"needs 1,200 pixels, more than the limit of 1,000"),
    Run("style-missing", "images", "a style path that does not exist", "names the style file",
        lambda d: stylize(d, style=str(d / "gone.png")), 1, r"gone\.png: no such file"),
    Run("style-corrupt", "images", "random bytes as the style", "names the style file",
        lambda d: stylize(d, style=str(write(d / "noise.png", bytes(range(256)) * 4))), 1, r"noise\.png: "),
    Run("init-missing", "images", "--init naming a missing image", "names the init file",
        lambda d: stylize(d, "--init", str(d / "start.png")), 1, r"start\.png: no such file"),
    Run("init-corrupt", "images", "--init naming a corrupt image", "names the init file",
        lambda d: stylize(d, "--init", str(write(d / "start.png", b"\x89PNG\r\n\x1a\n" + bytes(30)))), 1,
        r"start\.png: "),
    Run("float-tiff-nan", "images", "a 32-bit float TIFF holding NaN", "refused, not turned into a flat picture",
        lambda d: stylize(d, content=str(float_tiff(d / "f.tif", np.full((20, 20), np.nan)))), 1,
        r"f\.tif: float image holds NaN"),
    ProvenBy("float-tiff-range", "images", "a 32-bit float TIFF with values in [0, 1] or in another range",
             "read as [0, 1] scaled to 8 bits (not a flat grey), other ranges stretched with a notice",
             "tests/test_robustness.py::test_float_tiff_keeps_its_picture"),
    ProvenBy("image-modes", "images", "16-bit, palette with transparency, RGBA, CMYK, greyscale images",
             "converted to RGB with the right values", "tests/test_images.py::test_other_modes_become_rgb"),
    ProvenBy("exif-rotation", "images", "a JPEG with EXIF orientation 6", "rotated as a viewer shows it",
             "tests/test_images.py::test_exif_rotation_is_applied"),
    ProvenBy("huge-init-jpeg", "resources", "a 24-megapixel JPEG as --init for a 64 px run",
             "decoded at 1/8 scale (Pillow draft): peak memory a fraction of a full decode",
             "tests/test_robustness.py::test_a_huge_jpeg_wanted_small_is_decoded_small"),
]

OPTIONS = [
    Run("steps-zero", "options", "--steps 0", "usage error, exit 2", lambda d: stylize(d, "--steps", "0"), 2,
        r"--steps"),
    Run("size-zero", "options", "--size 0", "usage error, exit 2", lambda d: stylize(d, "--size", "0"), 2, r"--size"),
    Run("seed-negative", "options", "--seed -1", "usage error naming the range (was a numpy traceback)",
        lambda d: stylize(d, "--seed", "-1"), 2, r"--seed must be a whole number from 0 to 4294967295"),
    Run("seed-huge", "options", "--seed 2**70", "usage error naming the range",
        lambda d: stylize(d, "--seed", str(2**70)), 2, r"--seed must be a whole number from 0"),
    Run("weight-inf", "options", "--style-weight inf", "usage error", lambda d: stylize(d, "--style-weight", "inf"), 2,
        r"--style-weight"),
    Run("weight-overflow", "options", "--style-weight 1e300", "usage error: overflows float32 (was a false "
        "'lower --learning-rate' after the run)", lambda d: stylize(d, "--style-weight", "1e300"), 2,
        r"--style-weight 1e\+300 is above 1e\+06"),
    Run("learning-rate-negative", "options", "--learning-rate -1", "usage error",
        lambda d: stylize(d, "--learning-rate", "-1"), 2, r"--learning-rate"),
    Run("blend-weight-zero", "options", "--style a.png:0", "usage error: a blend weight must be > 0",
        lambda d: ["stylize", pair(d)[0], "--style", f"{pair(d)[1]}:0", "-o", str(d / "o.png"), *TINY], 2,
        r"style weight must be > 0"),
    Run("no-style", "options", "a content and no style", "usage error",
        lambda d: ["stylize", pair(d)[0], "-o", str(d / "o.png"), *TINY], 2, r"no style image"),
    Run("unknown-backbone", "options", "--backbone vgg17", "names the choices",
        lambda d: stylize(d, "--backbone", "vgg17"), 1, r"vgg17"),
    Run("ignored-recipe-flag", "options", "--recipe tutorial --style-weight 2", "refused, not dropped (exit 2)",
        lambda d: stylize(d, "--recipe", "tutorial", "--style-weight", "2"), 2, r"--style-weight would be ignored"),
    Run("ignored-fast-flag", "options", "--schedule fast --optimizer lbfgs", "refused, not dropped",
        lambda d: stylize(d, "--schedule", "fast", "--optimizer", "lbfgs"), 2, r"--optimizer would be ignored"),
    Run("ignored-lbfgs-rate", "options", "--optimizer lbfgs --learning-rate 0.1", "refused, not dropped",
        lambda d: stylize(d, "--optimizer", "lbfgs", "--learning-rate", "0.1"), 2, r"--learning-rate would be ignored"),
    Run("preset-of-other-architecture", "options", "--layers stages (a ResNet50 preset) on VGG16",
        "usage error naming the architecture's presets", lambda d: stylize(d, "--layers", "stages"), 2, r"stages"),
    Run("unknown-layer", "options", "--style-layers block9_conv1", "names the layer and the backbone's layers",
        lambda d: stylize(d, "--style-layers", "block9_conv1"), 2, r"block9_conv1"),
    Run("scales-too-many", "options", "--scales 100 at --size 32 (was a TensorFlow traceback)",
        "usage error: how many levels fit", lambda d: stylize(d, "--scales", "100"), 2,
        r"--scales 100 at --size 32: at most 3 pyramid levels"),
    Run("limit-unknown", "options", "--limit pixels=5", "usage error listing the limit names",
        lambda d: stylize(d, "--limit", "pixels=5"), 2, r"--limit 'pixels=5': expected NAME=N with NAME one of"),
    Run("limit-not-a-number", "options", "--limit output_pixels=lots", "usage error",
        lambda d: stylize(d, "--limit", "output_pixels=lots"), 2, r"expected a number"),
    Run("size-tiny", "options", "--size 24 (pyramid levels below 16 px crashed VGG's pools)",
        "runs: the image is padded to a safe size", lambda d: stylize(d, "--size", "24"), 0, r"", ("out.png",)),
    Run("style-scale-tiny", "options", "--style-scale 0.1 at --size 128 (a 13 px style)",
        "runs: the style is stretched to 16 px", lambda d: stylize(d, "--size", "128", "--style-scale", "0.1"), 0, r"",
        ("out.png",)),
    Run("style-strip", "options", "a 400 x 2 style image", "runs: each side stretched to at least 16 px",
        lambda d: stylize(d, style=str(png(d / "strip.png", (400, 2)))), 0, r"", ("out.png",)),
]

RESOURCES = [
    Run("output-too-large", "resources", "--size 100000 (grew past 8 GiB)",
        "refused from the content's header before decoding, naming --limit output_pixels",
        lambda d: stylize(d, "--size", "100000"), 2,
        r"--size 100000: a 100000x75000 output needs 7,500,000,000 pixels, more than the limit of 4,194,304 "
        r"\(raise it with --limit output_pixels=N\)"),
    Run("grid-output-too-large", "resources", "`detstyle grid --size 100000`", "refused before any image is "
        "decoded at that size", lambda d: ["grid", "--contents", pair(d)[0], "--styles", pair(d)[1], "-o",
                                           str(d / "g.png"), *TINY, "--size", "100000"], 2, r"--limit output_pixels"),
    Run("demo-output-too-large", "resources", "`detstyle demo --size 100000`", "refused before the photo is decoded",
        lambda d: ["demo", "--out-dir", str(d / "o"), "--backbone", "random", "--size", "100000", "--quiet"], 2,
        r"--limit output_pixels"),
    Run("output-limit-raised", "resources", "--size 48 with --limit output_pixels=1000",
        "the limit is configurable per command", lambda d: stylize(d, "--size", "48", "--limit", "output_pixels=1000"),
        2, r"a 48x36 output needs 1,728 pixels, more than the limit of 1,000"),
    Run("style-too-large", "resources", "--style-scale 200 at --size 32 (a 6400 px style segfaulted TensorFlow)",
        "runs with the style as large as --limit style_pixels allows, and a note saying so",
        lambda d: stylize(d, "--style-scale", "200", "--limit", "style_pixels=4096"), 0,
        r"asks for a 6400x4800 style, above --limit style_pixels=4096; using 73x55", ("out.png",)),
    ProvenBy("pth-zip-bomb", "resources", "a small .pth whose zip record inflates past the limit",
             "refused while inflating, memory bounded", "tests/test_weights_limits.py::test_zip_bomb_is_refused_within_the_limit"),
    ProvenBy("pth-zero-stride", "resources", "a 7.6 KB .pth tensor with zero strides claiming 10^10 elements",
             "refused from size and stride before allocating",
             "tests/test_weights_limits.py::test_zero_stride_tensor_is_refused_before_allocation"),
]

CHECKPOINTS = [
    Run("checkpoint-missing", "checkpoints", "--backbone naming a missing .pth", "names the file",
        lambda d: stylize(d, "--backbone", str(d / "ssd300.pth")), 1, r"ssd300\.pth"),
    Run("checkpoint-random-bytes", "checkpoints", "a .pth of random bytes", "not a checkpoint, one line",
        lambda d: stylize(d, "--backbone", str(write(d / "x.pth", bytes(np.random.default_rng(0).integers(0, 256, 512, np.uint8))))),
        1, r"x\.pth"),
    Run("checkpoint-empty", "checkpoints", "an empty .pth", "says it is empty",
        lambda d: stylize(d, "--backbone", str(write(d / "e.pth", b""))), 1, r"e\.pth: empty"),
    Run("checkpoint-fifo", "checkpoints", "a named pipe as `weights inspect` input (hung)", "refused at once",
        lambda d: ["weights", "inspect", str(fifo(d / "pipe.pth"))], 1, r"pipe\.pth: .*not a regular file"),
    Run("sidecar-corrupt", "checkpoints", "a .weights.h5 whose JSON sidecar is not JSON (was a traceback)",
        "names the sidecar", lambda d: stylize(d, "--backbone", sidecar_broken(d)), 1, r"vgg\.json: not a readable sidecar"),
    ProvenBy("pickle-unsafe", "checkpoints", "a .pth whose pickle names os.system / builtins.eval",
             "refused before anything is called; nothing runs",
             "tests/test_weights_torch.py::test_malicious_torch_file_is_refused_and_not_run"),
    ProvenBy("pth-truncated", "checkpoints", "a real torch.save file cut at many offsets", "one line each",
             "tests/test_weights_torch.py::test_truncated_files_are_refused_at_every_cut"),
    ProvenBy("checkpoint-nan", "checkpoints", "a checkpoint with NaN weights (was blamed on --learning-rate)",
             "refused at load, naming the tensor", "tests/test_weights_limits.py::test_non_finite_weights_are_refused_naming_the_tensor"),
    ProvenBy("onnx-external-data", "checkpoints", "ONNX external data: absolute path, ../ escape, missing file",
             "refused, naming the location", "tests/test_weights_limits.py::test_onnx_external_data_outside_the_model_folder_is_refused"),
    ProvenBy("onnx-external-relative", "checkpoints", "ONNX external data given relative to the model",
             "read from the model's folder, not the working directory",
             "tests/test_weights_limits.py::test_onnx_external_data_is_read_from_the_model_folder"),
    ProvenBy("keras-archive-error", "checkpoints", "a broken .keras archive", "the error names the .keras file, not a temp path",
             "tests/test_weights_limits.py::test_keras_archive_errors_name_the_archive"),
    ProvenBy("zip-header-lies", "checkpoints", "zip records whose headers cannot be true (stored size differs, "
             "deflate ratio above 1032x, bzip2/lzma records)", "refused before inflating",
             "tests/test_weights_limits.py::test_zip_record_headers_that_cannot_be_true_are_refused"),
    ProvenBy("zip-header-understates", "resources", "a zip record whose header says 64 B over a 2 GiB deflate stream",
             "only the stated bytes are inflated", "tests/test_weights_limits.py::test_zip_record_whose_header_understates_a_bomb_inflates_only_what_it_states"),
    ProvenBy("tensor-past-storage", "checkpoints", "tensor sizes/strides reaching past the storage, negative ones",
             "refused before allocating", "tests/test_weights_limits.py::test_tensor_extent_is_checked_against_its_storage"),
    ProvenBy("legacy-storage-huge", "resources", "a legacy .pth storage claiming 2^40 elements, or more than the file holds",
             "refused before allocating", "tests/test_weights_limits.py::test_legacy_storage_claiming_huge_numel_is_refused_before_allocating"),
    ProvenBy("pickle-bombs", "resources", "pickles claiming 4 GiB bytes, a 2^28 memo index, exponential shared tuples, "
             "100000-deep nesting", "refused by an opcode scan before unpickling: no allocation, no hang",
             "tests/test_weights_limits.py::test_hostile_pickle_is_refused_without_allocating_or_hanging"),
    ProvenBy("h5-links-outside", "checkpoints", "HDF5 external links (one to a FIFO), soft links, external storage, "
             "virtual datasets", "refused at once", "tests/test_weights_limits.py::test_h5_data_outside_the_file_is_refused"),
    ProvenBy("non-regular-files", "checkpoints", "a FIFO, a directory or /dev/zero given to every reader and to the hasher",
             "refused from stat, before opening", "tests/test_weights_limits.py::test_non_regular_files_are_refused_at_once"),
    ProvenBy("png-chunk-lies", "resources", "a 656-byte PNG whose IDAT length claims 2 GiB (Pillow read that much)",
             "reads capped at the file's size: bounded memory",
             "tests/test_fuzz.py::test_png_whose_idat_length_lies_stays_within_the_memory_bound"),
    ProvenBy("h5-dataset-over-limit", "checkpoints", "an HDF5 dataset larger than --limit checkpoint_bytes",
             "refused before reading", "tests/test_weights_limits.py::test_h5_dataset_over_the_limit_is_refused"),
]

OUTPUTS = [
    Run("output-in-proc", "outputs", "-o /proc/out.png (was a traceback after the whole run)",
        "refused before the run: the folder takes no files",
        lambda d: [*stylize(d)[:3], "-o", "/proc/out.png", *TINY], 1, r"/proc/out\.png: output directory /proc does not take new files"),
    Run("output-is-directory", "outputs", "-o an existing directory", "refused before the run",
        lambda d: [*stylize(d)[:3], "-o", str(d), *TINY], 1, r"is a directory; give a file name"),
    Run("output-parent-is-file", "outputs", "-o file.txt/out.png", "refused before the run",
        lambda d: [*stylize(d)[:3], "-o", str(write(d / "file.txt", b"x") / "out.png"), *TINY], 1,
        r"output directory .*file\.txt (does not exist|is not a directory)"),
    Run("output-extension", "outputs", "-o out.xyz", "unsupported extension, before the run",
        lambda d: [*stylize(d)[:3], "-o", str(d / "out.xyz"), *TINY], 1, r"unsupported output extension"),
    Run("output-exists", "outputs", "-o an existing file without --overwrite", "refused; the file is untouched",
        lambda d: [*stylize(d)[:3], "-o", str(existing(d / "out.png")), *TINY], 1, r"already exists; pass --overwrite"),
    Run("gif-exists", "outputs", "--progress-gif when OUTSTEM_progress.gif exists (was overwritten)",
        "refused before the run", lambda d: with_files(stylize(d, "--progress-gif"), existing(d / "out_progress.gif")),
        1, r"out_progress\.gif: already exists"),
    Run("frames-exist", "outputs", "--save-every 1 when OUTSTEM_frames/ exists (was written into)",
        "refused before the run",
        lambda d: with_files(stylize(d, "--save-every", "1"), existing(d / "out_frames" / "step_00001.png")),
        1, r"out_frames: already exists"),
    Run("frames-is-file", "outputs", "OUTSTEM_frames exists as a file", "refused before the run",
        lambda d: with_files(stylize(d, "--save-every", "1"), existing(d / "out_frames")), 1,
        r"out_frames: exists and is not a folder"),
    Run("resume-over-output", "outputs", "--resume when the output exists (was overwritten)",
        "refused unless --overwrite", lambda d: with_files(stylize(d, "--resume"), existing(d / "out.png")), 1,
        r"out\.png: already exists"),
    Run("state-of-another-run", "outputs", "a fresh run where OUTSTEM.ckpt.npz exists (was deleted silently)",
        "refused: --resume continues it, --overwrite discards it",
        lambda d: with_files(stylize(d), existing(d / "out.ckpt.npz")), 1,
        r"out\.ckpt\.npz: the resumable state of an interrupted run is here"),
    Run("demo-outputs-exist", "outputs", "`detstyle demo` into a folder holding demo.png (was overwritten)",
        "refused unless --overwrite (`make demo` passes it)",
        lambda d: ["demo", "--out-dir", str(existing(d / "o" / "demo.png").parent), "--backbone", "random",
                   "--size", "32", "--steps", "1", "--quiet"], 1, r"demo\.png: already exists"),
    Run("demo-out-dir-is-file", "outputs", "`detstyle demo --out-dir FILE`", "refused before the run",
        lambda d: ["demo", "--out-dir", str(existing(d / "o")), "--backbone", "random", "--quiet"], 1,
        r"o: this folder is not a directory"),
    Run("compare-out-dir-is-file", "outputs", "`detstyle compare -o FILE`", "refused before the run",
        lambda d: ["compare", pair(d)[0], "--styles", pair(d)[1], "--backbones", "random", "-o",
                   str(existing(d / "cmp")), "--size", "32", "--steps", "1", "--quiet"], 1, r"cmp: exists and is not a directory"),
    Run("compare-foreign-folder", "outputs", "`detstyle compare -o` a non-empty folder it did not make",
        "refused unless --overwrite",
        lambda d: ["compare", pair(d)[0], "--styles", pair(d)[1], "--backbones", "random", "-o",
                   str(existing(d / "mine" / "notes.txt").parent), "--size", "32", "--steps", "1", "--quiet"], 1,
        r"mine: folder is not empty and was not made by `detstyle compare`"),
    Run("grid-figure-exists", "outputs", "`detstyle grid -o` an existing figure", "refused unless --overwrite",
        lambda d: ["grid", "--contents", pair(d)[0], "--styles", pair(d)[1], "-o", str(existing(d / "g.png")),
                   *TINY], 1, r"g\.png: already exists"),
    ProvenBy("output-appears-during-run", "outputs", "a file created at the output path while the run works",
             "left as it is; the result is kept beside it and the message says where",
             "tests/test_robustness.py::test_a_file_that_appears_during_the_run_is_not_replaced"),
    ProvenBy("disk-full", "outputs", "the final write fails (full disk)", "the result is kept elsewhere and the "
             "message says where; the resumable state stays", "tests/test_robustness.py::test_a_failed_final_write_keeps_the_result"),
    ProvenBy("divergence", "outputs", "a non-finite loss (here: NaN weights injected into the backbone)",
             "the last good image is written and named; the cause is not blamed on --learning-rate",
             "tests/test_robustness.py::test_a_non_finite_loss_writes_the_last_good_image"),
]

INTERRUPTION = [
    Run("resume-without-state", "interruption", "--resume with no saved state", "says there is none",
        lambda d: stylize(d, "--resume"), 1, r"out\.ckpt\.npz: no checkpoint to resume from"),
    Run("resume-corrupt-state", "interruption", "--resume with a state file of random bytes", "one line",
        lambda d: with_files(stylize(d, "--resume"), existing(d / "out.ckpt.npz", b"garbage")), 1,
        r"not a readable detstyle checkpoint"),
    ProvenBy("resume-crafted-state", "interruption", "a state file with crafted metadata (stage, steps, shapes, types)",
             "one line each (was a TypeError)", "tests/test_robustness.py::test_a_crafted_state_is_refused_with_one_line"),
    ProvenBy("resume-other-run", "interruption", "--resume with another --size, backbone seed or precision",
             "refused, naming each field that differs", "tests/test_cli.py::test_resume_after_a_spec_change_is_refused_naming_what_differs"),
    ProvenBy("sigint-mid-run", "interruption", "Ctrl-C mid-run", "state saved, exit 130, --resume finishes",
             "tests/test_cli.py::test_sigint_leaves_checkpoint_and_resume_finishes"),
    ProvenBy("second-sigint", "interruption", "Ctrl-C twice (the second lost the state)",
             "the second only says the state is being saved; the state is saved",
             "tests/test_robustness.py::test_a_second_ctrl_c_still_saves_the_state"),
    ProvenBy("sigint-at-start-up", "interruption", "Ctrl-C in the first second, while TensorFlow loads",
             "one line, exit 130, no traceback", "tests/test_robustness.py::test_ctrl_c_during_start_up_is_one_line"),
]

FUZZING = [
    ProvenBy("fuzz-pth-zip", "fuzzing", "300+ seeded mutations of a torch.save zip .pth",
             "only WeightsError, no hang, bounded memory", "tests/test_fuzz.py::test_fuzz_torch_zip"),
    ProvenBy("fuzz-pth-legacy", "fuzzing", "300+ seeded mutations of a legacy-stream .pth",
             "only WeightsError, no hang, bounded memory", "tests/test_fuzz.py::test_fuzz_torch_legacy"),
    ProvenBy("fuzz-h5", "fuzzing", "300+ seeded mutations of a Keras .h5", "only WeightsError, no hang",
             "tests/test_fuzz.py::test_fuzz_keras_h5"),
    ProvenBy("fuzz-onnx", "fuzzing", "300+ seeded mutations of an ONNX model", "only WeightsError, no hang",
             "tests/test_fuzz.py::test_fuzz_onnx"),
    ProvenBy("fuzz-png", "fuzzing", "300+ seeded mutations of a PNG", "only ImageError, no hang",
             "tests/test_fuzz.py::test_fuzz_png"),
]

CASES: list[Run | ProvenBy] = IMAGES + OPTIONS + RESOURCES + CHECKPOINTS + OUTPUTS + INTERRUPTION + FUZZING
RUNS = [case for case in CASES if isinstance(case, Run)]


def render() -> str:
    """docs/robustness.md: one table row per case, grouped by area, each naming its test."""
    lines = [
        "# Bad input, faults and unsafe files",
        "",
        "Every row is a test; this page is written by `python tests/robustness_cases.py` from the table the",
        "tests run (`tests/robustness_cases.py`), and a test fails when the two differ.  Every error is one line",
        "`detstyle: error: ...` naming the file or option, exit 1 (2 for usage errors), no traceback unless",
        "`--debug`, no partial output, no existing file replaced without `--overwrite`.",
        "",
        "## Limits",
        "",
        "Checked before anything is allocated; each is raised or lowered for one command with `--limit NAME=N`",
        "(`5e6`, `512M` and `8G` are understood), and an error names the limit and that flag.",
        "",
        "| name | default | what it bounds |",
        "|---|---|---|",
        *(f"| `{name}` | {getattr(Limits(), name):,} | {LIMIT_HELP[name]} |" for name in LIMIT_NAMES),
        "",
        f"## {len(CASES)} cases",
    ]
    areas = list(dict.fromkeys(case.area for case in CASES))
    for area in areas:
        lines += ["", f"### {area}", "", "| case | input | expected | test |", "|---|---|---|---|"]
        for case in (c for c in CASES if c.area == area):
            exit_note = f" (exit {case.exit})" if isinstance(case, Run) else ""
            lines.append(f"| `{case.id}` | {case.input} | {case.expected}{exit_note} | `{case.test}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if DOC.read_text(encoding="utf-8") == render() else 1)
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC} ({len(CASES)} cases)")
