"""The SSD300 detector as whole jobs: start it from a backbone, train it resumably, load, detect, evaluate.

Why a job layer: `detstyle train-detector`, `detect`, `eval-detector` and `pipeline` share
every decision here (which priors an input size needs, how an init fills the network, what a
run folder holds, how a trained `.pth` is found again), so the commands only parse and print.

A run folder (RUN_DIR) holds what `detection.train` writes (`ssd300_step<N>.pth`, momentum,
`train_state.json`, `loss.png`) and, from here: `classes.txt` (the class names, label order),
`train_setup.json` (what fixes the data stream and the start: a resumed run must repeat it) and,
once the run is finished, `ssd300_final.pth` (the last checkpoint, hard-linked).

Preprocessing: the detector always sees `rgb_mean` input (RGB minus ssd.pytorch's mean), what
an ssd.pytorch `.pth` means and what `weights.registry` assumes for a torch file; so the trained
`.pth` works in `detect`, `compare` and ssd.pytorch alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

from detection.voc import VOCDataset, read_classes
from models.priors import VOC_300, PriorConfig
from models.vgg16 import VGG16_CONV_LAYERS
from transfer.errors import DetstyleError, UsageError
from weights.registry import FORMAT_PROFILES

#: The profile the detector is trained and run with (that of an ssd.pytorch `.pth`).
DETECTOR_PROFILE = FORMAT_PROFILES["torch"]
FINAL_WEIGHTS = "ssd300_final.pth"
CLASSES_FILE = "classes.txt"
SETUP_FILE = "train_setup.json"
#: The class names of a 21-class (PASCAL VOC) SSD300 such as ssd.pytorch's, in label order.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


# --------------------------------------------------------------------------------------
# Sizes and files
# --------------------------------------------------------------------------------------


def prior_config(size: int) -> PriorConfig:
    """The priors of a `size` x `size` input: VOC_300 at 300, else its scales over the maps `size` gives."""
    from models.ssd300 import feature_map_sizes

    maps = feature_map_sizes(size)
    if min(maps) < 1:
        raise UsageError(f"--size {size} is too small for SSD300 (source maps {maps}); the smallest is 268")
    return VOC_300 if size == VOC_300.image_size else PriorConfig(image_size=size, feature_maps=maps)


def weights_file(name: str) -> Path | None:
    """The file a registry name or path means (verified as the registry says); None for generated weights."""
    from weights.resolver import resolve

    return resolve(name).path


def _full_ssd300(path: Path):
    """The checkpoint when `path` holds a whole ssd.pytorch SSD300, else None (a backbone file)."""
    from weights import detect_format, read_checkpoint
    from weights.torch_pth import SSD_LAYOUT

    if not detect_format(path).startswith("torch"):
        return None
    checkpoint = read_checkpoint(path)
    return checkpoint if checkpoint.layout == SSD_LAYOUT else None


def detector_path(weights: str) -> Path:
    """The file of `--weights` (a path or a registry name); generated weights are no detector."""
    path = weights_file(weights)
    if path is None:
        raise UsageError(f"{weights}: generated weights, not a detector; give a detector's .pth "
                         f"(e.g. RUN_DIR/{FINAL_WEIGHTS} from train-detector)")
    return path


def load_detector(path: Path, size: int | None = None) -> keras.Model:
    """An SSD300 built for the checkpoint's class count (from its conf heads), weights loaded.

    `size`: the input side; default the size the run trained at (`train_setup.json` beside
    the file), else 300.
    """
    from models.ssd300 import build_ssd300
    from transfer.backbones.convert import ssd300_num_classes, ssd300_weights_from_checkpoint
    from transfer.backbones.copy import copy_backbone

    size = size or run_record(path.parent).get("size", VOC_300.image_size)
    config = prior_config(size)
    checkpoint = _full_ssd300(path)
    if checkpoint is None:
        raise DetstyleError(f"{path}: not a whole SSD300 checkpoint (a backbone only?); give a detector's .pth "
                            f"such as RUN_DIR/{FINAL_WEIGHTS}")
    model = build_ssd300(ssd300_num_classes(checkpoint), config, input_size=size)
    copy_backbone(ssd300_weights_from_checkpoint(checkpoint), model)
    return model


def run_record(run_dir: Path) -> dict:
    """RUN_DIR's `train_setup.json` ({} for a folder train-detector did not write, e.g. a downloaded `.pth`'s)."""
    path = run_dir / SETUP_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetstyleError(f"{path}: not a readable training setup ({exc})") from None


def parse_class_list(text: str) -> tuple[str, ...]:
    """`--classes`: a class file (one name per line) or a comma-separated list, lower-cased as VOC does."""
    if Path(text).is_file():
        return read_classes(text)
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise UsageError(f"--classes {text!r}: give distinct names, comma-separated, or a file of names")
    return names


def class_names(weights_path: Path, num_classes: int, given: str | None) -> tuple[str, ...]:
    """The detector's foreground class names: --classes, else RUN_DIR/classes.txt, else VOC's for 21 classes."""
    beside = weights_path.parent / CLASSES_FILE
    if given:
        names = parse_class_list(given)
    elif beside.is_file():
        names = read_classes(beside)
    elif num_classes == len(VOC_CLASSES) + 1:
        names = VOC_CLASSES
    else:
        raise UsageError(f"{weights_path}: a detector for {num_classes - 1} classes with no {CLASSES_FILE} beside "
                         "it; name them with --classes a,b,c or --classes FILE")
    if len(names) != num_classes - 1:
        raise UsageError(f"{len(names)} class names ({', '.join(names)}) for a detector with {num_classes - 1} "
                         f"classes ({weights_path})")
    return names


# --------------------------------------------------------------------------------------
# Where a training run starts
# --------------------------------------------------------------------------------------


def _require_vgg16(init: str, architecture: str) -> None:
    if architecture != "vgg16":
        raise UsageError(f"--init {init}: a {architecture}; the SSD300's base is a VGG16")


def check_init(init: str) -> None:
    """Refuse an --init that names no weights (an absent file, an unknown name) or no VGG16, before any work."""
    from transfer.backbones.load import resolve_backbone

    _require_vgg16(init, resolve_backbone(init).architecture)


def resumable_state(run_dir: Path) -> dict:
    """The checkpoint state a --resume continues; one line when RUN_DIR holds none."""
    from detection.train import STATE_FILE, read_state

    state = read_state(run_dir)
    if state is None:
        raise DetstyleError(f"{run_dir}: no training checkpoint to resume from ({STATE_FILE} is missing)")
    return state


def start_weights(backbone) -> tuple[dict[str, list[np.ndarray]], bool]:
    """A VGG16 backbone's 13 conv layers as the detector starts from them, and whether they were flipped.

    Why the flip: the detector reads RGB (`rgb_mean`); a backbone made for BGR input (`caffe`:
    `vgg16-mri`, `random`) gets block1_conv1's input channels reversed, so the first layer
    computes on RGB what it computed on BGR (the two means differ by under one grey level).
    The detector then starts as the backbone was, and "before" and "after" compare like with like.
    """
    from transfer.backbones.copy import layer_weights
    from weights.registry import get_profile

    _require_vgg16(backbone.name, backbone.ref.architecture)
    weights = {name: list(values) for name, values in layer_weights(backbone.model).items()
               if name in VGG16_CONV_LAYERS}
    flip = get_profile(backbone.profile).channel_order != get_profile(DETECTOR_PROFILE).channel_order
    if flip:
        kernel, *rest = weights["block1_conv1"]
        weights["block1_conv1"] = [np.ascontiguousarray(kernel[:, :, ::-1, :]), *rest]
    return weights, flip


def glorot_initialise(model: keras.Model, seed: int) -> None:
    """Every conv Glorot-uniform, bias 0, drawn from `seed` (ssd.pytorch's xavier init): --seed fixes the start."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel
            height, width, fan_in, filters = kernel.shape
            limit = np.sqrt(6.0 / (height * width * (fan_in + filters)))
            kernel.assign(rng.uniform(-limit, limit, kernel.shape).astype(np.float32))
            layer.bias.assign(np.zeros(layer.bias.shape, np.float32))


def initialise_detector(model: keras.Model, init: str, seed: int) -> str:
    """Fill a new SSD300 from `init` and say what came from where.

    `init`: a whole ssd.pytorch SSD300 `.pth` (every layer whose shape fits: all of them for
    the same classes, all but the conf heads otherwise), or a VGG16 backbone (`vgg16-mri`,
    `random`, any weights file `load_backbone` reads) copied by name into the VGG base.
    Every other layer is Glorot-uniform from `seed`.
    """
    from transfer.backbones.convert import ssd300_weights_from_checkpoint
    from transfer.backbones.copy import copy_backbone
    from transfer.backbones.load import load_backbone

    glorot_initialise(model, seed)
    path = weights_file(init)
    checkpoint = None if path is None else _full_ssd300(path)
    if checkpoint is not None:
        report = copy_backbone(ssd300_weights_from_checkpoint(checkpoint), model, allow_partial=True)
        rest = "" if report.ok else f"; those layers Glorot-uniform from seed {seed}"
        return f"init {init} (a whole SSD300): " + report.summary().replace("\n", "; ") + rest
    weights, flipped = start_weights(load_backbone(init, seed=seed))
    report = copy_backbone(weights, model, layers=VGG16_CONV_LAYERS)
    note = " (block1_conv1's input channels reversed: the backbone read BGR, the detector reads RGB)" if flipped else ""
    return (f"init {init}: {report.summary()}{note}; conv6, conv7, extras and heads Glorot-uniform "
            f"from seed {seed}, l2norm scale 20")


def start_backbone(init: str, seed: int) -> keras.Model:
    """The VGG16 a run from `init` starts with, as a truncated VGG16 (the "before" of the weight movement)."""
    from transfer.backbones.copy import copy_backbone
    from transfer.backbones.load import load_backbone, truncated_vgg16

    model = truncated_vgg16()
    copy_backbone(start_weights(load_backbone(init, seed=seed))[0], model, layers=VGG16_CONV_LAYERS)
    return model


# --------------------------------------------------------------------------------------
# A training run
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """What fixes a run's data stream and start; a resumed run must repeat it exactly."""

    data: str  # the VOC folder, absolute
    split: str
    init: str
    size: int
    batch_size: int
    augment: bool
    seed: int


@dataclasses.dataclass(frozen=True)
class TrainOutcome:
    result: object  # detection.train.TrainResult
    final: Path  # RUN_DIR/ssd300_final.pth


def steps_for_epochs(epochs: int, images: int, batch_size: int) -> int:
    """Steps that show every image `epochs` times (the last batch may be short)."""
    return -(-epochs * images // batch_size)


def prepare_run_dir(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """RUN_DIR checked before any work: it holds a run to resume, or is claimed for a new one.

    A new run refuses a folder holding another training run unless `overwrite`, which discards
    that run's files (state, checkpoint, momentum, final weights) and nothing else.
    """
    from detection.train import STATE_FILE, read_state
    from transfer.io.outputs import claim_directory

    run_dir = Path(run_dir)
    if resume:
        resumable_state(run_dir)
        return run_dir
    run_dir = claim_directory(run_dir, owner="train-detector", overwrite=overwrite)
    state = read_state(run_dir)
    if state is not None and not overwrite:
        raise UsageError(f"{run_dir}: already holds a training run at step {state['step']}; pass --resume to "
                         "continue it, --overwrite to start it again, or choose another directory")
    if state is not None:
        for name in (STATE_FILE, state.get("weights"), state.get("momentum"), FINAL_WEIGHTS):
            if name:
                (run_dir / name).unlink(missing_ok=True)
    return run_dir


def _setup_record(setup: TrainSetup, voc: VOCDataset) -> dict:
    return {**dataclasses.asdict(setup), "classes": list(voc.classes)}


def _check_same_setup(run_dir: Path, record: dict) -> None:
    saved = run_record(run_dir)
    if not saved:
        raise DetstyleError(f"{run_dir}: no {SETUP_FILE}; this run was not started by `detstyle train-detector`")
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in record.items() if saved.get(key) != value]
    if changed:
        raise UsageError(f"{run_dir}: the run was started with other data or start ({'; '.join(changed)}); resume "
                         "with the same --data, --split, --init, size, batch size, augmentation and seed")


def start_detector(voc: VOCDataset, setup: TrainSetup, run_dir: Path, *,
                   resume: bool) -> tuple[keras.Model, str | None]:
    """The network to train, and the init report (None on resume: the checkpoint supplies the weights).

    A new run records `classes.txt` and `train_setup.json` first; a resumed one is checked against them.
    """
    from models.ssd300 import build_ssd300
    from transfer.io.images import atomic_write

    record = _setup_record(setup, voc)
    if resume:
        _check_same_setup(run_dir, record)
    model = build_ssd300(voc.num_classes, prior_config(setup.size), input_size=setup.size)
    if resume:
        return model, None
    report = initialise_detector(model, setup.init, setup.seed)
    atomic_write(run_dir / CLASSES_FILE, lambda tmp: Path(tmp).write_text("".join(f"{c}\n" for c in voc.classes)))
    atomic_write(run_dir / SETUP_FILE, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
    return model, report


def training_batches(voc: VOCDataset, setup: TrainSetup, steps: int, start: int) -> Iterator[tuple]:
    """`(images, loc_t, conf_t)` from batch `start` on, of one stream fixed by the seed.

    Each epoch's order and augmentation depend on `(seed, epoch)` only, so a resumed run sees
    the batches the interrupted one would have seen.  The skipped batches are still made (the
    data pipeline has no way to start later), at the pipeline's cost (augmentation is about
    5 ms an image, `detection.augment`).
    """
    from detection.data import dataset

    epochs = max(1, -(-steps * setup.batch_size // len(voc)))
    stream = dataset(voc, setup.size, setup.batch_size, setup.augment, setup.seed, DETECTOR_PROFILE,
                     epochs=epochs, shuffle=True, config=prior_config(setup.size))
    for images, targets in stream.skip(start):
        yield images, targets["loc_t"], targets["conf_t"]


def _publish_final(checkpoint: Path, final: Path) -> Path:
    """FINAL as a hard link to the last checkpoint (no second 100 MB file), a copy where links fail."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint, tmp)
    except OSError:
        shutil.copyfile(checkpoint, tmp)
    os.replace(tmp, final)
    return final


def train_detector(model: keras.Model, voc: VOCDataset, setup: TrainSetup, config, run_dir: Path, *,
                   resume: bool, callback: Callable | None = None) -> TrainOutcome:
    """Train `model` (from `start_detector`) to `config.steps`, then publish RUN_DIR/ssd300_final.pth.

    Raises `Interrupted` (checkpoint saved, no final file) on Ctrl-C, as `detection.train.train` does.
    """
    from detection.train import read_state, train

    start = read_state(run_dir)["step"] if resume else 0
    result = train(model, training_batches(voc, setup, config.steps, start), config, run_dir, callback, resume)
    return TrainOutcome(result, _publish_final(result.checkpoint, run_dir / FINAL_WEIGHTS))


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def relative_detections(results: Sequence) -> list[dict[str, np.ndarray]]:
    """`detect_images` results as `evaluate` takes them: boxes relative to each image's size."""
    found = []
    for result in results:
        scale = np.array([result.width, result.height] * 2, np.float64)
        boxes = np.array([d.box for d in result.detections], np.float64).reshape(-1, 4) / scale
        found.append({"boxes": boxes, "scores": np.array([d.score for d in result.detections], np.float64),
                      "labels": np.array([d.class_id for d in result.detections], np.int64)})
    return found


def evaluate_detector(model: keras.Model, voc: VOCDataset, profile: str, threshold: float, batch_size: int = 8):
    """VOC AP of every class (`detection.evaluate`) of `model` on `voc`, detected as ssd.pytorch's eval does."""
    from detection.detect import detect_images
    from detection.evaluate import evaluate

    results = detect_images(model, [r.path for r in voc.records], profile, threshold, voc.classes,
                            prior_config(model.input_shape[1]), batch_size)
    return evaluate(relative_detections(results), voc.records, voc.classes)


def evaluation_dict(evaluation) -> dict:
    """The APs as JSON-ready numbers (nan, a class without ground truth, as null)."""
    def number(value: float):
        return None if np.isnan(value) else round(float(value), 6)

    return {"map_voc07": number(evaluation.map_voc07), "map_area": number(evaluation.map_area),
            "classes": [{"name": c.name, "label": c.label, "npos": c.npos, "ap_voc07": number(c.ap_voc07),
                         "ap_area": number(c.ap_area)} for c in evaluation.classes]}
