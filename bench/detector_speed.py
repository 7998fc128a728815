"""How long an SSD300 training step and a detection take on this machine.

    python -m bench.detector_speed [--batch 8] [--steps 3] [--images 8] [--pipeline-images 32] [--precisions fp32 bf16]

Training: `detection.train.train` (ssd.pytorch's recipe, every layer trained) on one synthetic
batch of `--batch` 300x300 images (noise with a rectangle, matched to the VOC priors), repeated;
seconds per step are the median gap between step callbacks over `--steps` steps after a
warm-up step (which also traces the compiled step; reported as `first_step_s`).  The
checkpoint written when the run ends is outside the timed gaps.

Detection: `detection.detect.detect_images` on `--images` synthetic 500x375 PNG files, one at
a time, with a randomly initialised 21-class SSD300.  Random weights put every prior of every
class above the 0.01 threshold, so NMS does the most work it can (200 per class): the slowest
case for post-processing.  Per image: the whole call (decode, resize, network, NMS), and the
network's forward pass and `postprocess` alone.

Input pipeline: `detection.data.dataset` over a generated 300 px VOC set (`make_voc`), with the
SSD augmentations and prior matching on; images per second after the first batch, and which
side is the bottleneck (the ratio of the two, from this one run).

Writes `bench/results/detector_speed.json`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from bench.report import to_json  # noqa: E402  (the one writer of results files)

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 300


def synthetic_batch(batch: int, seed: int = 0):
    """`(images, loc_t, conf_t)`: noise with one bright rectangle per image, matched to the VOC priors."""
    from models.multibox_loss import match_batch
    from models.priors import VOC_300, prior_boxes

    rng = np.random.default_rng(seed)
    images = rng.uniform(-120, 130, (batch, SIZE, SIZE, 3)).astype(np.float32)
    targets = []
    for image in images:
        x0, y0 = rng.uniform(0, 0.5, 2)
        px = np.round(np.array([x0, y0, x0 + 0.4, y0 + 0.4]) * SIZE).astype(int)
        image[px[1]:px[3], px[0]:px[2]] = 120.0
        targets.append((px[None] / SIZE, [1]))
    loc_t, conf_t = match_batch(targets, prior_boxes(VOC_300))
    return images, loc_t.numpy(), conf_t.numpy()


def time_training(precision: str, batch: int, steps: int) -> dict:
    """One precision's row: first step (with tracing) and the median later step, in seconds."""
    from detection.train import TrainConfig, train
    from models.ssd300 import build_ssd300

    marks = []
    config = TrainConfig(steps=steps + 1, warmup_steps=0, precision=precision, checkpoint_every=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        train(build_ssd300(num_classes=21), [synthetic_batch(batch)] * (steps + 1), config, Path(run_dir) / "run",
              callback=lambda info: marks.append(time.perf_counter() - started))
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"precision": precision, "batch": batch, "size": SIZE, "timed_steps": len(gaps),
            "first_step_s": marks[0], "step_s": statistics.median(gaps), "step_s_per_image": statistics.median(gaps) / batch}


def time_detection(count: int) -> dict:
    """Seconds per image of `detect_images` (one image per call) and of its two main parts."""
    from PIL import Image

    from detection.detect import detect_images, network_input
    from models.detection_output import postprocess
    from models.priors import VOC_300, prior_boxes
    from models.ssd300 import build_ssd300

    model = build_ssd300(num_classes=21)
    names = [f"c{i}" for i in range(20)]
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(count + 1):
            paths.append(Path(folder) / f"{i}.png")
            Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(paths[-1])
        detect_images(model, paths[:1], "rgb_mean", 0.6, names, batch_size=1)  # warm-up
        start = time.perf_counter()
        found = detect_images(model, paths[1:], "rgb_mean", 0.6, names, batch_size=1)
        total = (time.perf_counter() - start) / count
    x = network_input(np.asarray(Image.new("RGB", (500, 375)), np.float32) / 255, SIZE, "rgb_mean")[None]
    forward, post = [], []
    for _ in range(count):
        start = time.perf_counter()
        loc, conf = model.predict_on_batch(x)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        postprocess(loc[0], conf[0], prior_boxes(VOC_300))
        post.append(time.perf_counter() - start)
    return {"size": SIZE, "images": count, "classes": 21, "per_image_s": total,
            "forward_s": statistics.median(forward), "postprocess_s": statistics.median(post),
            "detections_kept_at_0.6": sum(len(r.detections) for r in found)}


def time_pipeline(batch: int, images: int) -> dict:
    """Images per second out of `detection.data.dataset` with the SSD augmentations and prior matching on.

    The set is generated (`make_voc`, 300 px) so the pipeline decodes real JPEGs and XML.
    """
    from detection.data import dataset
    from detection.make_voc import make_voc

    with tempfile.TemporaryDirectory() as folder:
        voc = make_voc(Path(folder) / "voc", images, seed=0, size=SIZE)
        batches = dataset(voc, size=SIZE, batch_size=batch, augment=True, seed=0, epochs=2)
        iterator = iter(batches)
        next(iterator)  # the first batch pays tf.data's start-up and tracing
        start, seen = time.perf_counter(), 0
        for images_, _ in iterator:
            seen += int(images_.shape[0])
        seconds = time.perf_counter() - start
    return {"size": SIZE, "batch": batch, "images_timed": seen, "augment": True,
            "images_per_s": seen / seconds, "s_per_image": seconds / seen}


def bottleneck(training: list[dict], pipeline: dict) -> str:
    """Which side limits training: the step or the input pipeline, and by how much (one run's ratio)."""
    step = min(row["step_s_per_image"] for row in training)
    ratio = step / pipeline["s_per_image"]
    return (f"the step: even the fastest step ({step:.2f} s/image) is {ratio:.0f}x slower than the pipeline"
            if ratio >= 1 else f"the pipeline: it is {1 / ratio:.1f}x slower than the fastest step")



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--pipeline-images", type=int, default=32, help="images in the generated set the pipeline reads")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    training = []
    for precision in args.precisions:
        row = time_training(precision, args.batch, args.steps)
        training.append(row)
        print(f"train {precision}, batch {args.batch} at {SIZE}²: {row['step_s']:.2f} s/step "
              f"({row['step_s_per_image']:.2f} s/image; first step {row['first_step_s']:.1f} s)", flush=True)
    detection = time_detection(args.images)
    print(f"detect at {SIZE}²: {detection['per_image_s']:.3f} s/image (network {detection['forward_s']:.3f} s, "
          f"post-processing {detection['postprocess_s']:.3f} s)", flush=True)
    pipeline = time_pipeline(args.batch, args.pipeline_images)
    print(f"input pipeline (augment + match): {pipeline['images_per_s']:.0f} images/s", flush=True)
    data = {"command": "python -m bench.detector_speed " + " ".join(argv if argv is not None else sys.argv[1:]),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0], "training": training,
            "detection": detection, "pipeline": pipeline, "bottleneck": bottleneck(training, pipeline)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "detector_speed.json"
    path.write_text(to_json(data))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
