"""Detection data: the VOC generator and reader, augmentation invariants, the tf.data pipeline."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from PIL import Image

from detection.augment import augment, rotate_hue, sample_crop
from detection.make_voc import SHAPES, make_voc
from detection.voc import DatasetError, read_voc


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    """Six generated images (128 px) and what the generator says it drew."""
    root = tmp_path_factory.mktemp("shapes")
    return root, make_voc(root, images=6, seed=0, size=128)


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


# ---------------------------------------------------------------------------------------
# Generator and reader
# ---------------------------------------------------------------------------------------


def test_make_voc_same_seed_same_bytes_and_pixels(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        make_voc(tmp_path / name, images=3, seed=seed, size=96)
    a, b, c = (tmp_path / n for n in "abc")
    for image_id in ("000001", "000002", "000003"):
        xml, jpeg = f"Annotations/{image_id}.xml", f"JPEGImages/{image_id}.jpg"
        assert (a / xml).read_bytes() == (b / xml).read_bytes()
        np.testing.assert_array_equal(_pixels(a / jpeg), _pixels(b / jpeg))
        assert (a / xml).read_bytes() != (c / xml).read_bytes()
        assert not np.array_equal(_pixels(a / jpeg), _pixels(c / jpeg))


def test_reader_reads_back_what_the_generator_drew(shapes_set):
    root, drawn = shapes_set
    voc = read_voc(root)
    assert voc.classes == SHAPES and voc.num_classes == len(SHAPES) + 1 and len(voc) == 6
    train, val = ([r.id for r in read_voc(root, split)] for split in ("train", "val"))
    assert sorted(train + val) == [r.id for r in voc] and val == ["000004"]
    for expected, record in zip(drawn, voc):
        assert (record.id, record.width, record.height) == (expected.id, expected.width, expected.height)
        np.testing.assert_array_equal(record.boxes, expected.boxes)
        np.testing.assert_array_equal(record.labels, expected.labels)
        np.testing.assert_array_equal(record.difficult, expected.difficult)
        assert _pixels(record.path).shape == (record.height, record.width, 3)
        # Every object's pasted pixels (the instance map) lie inside its box, and touch all four sides.
        instances = _pixels(root / "SegmentationObject" / f"{record.id}.png")
        for k, box in enumerate(record.boxes, 1):
            ys, xs = np.nonzero(instances == k)
            assert xs.size > 0
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == tuple(box.astype(int))
    assert sum(len(r.labels) for r in voc) >= 6


def test_make_voc_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        make_voc(tmp_path, images=1, seed=0, size=64)
    make_voc(tmp_path, images=2, seed=0, size=64, overwrite=True)
    make_voc(tmp_path, images=1, seed=1, size=64, overwrite=True)  # replaces the generated folders
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "JPEGImages").iterdir()) == ["000001.jpg"]
    assert len(read_voc(tmp_path)) == 1


# ---------------------------------------------------------------------------------------
# Reader errors: one line, naming the file
# ---------------------------------------------------------------------------------------

GOOD_OBJECT = ("<object><name>cat</name><difficult>0</difficult>"
               "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object>")


def _annotation(objects: str = GOOD_OBJECT, size: str = "<size><width>20</width><height>10</height></size>") -> str:
    return f"<annotation><filename>img.jpg</filename>{size}{objects}</annotation>"


def _voc_folder(root, xml: str = _annotation(), ids: str = "img\n", image_size=(20, 10), classes=None):
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/Main/trainval.txt").write_text(ids)
    (root / "Annotations/img.xml").write_text(xml)
    if image_size:
        Image.new("RGB", image_size, (90, 120, 30)).save(root / "JPEGImages/img.jpg")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<annotation>&lol2;</annotation>')

BAD_INPUTS = {
    "corrupt_xml": (dict(xml="<annotation><size><width>20</width>"), "img.xml", "corrupt XML"),
    "doctype_refused": (dict(xml=BILLION_LAUGHS), "img.xml", "refused: declares a DTD"),
    "missing_size": (dict(xml=_annotation(size="")), "img.xml", "missing <size>"),
    "missing_xmin": (dict(xml=_annotation(GOOD_OBJECT.replace("<xmin>1</xmin>", ""))), "img.xml", "missing <xmin>"),
    "not_a_number": (dict(xml=_annotation(GOOD_OBJECT.replace("<xmin>1<", "<xmin>one<"))), "img.xml", "not a number"),
    "box_outside": (dict(xml=_annotation(GOOD_OBJECT.replace("<xmax>20<", "<xmax>21<"))), "img.xml",
                    "lies outside the 20x10 image"),
    "box_at_zero": (dict(xml=_annotation(GOOD_OBJECT.replace("<xmin>1<", "<xmin>0<"))), "img.xml", "outside"),
    "empty_box": (dict(xml=_annotation(GOOD_OBJECT.replace("<xmax>20<", "<xmax>1<"))), "img.xml", "empty box"),
    "unknown_class": (dict(classes=["dog", "bird"]), "img.xml", "unknown class 'cat' (known: dog, bird)"),
    "difficult_not_a_flag": (dict(xml=_annotation(GOOD_OBJECT.replace("<difficult>0<", "<difficult>yes<"))),
                             "img.xml", "<difficult> is 'yes', not 0 or 1"),
    "empty_image_set": (dict(ids="\n  \n"), "trainval.txt", "empty image set"),
    "id_listed_twice": (dict(ids="img\nimg\n"), "trainval.txt", "line 2: image id 'img' listed twice"),
    "id_not_a_file_name": (dict(ids="../img\n"), "trainval.txt", "not a plain file name"),
    "missing_jpeg": (dict(image_size=None), "img.jpg", "missing image"),
    "jpeg_size_differs": (dict(image_size=(10, 20)), "img.jpg", "is 10x20 pixels but img.xml says 20x10"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_reader_refuses_bad_input_in_one_line(tmp_path, case):
    kwargs, file_name, message = BAD_INPUTS[case]
    root = _voc_folder(tmp_path, **kwargs)
    with pytest.raises(DatasetError) as caught:
        read_voc(root)
    text = str(caught.value)
    assert "\n" not in text and file_name in text and message in text, text


def test_reader_refuses_a_missing_image_set_and_a_huge_annotation(tmp_path):
    root = _voc_folder(tmp_path, classes=["cat"])
    with pytest.raises(DatasetError, match=r"test.txt: no such image set \(found: trainval\)"):
        read_voc(root, "test")
    (root / "Annotations/img.xml").write_text(_annotation() + " " * (1 << 20))
    with pytest.raises(DatasetError, match="img.xml: .* bytes, more than the"):
        read_voc(root)


def test_reader_refuses_utf16_that_would_hide_a_dtd_and_an_unreadable_jpeg(tmp_path):
    root = _voc_folder(tmp_path)
    (root / "Annotations/img.xml").write_bytes(BILLION_LAUGHS.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>')
                                               .encode("utf-16"))
    with pytest.raises(DatasetError, match="img.xml: not UTF-8"):
        read_voc(root)
    (root / "Annotations/img.xml").write_text(_annotation())
    (root / "JPEGImages/img.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="img.jpg: not a readable image"):
        read_voc(root)


def test_make_voc_refuses_bad_arguments(tmp_path):
    for kwargs, message in ((dict(images=0), "images must be at least 1"), (dict(seed=-1), "seed at least 0"),
                            (dict(classes=("disc", "dog")), "classes must be distinct names from disc"),
                            (dict(size=16), "size must be 32..4096")):
        with pytest.raises(DatasetError, match=message):
            make_voc(tmp_path / "x", **{"images": 1, "seed": 0, **kwargs})
    assert not (tmp_path / "x").exists()


def test_reader_makes_boxes_zero_based_and_finds_the_class_list(tmp_path):
    two = GOOD_OBJECT + GOOD_OBJECT.replace("cat", "Ant ").replace("<difficult>0", "<difficult>1")
    root = _voc_folder(tmp_path, xml=_annotation(two))
    voc = read_voc(root)  # no classes.txt: the sorted names of the split, lower-cased and stripped
    assert voc.classes == ("ant", "cat")
    record = voc[0]
    np.testing.assert_array_equal(record.boxes, [[0, 1, 19, 9], [0, 1, 19, 9]])  # VOC's 1-based minus 1
    np.testing.assert_array_equal(record.labels, [2, 1])
    np.testing.assert_array_equal(record.difficult, [False, True])
    (root / "classes.txt").write_text("cat\nant\nbee\n")
    assert read_voc(root).classes == ("cat", "ant", "bee")
    assert read_voc(root, classes=["ANT", "cat"])[0].labels.tolist() == [2, 1]
    with pytest.raises(ValueError):
        record.boxes[0, 0] = 5  # records are immutable


# ---------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------


def _random_case(rng: np.random.Generator):
    height, width = rng.integers(16, 97, 2)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    n = int(rng.integers(0, 6))
    corners = rng.uniform(0, 1, (n, 2, 2)) * [width, height]
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 0.5], axis=1)
    boxes = np.minimum(boxes, [width, height, width, height])
    return image, boxes, np.arange(1, n + 1)  # one label per box: labels identify boxes


def test_augmented_boxes_stay_valid_and_in_step_with_labels():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        image, boxes, labels = _random_case(rng)
        out, out_boxes, out_labels = augment(image, boxes, labels, rng, size=48, fill=(123, 117, 104))
        assert out.shape == (48, 48, 3) and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
        assert out_boxes.shape == (len(out_labels), 4) and out_boxes.dtype == np.float32
        assert (out_boxes >= 0).all() and (out_boxes <= 1).all(), seed
        assert (out_boxes[:, 2] > out_boxes[:, 0]).all() and (out_boxes[:, 3] > out_boxes[:, 1]).all(), seed
        assert len(set(out_labels.tolist())) == len(out_labels) and set(out_labels.tolist()) <= set(labels.tolist())


def test_augmented_box_frames_the_object_it_labels():
    # A white rectangle on black, filled black when expanded: after any brightness/contrast
    # (grey stays grey under hue, saturation and channel swaps) white stays above 111 and
    # black below 48, so the bright pixels must be exactly where the output box says.
    image = np.zeros((60, 80, 3), np.uint8)
    image[15:45, 20:60] = 255
    boxes, checked = np.array([[20.0, 15.0, 60.0, 45.0]]), 0
    for seed in range(60):
        out, out_boxes, _ = augment(image, boxes, np.array([1]), np.random.default_rng(seed), 64, (0, 0, 0))
        if len(out_boxes) == 0 or ((out_boxes[0, 2:] - out_boxes[0, :2]) * 64 < 4).any():
            continue
        ys, xs = np.nonzero(out.min(axis=-1) > 80)
        bright = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        np.testing.assert_allclose(bright, out_boxes[0] * 64, atol=1.5, err_msg=f"seed {seed}")
        checked += 1
    assert checked >= 30


def test_expanded_canvas_is_exactly_the_fill_colour():
    # A white image: after photometric distortion its pixels stay above 111 on every channel;
    # the canvas around it must be exactly `fill` (it becomes 0 after mean subtraction), apart
    # from the one-pixel seam where resampling blends the two.
    fill = np.array([10.0, 20.0, 30.0], np.float32)
    white, no_boxes, checked = np.full((40, 40, 3), 255, np.uint8), np.zeros((0, 4)), 0
    for seed in range(20):
        out, _, _ = augment(white, no_boxes, np.zeros(0, int), np.random.default_rng(seed), 32, fill)
        dark = out.min(axis=-1) < 100
        padded = np.pad(dark, 1, constant_values=True)
        interior = dark & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        assert (out[interior] == fill).all() and (out[~dark] > 100).all(), seed
        checked += int(interior.any())
    assert checked >= 5


def test_crop_keeps_the_boxes_whose_centre_is_inside():
    boxes = np.array([[10.0, 10, 30, 30], [60, 60, 90, 80], [0, 50, 100, 100]])
    canvas = np.array([-20.0, -10, 120, 110])
    for seed in range(100):
        window, keep = sample_crop(np.random.default_rng(seed), canvas, boxes)
        assert (window[:2] >= canvas[:2]).all() and (window[2:] <= canvas[2:]).all() and keep.any()
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = ((window[:2] < centres) & (centres < window[2:])).all(axis=1)
        if not np.array_equal(window, canvas):
            np.testing.assert_array_equal(keep, inside)
            ratio = (window[3] - window[1]) / (window[2] - window[0])
            assert 0.5 <= ratio <= 2 and ((window[2:] - window[:2]) >= 0.3 * (canvas[2:] - canvas[:2]) - 1e-9).all()


def test_rotate_hue_matches_matplotlib_hsv():
    rgb = np.random.default_rng(0).uniform(0, 255, (500, 3)).astype(np.float32)
    rgb[:20] = rgb[:20, :1]  # greys
    for degrees in (-18.0, 7.5, 120.0):
        hsv = mcolors.rgb_to_hsv(rgb / 255)
        hsv[:, 0] = (hsv[:, 0] + degrees / 360) % 1
        np.testing.assert_allclose(rotate_hue(rgb, degrees), mcolors.hsv_to_rgb(hsv) * 255, atol=2e-3)
    np.testing.assert_allclose(rotate_hue(np.array([[255.0, 0, 0]], np.float32), 120), [[0, 255, 0]], atol=1e-3)


# ---------------------------------------------------------------------------------------
# The tf.data pipeline
# ---------------------------------------------------------------------------------------


def _batches(voc, **kwargs):
    from detection.data import dataset

    return [(images.numpy(), {k: v.numpy() for k, v in targets.items()})
            for images, targets in dataset(voc, size=300, batch_size=3, **kwargs)]


def _decode(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """ssd.pytorch's decode with variances (0.1, 0.2), written out in NumPy."""
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * 0.2)
    return np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)


def test_pipeline_shapes_matching_and_reproducibility(shapes_set):
    from models.priors import VOC_300, prior_boxes

    voc = read_voc(shapes_set[0])
    priors = prior_boxes(VOC_300)
    first = _batches(voc, augment=True, seed=5)
    assert len(first) == 2
    for augmented in (True, False):
        for images, targets in first if augmented else _batches(voc, augment=False):
            assert images.shape == (3, 300, 300, 3) and images.dtype == np.float32
            assert targets["loc_t"].shape == (3, len(priors), 4) and targets["loc_t"].dtype == np.float32
            assert targets["conf_t"].shape == (3, len(priors)) and targets["conf_t"].dtype == np.int32
            assert targets["boxes"].shape[::2] == (3, 4) and targets["labels"].dtype == np.int32
            for b in range(3):  # every ground-truth box has a prior that learns it, with its label
                for box, label in zip(targets["boxes"][b], targets["labels"][b]):
                    if label == 0:
                        continue  # padding
                    mine = targets["conf_t"][b] == label
                    decoded = _decode(targets["loc_t"][b][mine], priors[mine])
                    assert np.isclose(decoded, box, atol=1e-4).all(axis=1).any()
    again, other = _batches(voc, augment=True, seed=5), _batches(voc, augment=True, seed=6)
    for (images, targets), (images2, targets2) in zip(first, again):
        np.testing.assert_array_equal(images, images2)
        for key in targets:
            np.testing.assert_array_equal(targets[key], targets2[key])
    assert not np.array_equal(first[0][0], other[0][0])


def test_pipeline_preprocessing_follows_the_profile(shapes_set):
    voc = read_voc(shapes_set[0])
    rgb = _batches(voc, augment=False, profile="rgb_mean")[0][0]  # RGB minus (123, 117, 104)
    bgr = _batches(voc, augment=False, profile="caffe")[0][0]  # BGR minus (103.939, 116.779, 123.68)
    np.testing.assert_allclose(bgr[..., ::-1] + [123.68, 116.779, 103.939], rgb + [123, 117, 104], atol=1e-3)
    assert (rgb + [123, 117, 104]).min() >= -1e-3 and (rgb + [123, 117, 104]).max() <= 255 + 1e-3
