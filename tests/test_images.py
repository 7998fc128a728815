import numpy as np
import pytest
from PIL import Image

from transfer.errors import OutputError, DetstyleError, ImageError
from transfer.io.images import load_image, save_image


def test_reads_rgb_and_resizes_longest_side(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(path)
    img = load_image(path, max_side=10)
    assert img.shape == (5, 10, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[2, 5], [1.0, 0.0, 0.0], atol=1 / 255)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    if mode == "P":  # an explicit palette: Pillow's own RGB -> P would dither to the web palette
        image = Image.new("P", (8, 6), 1)
        image.putpalette([0, 0, 0, 200, 100, 50])
    else:
        image = Image.new("RGB", (8, 6), (200, 100, 50)).convert(mode)
    image.save(path)
    grey = round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)  # ITU-R 601 luma, Pillow's RGB -> L
    expected = {"L": (grey,) * 3, "I;16": (grey,) * 3, "P": (200, 100, 50), "RGBA": (200, 100, 50),
                "CMYK": (200, 100, 50)}[mode]
    loaded = load_image(path)
    assert loaded.shape == (6, 8, 3)
    assert np.abs(loaded * 255 - np.array(expected)).max() <= 1.0


def test_sixteen_bit_range_and_transparency_are_honoured(tmp_path):
    deep = np.full((4, 4), 65535, np.uint16)
    deep[0, 0] = 0
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[1, 1].tolist() == [1.0, 1.0, 1.0] and loaded[0, 0].tolist() == [0.0, 0.0, 0.0]  # not clipped to 255/65535
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").min() == 1.0  # fully transparent: the white background


def test_exif_rotation_is_applied(tmp_path):
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (30, 10)).save(path, exif=exif)
    assert load_image(path).shape == (30, 10, 3)


@pytest.mark.parametrize("content,message", [(None, "no such file"), (b"", "empty"),
                                             (b"not an image at all", "not an image")])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_png_is_an_image_error(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="t.png"):
        load_image(path)


def test_save_is_atomic_and_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(np.zeros((4, 4, 3), np.float32), path)
    before = path.read_bytes()

    def failing_save(self, fp, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OutputError, match="out.png: cannot write .disk full."):
        save_image(np.ones((4, 4, 3), np.float32), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(DetstyleError, match="extension"):
        save_image(np.zeros((2, 2, 3), np.float32), tmp_path / "x.unknown")


def test_image_size_reads_a_png_header_without_decoding_it(tmp_path, monkeypatch):
    """A big upload is measured from its header: decoding it just to learn its size costs its full memory."""
    from PIL import PngImagePlugin

    from transfer.io.images import image_size

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: width and height swap
    Image.new("RGB", (40, 30)).save(tmp_path / "rotated.png", exif=exif)
    Image.new("RGB", (40, 30)).save(tmp_path / "plain.png")

    def no_decoding(self):
        raise AssertionError("image_size decoded the pixels")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert image_size(tmp_path / "plain.png") == (40, 30)
    assert image_size(tmp_path / "rotated.png") == (30, 40)
