"""The one image decoder: unusual files come out as the picture a viewer shows, or a
clear InputError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgsynth.core.errors import InputError
from imgsynth.io.image import decode_image, encode_image, image_size


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb = decode_image(tmp_path / "g.png")
    assert rgb.shape == (12, 10, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))


def test_rgba_is_composited_on_black_or_kept(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = decode_image(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [200, 0, 0] and rgb[3, 0].tolist() == [0, 0, 0]
    assert np.array_equal(decode_image(tmp_path / "a.png", mode="RGBA"), rgba)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    deep = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert decode_image(tmp_path / "d.png")[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # red ink
    rgb = decode_image(tmp_path / "c.jpg")
    assert rgb.shape == (6, 8, 3)
    r, g, b = rgb[3, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # wide as stored ...
    stored[:, :10] = 255  # ... with a white band on the left
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    shown = decode_image(tmp_path / "r.jpg")
    assert shown.shape == (40, 20, 3)  # tall as displayed
    assert shown[:10].mean() > 200 and shown[30:].mean() < 50  # the band is now on top
    assert image_size(tmp_path / "r.jpg") == (20, 40)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n-not-really", b"hello"])
def test_broken_files_raise_input_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        decode_image(path)
    assert err.value.file == str(path) and "broken.png" in str(err.value)


def test_truncated_jpeg_names_the_file(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.jpg"):
        decode_image(tmp_path / "t.jpg")


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="not found") as err:
        decode_image(tmp_path / "nope.png")
    assert err.value.file.endswith("nope.png")


@pytest.mark.parametrize("deflate", ["rle", "lz77"])
def test_png_strategies_are_lossless_for_images_and_uint16_masks(deflate, tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    ids = np.zeros((37, 53), np.uint16)
    ids[5:20, 7:30], ids[22:30, 1:50] = 1, 300
    for array in (rgb, ids):
        path = tmp_path / f"{array.dtype}.png"
        path.write_bytes(encode_image(array, "png", png_deflate=deflate))
        back = np.asarray(Image.open(path))
        assert back.dtype == array.dtype and np.array_equal(back, array)


def test_rle_makes_instance_maps_smaller():
    ids = np.zeros((480, 640), np.uint16)
    for k in range(1, 9):
        ids[40 * k:40 * k + 35, 60 * k:60 * k + 50] = k
    rle, lz77 = (len(encode_image(ids, "png", png_deflate=d)) for d in ("rle", "lz77"))
    assert rle < lz77
