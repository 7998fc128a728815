"""Read a PASCAL VOC folder into immutable per-image records, refusing bad input in one line.

Layout (the VOCdevkit one, for one year's folder such as `VOC2007/`):

    ROOT/ImageSets/Main/<split>.txt   one image id per line
    ROOT/Annotations/<id>.xml         size, objects (name, difficult, bndbox)
    ROOT/JPEGImages/<id>.jpg
    ROOT/classes.txt                  optional: the class list, one name per line

Coordinates: VOC numbers pixels from 1 and its boxes include their last pixel.  Like
ssd.pytorch's `VOCAnnotationTransform` (and its `eval.py`), the reader subtracts 1 from every
coordinate, so `boxes` are 0-based pixel coordinates `xmin, ymin, xmax, ymax`; dividing by the
width and height gives the relative boxes SSD trains on, exactly as ssd.pytorch does.

Labels are 1..C in the order of the class list (0 stays background, as in `models.box_utils`).
Class names are compared lower-cased and stripped, as ssd.pytorch does.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from transfer.errors import DetstyleError

#: An annotation file may not be larger: VOC's are 1-3 KB, 1 MiB holds thousands of objects.
MAX_XML_BYTES = 1 << 20

#: An image id must be a plain file name: it is joined to folder paths.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

#: Markup that declares a DTD or entities; VOC annotations never contain it.
_REFUSED_MARKUP = ("<!DOCTYPE", "<!ENTITY")


class DatasetError(DetstyleError):
    """A dataset file that cannot be used as it is; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class VOCRecord:
    """One annotated image.  The arrays are read-only copies; records compare by identity.

    Attributes:
      id: the image id (file stem).
      path: the JPEG.
      width, height: image size in pixels, from the annotation (checked against the JPEG).
      boxes: `(N, 4)` float32 `xmin, ymin, xmax, ymax`, 0-based pixels (VOC's minus 1).
      labels: `(N,)` int32 in 1..C, the position in the class list plus one.
      difficult: `(N,)` bool, VOC's `difficult` flag (ignored by evaluation, dropped in training).
    """

    id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray

    def __post_init__(self) -> None:
        for field, dtype, shape in (("boxes", np.float32, (-1, 4)), ("labels", np.int32, (-1,)),
                                    ("difficult", bool, (-1,))):
            array = np.array(getattr(self, field), dtype).reshape(shape)
            array.flags.writeable = False
            object.__setattr__(self, field, array)
        if not len(self.boxes) == len(self.labels) == len(self.difficult):
            raise ValueError(f"{self.id}: {len(self.boxes)} boxes, {len(self.labels)} labels, "
                             f"{len(self.difficult)} difficult flags")


@dataclasses.dataclass(frozen=True)
class VOCDataset:
    """The records of one split and the class list their labels index (label = index + 1)."""

    root: Path
    split: str
    classes: tuple[str, ...]
    records: tuple[VOCRecord, ...]

    @property
    def num_classes(self) -> int:
        """Classes including background: what `build_ssd300(num_classes=...)` takes."""
        return len(self.classes) + 1

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> VOCRecord:
        return self.records[index]

    def __iter__(self) -> Iterator[VOCRecord]:
        return iter(self.records)


@dataclasses.dataclass(frozen=True)
class _Object:
    name: str
    box: tuple[float, float, float, float]  # 0-based
    difficult: bool


@dataclasses.dataclass(frozen=True)
class _Annotation:
    path: Path
    width: int
    height: int
    objects: tuple[_Object, ...]


# ---------------------------------------------------------------------------------------
# Image sets and class lists
# ---------------------------------------------------------------------------------------


def read_image_set(root: str | Path, split: str) -> list[str]:
    """The image ids of `ROOT/ImageSets/Main/<split>.txt` (first word of each non-blank line)."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise DatasetError(f"{path}: no such image set (found: {', '.join(found) or 'none'})")
    ids: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        image_id = line.split()[0]
        if not _ID_PATTERN.fullmatch(image_id):
            raise DatasetError(f"{path}: line {number}: image id {image_id!r} is not a plain file name")
        if image_id in seen:
            raise DatasetError(f"{path}: line {number}: image id {image_id!r} listed twice")
        seen.add(image_id)
        ids.append(image_id)
    if not ids:
        raise DatasetError(f"{path}: empty image set")
    return ids


def _class_tuple(names: Sequence[str], source: str) -> tuple[str, ...]:
    """Normalised class names; refuses an empty list and duplicates (labels would clash)."""
    normalised = tuple(name.strip().lower() for name in names if name.strip())
    if not normalised:
        raise DatasetError(f"{source}: empty class list")
    for name in normalised:
        if normalised.count(name) > 1:
            raise DatasetError(f"{source}: class {name!r} listed twice")
    return normalised


def read_classes(path: str | Path) -> tuple[str, ...]:
    """A class list file: one name per line, blank lines ignored."""
    path = Path(path)
    return _class_tuple(path.read_text(encoding="utf-8").splitlines(), str(path))


# ---------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------


def _read_xml(path: Path) -> ET.Element:
    """Parse an annotation after refusing anything but small, plain UTF-8 XML.

    Why: `xml.etree` expands internal entities, so a file with a DTD can make a few hundred
    bytes expand into gigabytes ("billion laughs"); VOC annotations never declare a DTD, so
    any `<!DOCTYPE`/`<!ENTITY` is refused before parsing.  The text is decoded as UTF-8 here
    and parsed as that text (pyexpat then ignores the file's declared encoding), so the markup
    checked is the markup parsed -- a UTF-16 file cannot hide a DTD from the check.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: missing annotation")
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise DatasetError(f"{path}: {size:,} bytes, more than the {MAX_XML_BYTES:,} an annotation may have")
    data = path.read_bytes()[: MAX_XML_BYTES + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    if "\x00" in text:
        raise DatasetError(f"{path}: not UTF-8 text (NUL bytes)")
    for markup in _REFUSED_MARKUP:
        if markup in text.upper():
            raise DatasetError(f"{path}: refused: declares a DTD or entities ({markup}), which VOC never uses")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: corrupt XML ({exc})") from None


def _number(element: ET.Element, tag: str, where: str) -> float:
    text = element.findtext(tag)
    if text is None or not text.strip():
        raise DatasetError(f"{where}: missing <{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is not a number ({text.strip()[:40]!r})") from None
    if not np.isfinite(value):
        raise DatasetError(f"{where}: <{tag}> is not finite ({text.strip()[:40]!r})")
    return value


def _image_size(root: ET.Element, path: Path) -> tuple[int, int]:
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{path}: missing <size>")
    width, height = (_number(size, tag, str(path)) for tag in ("width", "height"))
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise DatasetError(f"{path}: image size {width:g}x{height:g} is not a positive whole number of pixels")
    return int(width), int(height)


def _difficult(obj: ET.Element, where: str) -> bool:
    """VOC's flag; absent means 0 (some exported sets omit it)."""
    text = (obj.findtext("difficult") or "0").strip()
    if text not in ("0", "1"):
        raise DatasetError(f"{where}: <difficult> is {text[:40]!r}, not 0 or 1")
    return text == "1"


def _object(obj: ET.Element, index: int, width: int, height: int, path: Path) -> _Object:
    """One `<object>`: checks the box lies in the image and is not empty, then makes it 0-based."""
    name = (obj.findtext("name") or "").strip().lower()
    if not name:
        raise DatasetError(f"{path}: object {index}: missing <name>")
    where = f"{path}: object {index} ({name!r})"
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise DatasetError(f"{where}: missing <bndbox>")
    xmin, ymin, xmax, ymax = (_number(bndbox, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
    if xmax <= xmin or ymax <= ymin:
        raise DatasetError(f"{where}: empty box (xmin {xmin:g}, xmax {xmax:g}, ymin {ymin:g}, ymax {ymax:g})")
    if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
        raise DatasetError(
            f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} image "
            f"(VOC pixels run from 1 to the width and height)"
        )
    return _Object(name, (xmin - 1, ymin - 1, xmax - 1, ymax - 1), _difficult(obj, where))


def _read_annotation(path: Path) -> _Annotation:
    """Parse and check one annotation file (see the module docstring for the coordinates)."""
    root = _read_xml(path)
    width, height = _image_size(root, path)
    objects = tuple(_object(obj, i, width, height, path) for i, obj in enumerate(root.iter("object"), 1))
    return _Annotation(path, width, height, objects)


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------


def _check_image(path: Path, annotation: _Annotation) -> None:
    """The JPEG exists, Pillow can read its header, and its size is the annotated one."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing image (annotated in {annotation.path.name})")
    try:
        with Image.open(path) as image:
            size = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
    if size != (annotation.width, annotation.height):
        raise DatasetError(
            f"{path}: is {size[0]}x{size[1]} pixels but {annotation.path.name} says "
            f"{annotation.width}x{annotation.height}"
        )


def _record(image_id: str, jpeg: Path, annotation: _Annotation, labels: dict[str, int]) -> VOCRecord:
    codes = []
    for index, obj in enumerate(annotation.objects, 1):
        if obj.name not in labels:
            raise DatasetError(
                f"{annotation.path}: object {index}: unknown class {obj.name!r} (known: {', '.join(labels)})"
            )
        codes.append(labels[obj.name])
    return VOCRecord(
        id=image_id,
        path=jpeg,
        width=annotation.width,
        height=annotation.height,
        boxes=[obj.box for obj in annotation.objects],
        labels=codes,
        difficult=[obj.difficult for obj in annotation.objects],
    )


def _resolve_classes(root: Path, classes: Sequence[str] | None, annotations: Sequence[_Annotation]) -> tuple[str, ...]:
    """The explicit list, else ROOT/classes.txt, else the sorted names found in the split."""
    if classes is not None:
        return _class_tuple(list(classes), "the given class list")
    listed = root / "classes.txt"
    if listed.is_file():
        return read_classes(listed)
    names = sorted({obj.name for annotation in annotations for obj in annotation.objects})
    if not names:
        raise DatasetError(f"{root}: no objects in the split and no classes.txt: cannot tell the classes")
    return tuple(names)


def read_voc(root: str | Path, split: str = "trainval", classes: Sequence[str] | None = None) -> VOCDataset:
    """Read one split of a VOC folder, checking every annotation and image header.

    Args:
      root: the folder holding `Annotations/`, `JPEGImages/` and `ImageSets/Main/`.
      split: the image set (`ImageSets/Main/<split>.txt`).
      classes: the class names in label order; default `ROOT/classes.txt`, else the sorted
        set of names in the split's annotations.

    Raises:
      DatasetError: naming the file and the problem (missing or empty image set, corrupt or
        refused XML, missing tags, a box outside the image or empty, an unknown class, a
        missing or unreadable JPEG).
    """
    root = Path(root)
    ids = read_image_set(root, split)
    annotations = [_read_annotation(root / "Annotations" / f"{image_id}.xml") for image_id in ids]
    names = _resolve_classes(root, classes, annotations)
    labels = {name: i + 1 for i, name in enumerate(names)}
    records = []
    for image_id, annotation in zip(ids, annotations):
        jpeg = root / "JPEGImages" / f"{image_id}.jpg"
        record = _record(image_id, jpeg, annotation, labels)
        _check_image(jpeg, annotation)
        records.append(record)
    return VOCDataset(root, split, names, tuple(records))
