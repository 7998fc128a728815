"""`detstyle make-voc`, `train-detector`, `detect`, `eval-detector`: the SSD300 detector from the command line.

Each command parses, checks its inputs and claims its outputs before any work, calls
`transfer.jobs.detector` (or `detection.*`), and prints what it did.  A bad dataset (corrupt
XML, a box outside its image, an unknown class, an empty image set) is one `detstyle: error:`
line from `detection.voc.read_voc`; nothing is overwritten without --overwrite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from transfer.cli.options import non_negative_float, positive_int
from transfer.core.spec import PRECISIONS
from transfer.errors import DetstyleError, OutputExists
from weights.registry import PREPROCESSING_PROFILES

SHAPES_HELP = "disc, square, triangle, star, ring"
DEFAULT_DETECTIONS = "detections"


def fraction(text: str) -> float:
    """A score threshold: a number from 0 to 1."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_commands(sub) -> None:
    _add_make_voc(sub)
    _add_train(sub)
    _add_detect(sub)
    _add_eval(sub)


def _parser(sub, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, epilog="examples:\n" + examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


# --------------------------------------------------------------------------------------
# make-voc
# --------------------------------------------------------------------------------------


def _add_make_voc(sub) -> None:
    p = _parser(sub, "make-voc", "write a small VOC-format detection set (drawn shapes on real photos)",
                "Write N images of textured shapes pasted on crops of real photographs, with VOC annotations "
                "(1-based boxes of the visible pixels, truncated and difficult flags), instance masks, the "
                "trainval/train/val splits and classes.txt.  The same --seed gives the same files.",
                "  detstyle make-voc shapes/ --images 200 --seed 0\n"
                "  detstyle make-voc tiny/ --images 4 --size 268 --classes disc,square,triangle")
    p.add_argument("out_dir", metavar="OUT_DIR", help="destination folder (absent or empty unless --overwrite)")
    p.add_argument("--images", type=positive_int, required=True, metavar="N", help="how many images")
    p.add_argument("--seed", type=int, default=0, help="fixes every pixel and box (default 0)")
    p.add_argument("--size", type=positive_int, default=300,
                   help="long side of each image in pixels, 32..4096 (default 300; the short side is 75-100%% of it)")
    p.add_argument("--classes", default=None,
                   help=f"comma-separated shapes to draw, in label order (default all: {SHAPES_HELP})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a generated set in OUT_DIR (only its Annotations/, JPEGImages/, "
                        "SegmentationObject/, ImageSets/ and classes.txt)")
    p.set_defaults(func=cmd_make_voc)


def cmd_make_voc(args: argparse.Namespace) -> int:
    import numpy as np

    from detection.make_voc import SHAPES, make_voc
    from transfer.io.outputs import check_can_create

    out = Path(args.out_dir)
    check_can_create(out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise OutputExists(f"{out}: folder is not empty; choose a new folder or pass --overwrite to replace a "
                           "generated set there")
    classes = SHAPES if args.classes is None else tuple(c.strip() for c in args.classes.split(",") if c.strip())
    voc = make_voc(out, args.images, args.seed, args.size, classes, overwrite=args.overwrite)
    labels = np.concatenate([r.labels for r in voc.records])
    difficult = int(sum(r.difficult.sum() for r in voc.records))
    counts = ", ".join(f"{name} {int(np.sum(labels == i))}" for i, name in enumerate(voc.classes, 1))
    print(f"wrote {len(voc)} images, {len(labels)} objects ({counts}; {difficult} difficult) to {out}: "
          "Annotations/, JPEGImages/, SegmentationObject/, ImageSets/Main/{trainval,train,val}.txt, classes.txt")
    return 0


# --------------------------------------------------------------------------------------
# train-detector (its options and steps are shared with `pipeline`)
# --------------------------------------------------------------------------------------


def add_train_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The options of a detector training run.

    `prefix` ("train-") renames the flags `pipeline` also has for its stylisation (--steps,
    --epochs, --size, --precision); the destinations are the same either way.
    """
    g = parser.add_argument_group("detector training")
    g.add_argument("--data", required=True, metavar="VOC_DIR",
                   help="a VOC-format folder (Annotations/, JPEGImages/, ImageSets/Main/, classes.txt), "
                        "e.g. from `detstyle make-voc`")
    g.add_argument("--split", default="trainval", help="the image set to train on (default trainval)")
    length = g.add_mutually_exclusive_group()
    length.add_argument(f"--{prefix}steps", dest="train_steps", type=positive_int, default=None, metavar="N",
                        help="SGD steps in all (ssd.pytorch: 120000)")
    length.add_argument(f"--{prefix}epochs", dest="train_epochs", type=positive_int, default=None, metavar="N",
                        help="passes over the images instead of --steps")
    g.add_argument("--batch-size", type=positive_int, default=8, help="images per step (default 8)")
    g.add_argument("--lr", type=non_negative_float, default=1e-3,
                   help="base learning rate (default 1e-3; x0.1 at steps 80k and 100k, as ssd.pytorch)")
    g.add_argument("--warmup-steps", type=int, default=500,
                   help="linear warm-up to --lr over the first steps (default 500; 0: none, as ssd.pytorch)")
    g.add_argument("--freeze-until", default=None, metavar="LAYER",
                   help="train nothing up to and including LAYER, e.g. block4_conv3 (default: train all)")
    g.add_argument(f"--{prefix}precision", dest="train_precision", choices=list(PRECISIONS), default="fp32",
                   help="training precision: fp32 (default) or bf16 (mixed; variables and loss stay fp32)")
    g.add_argument("--checkpoint-every", type=int, default=5000, metavar="N",
                   help="steps between checkpoints (default 5000; 0: only at the end and on Ctrl-C)")
    g.add_argument(f"--{prefix}size", dest="train_size", type=positive_int, default=300, metavar="PIXELS",
                   help="square network input side (default 300; at least 268)")
    g.add_argument("--no-augment", action="store_true", help="no photometric/expand/crop/flip augmentation")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in its folder (the same command plus --resume; "
                        "a longer --steps extends it)")
    g.add_argument("--init", required=True,
                   help="what the detector starts from: vgg16-mri (the trained VGG16 that installs offline), "
                        "random (the seeded control), a VGG16 weights file (copied by layer name into the VGG "
                        "base), or a whole ssd.pytorch SSD300 .pth (every layer; all but the conf heads when "
                        "the class count differs)")


def _add_train(sub) -> None:
    p = _parser(sub, "train-detector", "train an SSD300 on a VOC-format set, resumably",
                "Train an SSD300 as ssd.pytorch does (SGD, momentum 0.9, weight decay 5e-4, MultiBox loss, "
                "its augmentation) and write RUN_DIR: ssd300_step<N>.pth checkpoints, train_state.json, "
                "loss.png, classes.txt, train_setup.json and, when finished, ssd300_final.pth (an "
                "ssd.pytorch state dict).  Ctrl-C saves a checkpoint; the same command with --resume "
                "continues it on the same batches (the data order is fixed by --seed).",
                "  detstyle make-voc shapes/ --images 200\n"
                "  detstyle train-detector --data shapes/ --init vgg16-mri --steps 2000 -o runs/mri\n"
                "  detstyle train-detector --data shapes/ --init vgg16-mri --steps 2000 -o runs/mri --resume\n"
                "  detstyle train-detector --data shapes/ --init runs/mri/ssd300_final.pth --epochs 5 -o runs/more")
    add_train_options(p)
    p.add_argument("-o", "--out-dir", required=True, metavar="RUN_DIR", help="the run folder (created)")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in a folder holding another run (its checkpoint is discarded)")
    p.add_argument("--seed", type=int, default=0, help="fixes the data order, augmentation and new layers (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train_detector)


@dataclasses.dataclass(frozen=True)
class Training:
    """A checked training run, not started: its data, setup, schedule and folder."""

    voc: object  # detection.voc.VOCDataset
    setup: object  # transfer.jobs.detector.TrainSetup
    config: object  # detection.train.TrainConfig
    run_dir: Path


def check_training(args: argparse.Namespace, run_dir: Path) -> Training:
    """Everything about a run that can be refused before a folder is made: data, init, size, schedule."""
    from detection.train import TrainConfig
    from detection.voc import read_voc
    from transfer.errors import UsageError
    from transfer.jobs.detector import TrainSetup, check_init, prior_config, resumable_state, steps_for_epochs

    setup = TrainSetup(data=str(Path(args.data).resolve()), split=args.split, init=args.init, size=args.train_size,
                       batch_size=args.batch_size, augment=not args.no_augment, seed=args.seed)
    voc = read_voc(setup.data, setup.split)
    prior_config(setup.size)
    check_init(setup.init)
    saved = resumable_state(run_dir) if args.resume else None
    steps = args.train_steps
    if args.train_epochs:
        steps = steps_for_epochs(args.train_epochs, len(voc), setup.batch_size)
    if steps is None and saved is None:
        raise UsageError("give the run's length: --steps N or --epochs N")
    steps = steps or saved["config"]["steps"]  # --resume alone: the saved run's length
    config = TrainConfig(steps=steps, lr=args.lr, warmup_steps=args.warmup_steps, precision=args.train_precision,
                         freeze_until=args.freeze_until, checkpoint_every=args.checkpoint_every)
    return Training(voc, setup, config, run_dir)


def train_progress(quiet: bool):
    """A tqdm callback for training steps (loss, loc, conf, lr; tqdm shows the time left), and its closer."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = None

    def callback(info):
        nonlocal bar
        if bar is None:  # a resumed run starts part-way
            bar = tqdm(total=info.steps, initial=info.step - 1, desc="train", unit="step", dynamic_ncols=True,
                       file=sys.stderr)
        bar.update(info.step - bar.n)
        bar.set_postfix(loss=f"{info.loss:.4g}", loc=f"{info.loc_loss:.4g}", conf=f"{info.conf_loss:.4g}",
                        lr=f"{info.lr:.2g}", refresh=False)

    return callback, lambda: bar is not None and bar.close()


def run_training(training: Training, *, resume: bool, overwrite: bool, quiet: bool):
    """Claim the run folder, start the detector (saying from what), train it; the `TrainOutcome`."""
    from transfer.jobs.detector import prepare_run_dir, start_detector, train_detector

    run_dir = prepare_run_dir(training.run_dir, resume=resume, overwrite=overwrite)
    model, report = start_detector(training.voc, training.setup, run_dir, resume=resume)
    if report and not quiet:
        print(report, file=sys.stderr)
    progress, close = train_progress(quiet)
    try:
        return train_detector(model, training.voc, training.setup, training.config, run_dir, resume=resume,
                              callback=progress)
    finally:
        close()


def print_training(outcome) -> None:
    result = outcome.result
    last = result.history[-1] if result.history else None
    losses = (f"loss {last['loss']:.4g} (loc {last['loc_loss']:.4g}, conf {last['conf_loss']:.4g})" if last
              else "no steps")
    print(f"trained to step {result.step} in {result.seconds:.1f} s, {losses}; wrote {outcome.final} "
          f"(also {result.checkpoint.name}), loss.png, classes.txt in {outcome.final.parent}")


def cmd_train_detector(args: argparse.Namespace) -> int:
    training = check_training(args, Path(args.out_dir))
    outcome = run_training(training, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    print_training(outcome)
    return 0


# --------------------------------------------------------------------------------------
# detect
# --------------------------------------------------------------------------------------


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="a detector's .pth: RUN_DIR/ssd300_final.pth, or ssd.pytorch's (ssd300-voc)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="network input side; default the run's training size (train_setup.json beside the "
                        "weights), else 300")
    p.add_argument("--profile", choices=sorted(PREPROCESSING_PROFILES), default=None,
                   help="input preprocessing; default rgb_mean, what an ssd.pytorch .pth was trained on")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass (default 8)")


def _add_detect(sub) -> None:
    p = _parser(sub, "detect", "find objects in images with a trained SSD300",
                "Detect objects in each IMAGE and write OUT_DIR/<stem>.json (boxes in the image's pixels, "
                "xmin ymin xmax ymax, best first) and <stem>_detections.png (the boxes drawn).",
                "  detstyle detect photo.jpg --weights runs/mri/ssd300_final.pth -o found/\n"
                "  detstyle detect *.jpg --weights ssd300_mAP_77.43_v2.pth --threshold 0.6   # VOC names built in")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images to search")
    _add_detector_options(p)
    p.add_argument("-o", "--out-dir", default=DEFAULT_DETECTIONS,
                   help=f"output folder (default {DEFAULT_DETECTIONS}/)")
    p.add_argument("--threshold", type=fraction, default=0.5, help="report detections scoring at least this "
                   "(default 0.5)")
    p.add_argument("--classes", default=None, metavar="FILE_OR_LIST",
                   help="class names, label order: a file (one per line) or a,b,c; default RUN_DIR/classes.txt "
                        "beside the weights, else the 20 VOC classes for a 21-class model")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files in OUT_DIR")
    p.set_defaults(func=cmd_detect)


def _claim_detection_outputs(out: Path, images: list[Path], overwrite: bool) -> None:
    """Each `<stem>.json` and `<stem>_detections.png` that `save_detections` will write, checked now."""
    from detection.detect import output_stems
    from transfer.io.outputs import check_can_create, claim_file

    check_can_create(out)
    if not out.is_dir():
        return
    for stem in output_stems(images):
        for name in (f"{stem}.json", f"{stem}_detections.png"):
            claim_file(out / name, overwrite=overwrite)


def cmd_detect(args: argparse.Namespace) -> int:
    from detection.detect import detect_images, save_detections
    from detection.export import num_classes_of
    from transfer.io.images import check_input_file
    from transfer.jobs.detector import class_names, detector_path, load_detector, prior_config
    from weights.registry import default_profile_for

    images = [check_input_file(path) for path in args.images]
    out = Path(args.out_dir)
    _claim_detection_outputs(out, images, args.overwrite)
    path = detector_path(args.weights)
    model = load_detector(path, args.size)
    names = class_names(path, num_classes_of(model), args.classes)
    profile = args.profile or default_profile_for(path)
    results = detect_images(model, images, profile, args.threshold, names, prior_config(model.input_shape[1]),
                            args.batch_size)
    save_detections(results, out)
    for result in results:
        print(f"{result.path}: {_found(result.detections)}")
    print(f"wrote {len(results)} JSON files and drawings to {out} (profile {profile}, input "
          f"{model.input_shape[1]} px, threshold {args.threshold})")
    return 0


def _found(detections, shown: int = 5) -> str:
    """`3 found: disc 0.91, square 0.88, ...`: the count and the best few."""
    if not detections:
        return "nothing found"
    best = ", ".join(f"{d.label} {d.score:.2f}" for d in detections[:shown])
    return f"{len(detections)} found: {best}" + (", ..." if len(detections) > shown else "")


# --------------------------------------------------------------------------------------
# eval-detector
# --------------------------------------------------------------------------------------


def _add_eval(sub) -> None:
    p = _parser(sub, "eval-detector", "VOC average precision of a trained SSD300",
                "Detect every image of a VOC split and print each class's AP (VOC07 11-point and area under "
                "the precision envelope) and the mAP, as ssd.pytorch's eval.py computes them (IoU > 0.5, "
                "difficult objects ignored).",
                "  detstyle eval-detector --data shapes/ --weights runs/mri/ssd300_final.pth --split val\n"
                "  detstyle eval-detector --data shapes/ --weights runs/mri/ssd300_final.pth -o metrics.json")
    p.add_argument("--data", required=True, metavar="VOC_DIR", help="a VOC-format folder")
    p.add_argument("--split", default="trainval", help="the image set to evaluate (default trainval)")
    _add_detector_options(p)
    p.add_argument("--threshold", type=fraction, default=0.01,
                   help="lowest score kept for ranking (default 0.01, ssd.pytorch's eval)")
    p.add_argument("-o", "--output", default=None, metavar="METRICS_JSON", help="also write the APs as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace METRICS_JSON if it exists")
    p.set_defaults(func=cmd_eval_detector)


def _read_eval_data(args: argparse.Namespace, weights: Path):
    """The split, labelled in the detector's class order when its run folder says it (classes.txt)."""
    from detection.voc import read_classes, read_voc
    from transfer.jobs.detector import CLASSES_FILE

    beside = weights.parent / CLASSES_FILE
    return read_voc(args.data, args.split, classes=read_classes(beside) if beside.is_file() else None)


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from detection.export import num_classes_of
    from transfer.io.images import atomic_write
    from transfer.io.outputs import claim_file
    from transfer.jobs.detector import detector_path, evaluate_detector, evaluation_dict, load_detector
    from weights.registry import default_profile_for

    output = claim_file(args.output, overwrite=args.overwrite, suffixes=(".json",)) if args.output else None
    path = detector_path(args.weights)
    voc = _read_eval_data(args, path)
    model = load_detector(path, args.size)
    if num_classes_of(model) - 1 != len(voc.classes):
        raise DetstyleError(f"{path}: a detector for {num_classes_of(model) - 1} classes; {args.data} has "
                            f"{len(voc.classes)} ({', '.join(voc.classes)})")
    profile = args.profile or default_profile_for(path)
    evaluation = evaluate_detector(model, voc, profile, args.threshold, args.batch_size)
    _print_aps(evaluation)
    if output is not None:
        payload = {"command": "detstyle " + shlex.join(args.argv), "weights": str(path), "data": str(args.data),
                   "split": args.split, "images": len(voc), "size": model.input_shape[1], "profile": profile,
                   "threshold": args.threshold, **evaluation_dict(evaluation)}
        atomic_write(output, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
        print(f"wrote {output}")
    return 0


def _ap(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"  # nan: no ground truth of that class


def _print_aps(evaluation) -> None:
    width = max([len(c.name) for c in evaluation.classes] + [5]) + 2
    print("class".ljust(width) + "objects".rjust(8) + "AP VOC07".rjust(10) + "AP area".rjust(10))
    for c in evaluation.classes:
        print(c.name.ljust(width) + f"{c.npos:8d}" + _ap(c.ap_voc07).rjust(10) + _ap(c.ap_area).rjust(10))
    print("mAP".ljust(width) + " " * 8 + _ap(evaluation.map_voc07).rjust(10) + _ap(evaluation.map_area).rjust(10))
