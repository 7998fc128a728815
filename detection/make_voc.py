"""Generate a small PASCAL VOC-format detection set: drawn shapes pasted on real photographs.

Why: training and evaluating the SSD end to end needs a dataset that exists offline, is
small enough for a test, and is hard enough to mean something.  Backgrounds are crops of
real photos (`../shared/images/tubingen.jpg`, `golden_gate.jpg`; else matplotlib's bundled
`grace_hopper.jpg`), so the detector must tell objects from real clutter.  Objects are
procedurally drawn, textured shapes at varied scale, aspect and rotation; later objects may
cover earlier ones and objects may be cut by the border.

Annotations follow VOC's rules: the box is the extent of the object's *visible* pixels, in
VOC's 1-based inclusive pixel coordinates; `truncated` when the border cuts the object;
`difficult` when less than 40% of its in-image area is visible or its box is tiny.  An
object left with under 2 visible pixels across is not annotated (VOC's "void", 255, in the
instance map).  `SegmentationObject/<id>.png` holds each annotated object's pixels (value =
its position in the XML, from 1), which lets anyone check a box against what was drawn.

Determinism: image `i` is drawn from `numpy.random.default_rng([seed, i])` alone, so the same
seed and background files give byte-identical XML and identical pixels (and image `i` does
not depend on how many images are made).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from detection.voc import DatasetError, VOCDataset, VOCRecord

#: The shapes this module can draw; a dataset uses any non-empty subset, in the given order.
SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "star", "ring")

#: The real photographs used as backgrounds when they are present (../shared/images).
SHARED_PHOTOS: tuple[str, ...] = ("tubingen.jpg", "golden_gate.jpg")
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"

#: Below this visible fraction of its in-image area an object is "difficult" (mostly hidden).
DIFFICULT_VISIBLE_FRACTION = 0.4
#: A visible box shorter than this fraction of the image's short side is "difficult" (tiny).
DIFFICULT_SIDE_FRACTION = 0.04
#: Generated files and folders; `overwrite=True` replaces exactly these.
OUTPUTS: tuple[str, ...] = ("Annotations", "JPEGImages", "SegmentationObject", "ImageSets", "classes.txt")


@dataclasses.dataclass(frozen=True)
class _Drawn:
    """An annotated object: class index, 0-based inclusive visible box, VOC flags."""

    shape: int
    box: tuple[int, int, int, int]
    truncated: bool
    difficult: bool


# ---------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------


def default_backgrounds() -> list[Path]:
    """The shared photographs that exist here, else matplotlib's bundled sample photo."""
    found = [SHARED_IMAGES / name for name in SHARED_PHOTOS if (SHARED_IMAGES / name).is_file()]
    if found:
        return found
    from transfer.io.samples import grace_hopper_path

    return [grace_hopper_path()]


def _load_photos(paths: Sequence[Path]) -> list[Image.Image]:
    photos = []
    for path in paths:
        try:
            with Image.open(path) as opened:
                photos.append(opened.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read background photo ({exc})") from None
    return photos


def _image_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """`(width, height)`: long side `size`, short side 75-100% of it, either orientation."""
    short = int(round(size * rng.uniform(0.75, 1.0)))
    return (size, short) if rng.random() < 0.5 else (short, size)


def _background(rng: np.random.Generator, photos: Sequence[Image.Image], width: int, height: int) -> Image.Image:
    """A random crop (30-100% of the photo's width, the target's aspect) resized to the image."""
    photo = photos[int(rng.integers(len(photos)))]
    crop_w = photo.width * rng.uniform(0.3, 1.0)
    crop_h = crop_w * height / width
    if crop_h > photo.height:
        crop_w, crop_h = crop_w * photo.height / crop_h, photo.height
    left = rng.uniform(0, photo.width - crop_w)
    top = rng.uniform(0, photo.height - crop_h)
    box = (left, top, left + crop_w, top + crop_h)
    return photo.resize((width, height), Image.Resampling.BILINEAR, box=box)


# ---------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------


def _star(width: int, height: int) -> list[tuple[float, float]]:
    cx, cy = (width - 1) / 2, (height - 1) / 2
    points = []
    for k in range(10):
        radius = 1.0 if k % 2 == 0 else 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + radius * cx * math.cos(angle), cy + radius * cy * math.sin(angle)))
    return points


def _shape_mask(rng: np.random.Generator, shape: str, width: int, height: int) -> np.ndarray:
    """A binary mask of one shape filling `width x height`, rotated by up to 30 degrees."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    full = (0, 0, width - 1, height - 1)
    if shape in ("disc", "ring"):
        draw.ellipse(full, fill=255)
        if shape == "ring":
            inset = 0.25 * min(width, height)
            draw.ellipse((inset, inset, width - 1 - inset, height - 1 - inset), fill=0)
    elif shape == "square":
        draw.rectangle(full, fill=255)
    elif shape == "triangle":
        draw.polygon([(0, height - 1), ((width - 1) / 2, 0), (width - 1, height - 1)], fill=255)
    else:
        draw.polygon(_star(width, height), fill=255)
    mask = mask.rotate(rng.uniform(-30, 30), resample=Image.Resampling.NEAREST, expand=True)
    return np.asarray(mask) > 0


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Two random colours mixed by stripes, a gradient or noise: objects are not flat patches."""
    colours = rng.integers(0, 256, (2, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    kind = int(rng.integers(3))
    if kind == 0:
        weight = (np.sin(2 * math.pi * t / rng.uniform(4, 12)) > 0).astype(np.float32)
    elif kind == 1:
        weight = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    else:
        weight = np.clip(rng.normal(0.5, 0.25, (height, width)), 0, 1).astype(np.float32)
    mixed = colours[0] * (1 - weight[..., None]) + colours[1] * weight[..., None]
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _paste(rng, canvas: np.ndarray, instances: np.ndarray, shape: str, index: int) -> tuple[int, int]:
    """Draw one object into `canvas` (H, W, 3) and `instances`; returns (in-image, total) pixels.

    Size is log-uniform in 8-55% of the short side, aspect 0.6-1.67, centre anywhere in the
    image (so the border cuts some objects).
    """
    height, width = instances.shape
    side = min(width, height) * math.exp(rng.uniform(math.log(0.08), math.log(0.55)))
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1 / 0.6)))
    obj_w, obj_h = max(4, round(side * math.sqrt(aspect))), max(4, round(side / math.sqrt(aspect)))
    mask = _shape_mask(rng, shape, obj_w, obj_h)
    texture = _texture(rng, *mask.shape)
    left = int(round(rng.uniform(0, width) - mask.shape[1] / 2))
    top = int(round(rng.uniform(0, height) - mask.shape[0] / 2))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + mask.shape[1], width), min(top + mask.shape[0], height)
    inside = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    canvas[y0:y1, x0:x1][inside] = texture[y0 - top : y1 - top, x0 - left : x1 - left][inside]
    instances[y0:y1, x0:x1][inside] = index
    return int(inside.sum()), int(mask.sum())


def _annotate(instances: np.ndarray, placed: Sequence[tuple[int, int, int]]) -> list[_Drawn]:
    """VOC objects from what stayed visible; renumbers `instances` to XML order (void = 255)."""
    drawn_ids = instances.copy()
    short_side = min(instances.shape)
    objects: list[_Drawn] = []
    for index, (shape, in_image, total) in enumerate(placed, 1):
        visible = drawn_ids == index
        ys, xs = np.nonzero(visible)
        if xs.size == 0 or np.ptp(xs) < 1 or np.ptp(ys) < 1:
            instances[visible] = 255
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        tiny = min(box[2] - box[0], box[3] - box[1]) + 1 < DIFFICULT_SIDE_FRACTION * short_side
        hidden = xs.size < DIFFICULT_VISIBLE_FRACTION * in_image
        objects.append(_Drawn(shape, box, truncated=in_image < total, difficult=tiny or hidden))
        instances[visible] = len(objects)
    return objects


def _draw(rng: np.random.Generator, photos, size: int, classes: Sequence[str]):
    """One image: `(RGB uint8 array, instance map, objects)`; object classes index `classes`."""
    width, height = _image_size(rng, size)
    canvas = np.array(_background(rng, photos, width, height))
    instances = np.zeros((height, width), np.uint8)
    placed = []
    for index in range(1, int(rng.integers(1, 5)) + 1):
        shape = int(rng.integers(len(classes)))
        placed.append((shape, *_paste(rng, canvas, instances, classes[shape], index)))
    return canvas, instances, _annotate(instances, placed)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def _annotation_xml(image_id: str, width: int, height: int, objects: Sequence[_Drawn],
                   classes: Sequence[str], seed: int) -> bytes:
    """The VOC annotation of one image (1-based inclusive boxes), as UTF-8 bytes."""
    root = ET.Element("annotation")
    _sub(root, "folder", "detstyle-shapes")
    _sub(root, "filename", f"{image_id}.jpg")
    source = _sub(root, "source")
    _sub(source, "database", f"detstyle synthetic shapes, seed {seed}")
    size = _sub(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        _sub(size, tag, value)
    _sub(root, "segmented", 1)
    for obj in objects:
        element = _sub(root, "object")
        _sub(element, "name", classes[obj.shape])
        _sub(element, "pose", "Unspecified")
        _sub(element, "truncated", int(obj.truncated))
        _sub(element, "difficult", int(obj.difficult))
        bndbox = _sub(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box):
            _sub(bndbox, tag, value + 1)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _record(root: Path, image_id: str, width: int, height: int, objects: Sequence[_Drawn]) -> VOCRecord:
    """What `read_voc` will read back for this image (0-based boxes, labels from 1)."""
    return VOCRecord(
        id=image_id,
        path=root / "JPEGImages" / f"{image_id}.jpg",
        width=width,
        height=height,
        boxes=[obj.box for obj in objects],
        labels=[obj.shape + 1 for obj in objects],
        difficult=[obj.difficult for obj in objects],
    )


def _write_image(tmp: Path, image_id: str, pixels: np.ndarray, instances: np.ndarray, xml: bytes) -> None:
    Image.fromarray(pixels).save(tmp / "JPEGImages" / f"{image_id}.jpg", "JPEG", quality=92)
    Image.fromarray(instances).save(tmp / "SegmentationObject" / f"{image_id}.png", "PNG")
    (tmp / "Annotations" / f"{image_id}.xml").write_bytes(xml)


def _write_splits(tmp: Path, ids: Sequence[str], classes: Sequence[str]) -> None:
    """trainval (all), val (every 4th image), train (the rest); classes.txt in label order."""
    splits = {
        "trainval": list(ids),
        "train": [image_id for i, image_id in enumerate(ids) if i % 4 != 3],
        "val": [image_id for i, image_id in enumerate(ids) if i % 4 == 3],
    }
    for name, members in splits.items():
        if members:
            (tmp / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{m}\n" for m in members))
    (tmp / "classes.txt").write_text("".join(f"{name}\n" for name in classes))


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise DatasetError(f"{out_dir}: directory is not empty (pass overwrite=True to replace a generated set)")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished folders into `out_dir`, each replacing its old version by a rename.

    Only the generated entries (`OUTPUTS`) are replaced; anything else in `out_dir` stays.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    retired = tmp / ".replaced"
    retired.mkdir()
    for name in OUTPUTS:
        target = out_dir / name
        if target.exists() or target.is_symlink():
            os.replace(target, retired / name)
        os.replace(tmp / name, target)


def _check_arguments(images: int, seed: int, size: int, classes: Sequence[str]) -> tuple[str, ...]:
    if images < 1 or seed < 0:
        raise DatasetError(f"images must be at least 1 and seed at least 0, got images={images}, seed={seed}")
    if not 32 <= size <= 4096:
        raise DatasetError(f"size must be 32..4096 pixels, got {size}")
    classes = tuple(classes)
    unknown = [name for name in classes if name not in SHAPES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise DatasetError(
            f"classes must be distinct names from {', '.join(SHAPES)}; got {', '.join(classes) or 'none'}"
        )
    return classes


def make_voc(
    out_dir: str | Path,
    images: int,
    seed: int,
    size: int = 300,
    classes: Sequence[str] = SHAPES,
    overwrite: bool = False,
    backgrounds: Sequence[str | Path] | None = None,
) -> VOCDataset:
    """Write a VOC-format set of `images` images to `out_dir` and return its records.

    Args:
      out_dir: destination; must be absent or empty unless `overwrite` (which replaces only
        the generated folders and `classes.txt`).
      images: how many images (ids `000001`, `000002`, ...).
      seed: fixes every pixel and box (with the same background files).
      size: long side of each image in pixels; the short side is 75-100% of it.
      classes: the shapes to draw, in label order (a subset of `SHAPES`).
      backgrounds: photo files to crop backgrounds from (default: `default_backgrounds()`).

    Returns:
      The `trainval` split as `read_voc(out_dir)` reads it (the generator's own account of
      what it drew, so a reader can be checked against it).

    The set is built in a temporary folder next to `out_dir` and moved in when complete, so
    an interrupted run leaves `out_dir` as it was.
    """
    classes = _check_arguments(images, seed, size, classes)
    out_dir = Path(out_dir)
    _check_destination(out_dir, overwrite)
    photos = _load_photos([Path(p) for p in backgrounds] if backgrounds is not None else default_backgrounds())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for folder in ("Annotations", "JPEGImages", "SegmentationObject", "ImageSets/Main"):
            (tmp / folder).mkdir(parents=True)
        ids = [f"{i:06d}" for i in range(1, images + 1)]
        records = []
        for i, image_id in enumerate(ids):
            pixels, instances, objects = _draw(np.random.default_rng([seed, i]), photos, size, classes)
            height, width = instances.shape
            xml = _annotation_xml(image_id, width, height, objects, classes, seed)
            _write_image(tmp, image_id, pixels, instances, xml)
            records.append(_record(out_dir, image_id, width, height, objects))
        _write_splits(tmp, ids, classes)
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return VOCDataset(out_dir, "trainval", classes, tuple(records))
