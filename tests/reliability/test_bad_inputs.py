"""Hostile and malformed input: every bad image or label file either reads correctly or
stops with an InputError naming the file (and the record), never a silently wrong label,
never a traceback, never an allocation the file's size does not justify.

The corpus is generated here into tmp_path: broken and unusual images, decompression
bombs (a PNG header declaring a huge size, a few bytes long), RLE bombs, duplicate ids,
paths that lead outside the dataset, fields of the wrong type.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsynth.core.errors import InputError
from imgsynth.core.masks import rle_decode, rle_encode, rle_sample
from imgsynth.io import image as image_module
from imgsynth.io.image import decode_image, image_size, max_image_pixels, set_max_image_pixels
from imgsynth.io.readers import read_dataset
from imgsynth.io.readers.base import LabelWarning

DEFAULT_LIMIT = 8192 * 8192


@pytest.fixture(autouse=True)
def default_pixel_limit(monkeypatch):
    """Every test starts from the default limit, whatever the environment says."""
    monkeypatch.delenv("IMGSYNTH_MAX_IMAGE_PIXELS", raising=False)
    set_max_image_pixels(None)
    yield
    set_max_image_pixels(None)


# ---------------------------------------------------------------- the image corpus

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG of a few dozen bytes whose header declares width x height RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))
    return path


def bmp_header(path: Path, width: int, height: int) -> Path:
    """A 54-byte BMP whose header declares width x height 24-bit pixels (no pixel data)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info)
    return path


def _save(path: Path, img: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def rgb_array(height=12, width=16) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.stack([xx * 10, yy * 15, (xx + yy) * 5], axis=-1).astype(np.uint8)


def write_png(path):
    return _save(path, Image.fromarray(rgb_array()))


def write_16_bit(path):
    return _save(path, Image.fromarray(np.full((12, 16), 65535, dtype=np.uint16)))


def write_cmyk_jpeg(path):
    return _save(path, Image.new("CMYK", (16, 12), (0, 255, 255, 0)), format="JPEG", quality=100)


def write_palette(path):
    img = Image.fromarray(rgb_array()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _save(path, img, transparency=0)


def write_exif_rotated(path):
    img = Image.fromarray(rgb_array())  # stored 16 wide, 12 high
    exif = img.getexif()
    exif[0x0112] = 6  # displayed rotated: 12 wide, 16 high
    return _save(path, img, exif=exif, quality=95)


def write_one_pixel(path):
    return _save(path, Image.fromarray(np.full((1, 1, 3), 77, dtype=np.uint8)))


def write_corrupt(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a chunk, " * 5)
    return path


def write_truncated(path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def write_zero_bytes(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_bomb(path):  # over twice the default limit: Pillow's own check would fire first
    path.parent.mkdir(parents=True, exist_ok=True)
    return header_bomb(path, 30000, 30000)


def write_mild_bomb(path):  # over the default limit, under twice it
    path.parent.mkdir(parents=True, exist_ok=True)
    return header_bomb(path, 9000, 9000)


def write_gif_frame_bomb(path):
    """A 10x10 GIF whose one frame declares 20000x20000: Pillow grows the canvas to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gif = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    gif += b"\x2c" + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0) + b"\x02\x02\x44\x01\x00\x3b"
    path.write_bytes(gif)
    return path


GOOD = {  # name: (writer, check of the decoded RGB array)
    "png": (write_png, lambda a: np.array_equal(a, rgb_array())),
    "16-bit": (write_16_bit, lambda a: a.shape == (12, 16, 3) and (a == 255).all()),
    "cmyk": (write_cmyk_jpeg, lambda a: a.shape == (12, 16, 3) and a[..., 0].min() > 240 and a[..., 1:].max() < 15),
    "palette": (write_palette, lambda a: a.shape == (12, 16, 3)),
    "exif-rotated": (write_exif_rotated, lambda a: a.shape == (16, 12, 3)),
    "one-pixel": (write_one_pixel, lambda a: a.shape == (1, 1, 3) and (a == 77).all()),
}
BAD = {  # name: (writer, words the message must hold)
    "corrupt": (write_corrupt, "not a readable image|corrupt image"),
    "truncated": (write_truncated, "corrupt image"),
    "zero-byte": (write_zero_bytes, "0 bytes"),
    "bomb": (write_bomb, "30000x30000"),
    "mild-bomb": (write_mild_bomb, "9000x9000"),
    "gif-frame-bomb": (write_gif_frame_bomb, "20000x20000"),
}


@pytest.mark.parametrize("name", GOOD)
def test_unusual_images_decode_correctly(tmp_path, name):
    writer, check = GOOD[name]
    assert check(decode_image(writer(tmp_path / f"{name}.png")))


@pytest.mark.parametrize("name", BAD)
def test_broken_images_raise_input_error_naming_the_file(tmp_path, name):
    writer, words = BAD[name]
    path = writer(tmp_path / f"{name}.png")
    with pytest.raises(InputError, match=words) as err:
        decode_image(path)
    assert err.value.file == str(path)


@pytest.mark.parametrize("width, height", [(30000, 30000), (9000, 9000)])
def test_bomb_is_refused_from_its_header_with_size_limit_and_fix(tmp_path, width, height):
    path = header_bomb(tmp_path / "bomb.png", width, height)
    with pytest.raises(InputError) as err:
        decode_image(path)
    text = str(err.value)
    assert f"{width}x{height}" in text and f"{width * height:,}" in text
    assert "67,108,864" in text and "IMGSYNTH_MAX_IMAGE_PIXELS" in err.value.fix
    with pytest.raises(InputError, match=f"{width}x{height}"):
        image_size(path)  # the header read reports the same limit
    with pytest.raises(InputError, match=f"{width}x{height}"):
        decode_image(path, data=path.read_bytes())  # a shard member: same check


def test_pixel_limit_is_set_by_environment_and_setter(tmp_path, monkeypatch):
    path = write_png(tmp_path / "a.png")  # 16 x 12 = 192 pixels
    assert max_image_pixels() == DEFAULT_LIMIT
    monkeypatch.setenv("IMGSYNTH_MAX_IMAGE_PIXELS", "100")
    assert max_image_pixels() == 100
    with pytest.raises(InputError, match=r"16x12 .*192.* limit of 100 pixels"):
        decode_image(path)
    monkeypatch.setenv("IMGSYNTH_MAX_IMAGE_PIXELS", "0")  # 0: no limit
    assert max_image_pixels() is None and decode_image(path).shape == (12, 16, 3)
    set_max_image_pixels(192)  # the setter wins over the environment; the limit is inclusive
    assert max_image_pixels() == 192 and decode_image(path).shape == (12, 16, 3)
    set_max_image_pixels(191)
    with pytest.raises(InputError, match="set_max_image_pixels"):
        decode_image(path)
    monkeypatch.setenv("IMGSYNTH_MAX_IMAGE_PIXELS", "lots")
    set_max_image_pixels(None)  # back to the environment, which is wrong now
    with pytest.raises(Exception, match="IMGSYNTH_MAX_IMAGE_PIXELS") as err:
        decode_image(path)
    assert err.type.__name__ in ("RecipeError", "InputError")


def test_a_raised_limit_also_raises_pillows_own(tmp_path):
    """Pillow refuses over 2 x 89 M pixels by itself; a limit raised above that must hold."""
    path = bmp_header(tmp_path / "big.bmp", 15000, 15000)  # 225 M pixels
    with pytest.raises(InputError, match="15000x15000"):
        image_size(path)
    set_max_image_pixels(300_000_000)
    assert image_size(path) == (15000, 15000)


# ---------------------------------------------------------------- every reader

def _coco_dataset(root: Path, writer) -> Path:
    image = writer(root / "images" / "x.png")
    doc = {"images": [{"id": 1, "file_name": image.name}], "annotations": [],
           "categories": [{"id": 1, "name": "a"}]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def _yolo_dataset(root: Path, writer) -> Path:
    writer(root / "images" / "x.png")
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [a]\n")
    return root


def _voc_dataset(root: Path, writer) -> Path:
    writer(root / "JPEGImages" / "x.png")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "x.xml").write_text("<annotation><filename>x.png</filename></annotation>")
    return root


def _imagefolder_dataset(root: Path, writer) -> Path:
    writer(root / "a" / "x.png")
    return root


READERS = {"coco": _coco_dataset, "yolo": _yolo_dataset, "voc": _voc_dataset,
           "imagefolder": _imagefolder_dataset}


@pytest.mark.parametrize("fmt", READERS)
@pytest.mark.parametrize("name", list(GOOD) + list(BAD))
def test_every_reader_loads_the_corpus_or_names_the_file(tmp_path, fmt, name):
    writer, expected = {**GOOD, **BAD}[name]
    ds = read_dataset(READERS[fmt](tmp_path / "data", writer), format=fmt)
    if name in GOOD:
        assert expected(ds.load(0).image)
    else:
        with pytest.raises(InputError, match=expected) as err:
            ds.load(0)
        assert err.value.file.endswith("x.png")


# ---------------------------------------------------------------- labels: duplicates

def _image(path: Path, width=40, height=30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(path)
    return path


def coco(root: Path, images=None, annotations=(), categories=None) -> Path:
    _image(root / "images" / "a.png")
    _image(root / "images" / "b.png")
    doc = {"images": images if images is not None else
           [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
           "annotations": list(annotations),
           "categories": categories if categories is not None else [{"id": 1, "name": "a"}]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def ann(**fields) -> dict:
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], **fields}


@pytest.mark.parametrize("images, categories, words", [
    ([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], None,
     r"duplicate image id.* 1\b"),
    (None, [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], r"duplicate category id.* 1\b"),
    (None, [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], r"categories 1 and 2 .*same name 'a'"),
])
def test_coco_duplicate_ids_and_names_are_refused(tmp_path, images, categories, words):
    coco(tmp_path, images, [ann()], categories)
    with pytest.raises(InputError, match=words) as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("annotations.json")


@pytest.mark.parametrize("names", ["[a, a, b]", "{0: a, 1: b, 2: a}"])
def test_yolo_duplicate_names_are_refused(tmp_path, names):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text(f"names: {names}\n")
    with pytest.raises(InputError, match="'a' twice") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("data.yaml")


def test_yolo_duplicate_in_classes_txt_and_in_given_classes(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("a\nb\na\n")
    with pytest.raises(InputError, match="'a' twice") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("classes.txt")
    with pytest.raises(InputError, match="'b' twice"):
        read_dataset(tmp_path, classes=["a", "b", "b"])


def test_voc_duplicate_given_classes(tmp_path):
    _image(tmp_path / "JPEGImages" / "a.png")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    with pytest.raises(InputError, match="'a' twice"):
        read_dataset(tmp_path, classes=["a", "a"])


def test_run_refuses_a_coco_file_with_duplicate_image_ids(tmp_path):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    data = coco(tmp_path / "data", [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
                [ann()])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"seed: 1\nsource:\n  type: dataset\n  path: {data}\n"
                      "output:\n  formats: [coco]\n  preview: false\n")
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "annotations.json" in result.output and "duplicate image id" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "images").exists()


# ---------------------------------------------------------------- labels: paths outside

@pytest.mark.parametrize("file_name", ["../secret.png", "sub/../../secret.png", "ABSOLUTE"])
def test_coco_file_name_outside_the_image_folder_is_refused(tmp_path, file_name):
    secret = _image(tmp_path / "data" / "secret.png")  # data/images/../secret.png exists
    if file_name == "ABSOLUTE":
        file_name = str(secret)
    data = coco(tmp_path / "data", [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": file_name}])
    with pytest.raises(InputError, match=r"image id=2: .*leads outside the image folder") as err:
        read_dataset(data)
    assert err.value.file.endswith("annotations.json") and f"'{file_name}'" in str(err.value)


@pytest.mark.parametrize("xml", [
    "<annotation><filename>../../secret.png</filename></annotation>",
    "<annotation><folder>..</folder><filename>secret.png</filename></annotation>",
])
def test_voc_filename_or_folder_outside_the_dataset_is_refused(tmp_path, xml):
    _image(tmp_path / "secret.png")  # reachable from data/JPEGImages/../../ and from data/..
    data = tmp_path / "data"
    (data / "Annotations").mkdir(parents=True)
    (data / "JPEGImages").mkdir()
    (data / "Annotations" / "a.xml").write_text(xml)
    with pytest.raises(InputError, match="leads outside") as err:
        read_dataset(data)
    assert err.value.file.endswith("a.xml")


def test_a_symlinked_image_folder_is_read(tmp_path):
    """The rule is lexical: a folder the user linked into the dataset is fine."""
    _image(tmp_path / "elsewhere" / "a.png")
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to(tmp_path / "elsewhere")
    (data / "annotations.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [],
         "categories": [{"id": 1, "name": "a"}]}))
    assert read_dataset(data).load(0).image.shape == (30, 40, 3)


# ---------------------------------------------------------------- labels: field types

@pytest.mark.parametrize("images, annotations, categories, words", [
    (None, [ann(category_id=[1])], [{"id": [1], "name": "a"}], r"categories\[0\].*'id' must be"),
    (None, [ann(category_id=[1])], None, r"annotations\[0\].*'category_id' must be"),
    (None, [ann(segmentation="polygon")], None, r"'segmentation' must be"),
    (None, [ann(segmentation=[1, 2, 3, 4, 5, 6])], None, r"polygon 0 must be a list"),
    (None, [ann(segmentation=[[1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8, "x"]])], None, r"polygon 1 .*numbers"),
    (None, [ann(segmentation=[[1, 2, [3, 4], 5, 6, 7]])], None, r"polygon 0 .*numbers"),
    ([{"id": 1, "file_name": 12}], [], None, r"images\[0\].*'file_name' must be a string.*got 12"),
    ([{"id": 1, "file_name": "a.png", "width": "wide", "height": 30}], [], None, r"'width'"),
    (None, [ann(iscrowd="0")], None, r"'iscrowd' must be 0 or 1"),
    (None, [ann(bbox={"x": 1})], None, r"'bbox' must be \[x, y, width, height\]"),
    (None, [], [{"id": 1, "name": ["a"]}], r"'name' must be"),
])
def test_coco_fields_of_the_wrong_type(tmp_path, images, annotations, categories, words):
    coco(tmp_path, images, annotations, categories)
    with pytest.raises(InputError, match=words) as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("annotations.json")


@pytest.mark.parametrize("yaml_text, words", [
    ("names: {a: cat, b: dog}\n", r"names.*key 'a'"),
    ("names: [cat, [dog]]\n", r"names.*\['dog'\]"),
    ("names: [yes, no]\n", r"(?s)names: class 0 is True.*quote"),
    ("names: [cat]\ntrain: 5\n", r"'train'"),
    ("names: [cat]\npath: [a, b]\n", r"'path'"),
])
def test_yolo_data_yaml_fields_of_the_wrong_type(tmp_path, yaml_text, words):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text(yaml_text)
    with pytest.raises(InputError, match=words) as err:
        read_dataset(tmp_path / "data.yaml" if "train" in yaml_text or "path" in yaml_text
                     else tmp_path)
    assert err.value.file.endswith("data.yaml")


def test_yolo_names_mapping_with_string_digit_keys_is_read(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: {'1': dog, '0': cat}\n")
    assert read_dataset(tmp_path).classes == ["cat", "dog"]


# ---------------------------------------------------------------- RLE

@pytest.mark.parametrize("counts, words", [
    ([0, 10**9], r"cover 1,000,000,000 pixels but its size \[30, 40\] holds 1,200"),
    ([0, 10**11], r"cover 100,000,000,000 pixels"),
    ([5, -3, 1198], r"run 1 is negative"),
    ("0P", r"truncated"),
    ("\x7f\x7f", r"not a COCO compressed RLE"),
    ({"a": 1}, r"'counts' must be"),
    ([0, 1.5, 1198.5], r"whole numbers"),
    (1200, r"'counts' must be"),
])
def test_malformed_or_bomb_rle_is_refused_before_decoding(tmp_path, counts, words):
    coco(tmp_path, None, [ann(segmentation={"size": [30, 40], "counts": counts})])
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=words) as err:
            read_dataset(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert err.value.file.endswith("annotations.json") and "annotation id=1" in str(err.value)


def test_rle_size_that_disagrees_with_the_stated_image_size(tmp_path):
    coco(tmp_path, None, [ann(segmentation={"size": [300, 400], "counts": [0, 120000]})])
    with pytest.raises(InputError, match=r"RLE size \[300, 400\] does not match the image size \[30, 40\]") as err:
        read_dataset(tmp_path)
    assert "annotation id=1" in str(err.value)


def test_rle_decode_checks_counts_before_allocating():
    with pytest.raises(ValueError, match="cover 100,000,000,000 pixels"):
        rle_decode({"size": [2, 2], "counts": [0, 10**11]})
    with pytest.raises(ValueError, match="negative"):
        rle_decode({"size": [2, 2], "counts": [5, -1]})
    with pytest.raises(ValueError, match="truncated"):
        rle_decode({"size": [2, 2], "counts": "aaa`"})


def test_rle_sample_equals_the_decoded_mask_at_those_pixels():
    rng = np.random.default_rng(3)
    mask = rng.random((37, 53)) > 0.6
    rle = rle_encode(mask)
    rows, cols = np.array([0, 5, 36]), np.array([0, 7, 8, 52])
    assert np.array_equal(rle_sample(rle, rows, cols), mask[np.ix_(rows, cols)])
    assert np.array_equal(rle_decode(rle), mask)


# ---------------------------------------------------------------- diagnostics

def test_negative_size_box_says_so(tmp_path):
    coco(tmp_path, None, [ann(bbox=[10, 10, -4, 5])])
    with pytest.warns(LabelWarning, match=r"negative width") as caught:
        read_dataset(tmp_path)
    assert "no area" not in str(caught[0].message)


def test_yolo_warnings_show_plain_numbers(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.6 0.5 0.0 0.3\n")
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    with pytest.warns(LabelWarning) as caught:
        read_dataset(tmp_path)
    message = str(caught[0].message)
    assert "np.float64" not in message and "0.6" in message


# ---------------------------------------------------------------- preview and eval

def _preview_folder(out: Path, image_path: Path, width: int, height: int, instances) -> Path:
    (out / "images").mkdir(parents=True, exist_ok=True)
    record = {"id": 1, "index": 0, "image": str(image_path.relative_to(out)), "width": width,
              "height": height, "instances": instances}
    (out / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    return out


def test_preview_decodes_a_large_image_reduced_with_its_labels_scaled(tmp_path):
    from imgsynth.preview import PALETTE, class_colors, grid_area, load_records, render_tile

    width, height = 4000, 3000
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    path = tmp_path / "out" / "images" / "big.jpg"
    _save(path, Image.fromarray(image), quality=90)
    mask = np.zeros((height, width), dtype=bool)
    mask[1000:2000, 1000:2000] = True
    out = _preview_folder(tmp_path / "out", path, width, height, [
        {"class": "a", "bbox_xyxy": [1000, 1000, 2000, 2000], "segmentation": rle_encode(mask)}])
    records = list(load_records(out))
    area = grid_area(records)
    tracemalloc.start()
    try:
        tile = render_tile(out, records[0], class_colors(["a"]), area, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # the full image as uint8 alone is 36 MB
    scale = min(area[0] / width, area[1] / height)
    x0 = (area[0] - round(width * scale)) // 2
    y0 = (area[1] - round(height * scale)) // 2
    inside = tile[y0 + round(1500 * scale), x0 + round(1500 * scale)]
    outside = tile[y0 + round(500 * scale), x0 + round(500 * scale)]
    assert inside[0] > outside[0] + 40  # the mask is tinted with the class colour (red)
    edge = tile[y0 + round(1500 * scale), x0 + round(1000 * scale)]
    assert tuple(edge) == PALETTE[0]  # the box outline at its scaled place


def test_preview_of_a_bomb_shows_the_error_in_its_tile(tmp_path):
    from imgsynth.preview import make_preview

    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    header_bomb(out / "images" / "bomb.png", 30000, 30000)
    _preview_folder(out, out / "images" / "bomb.png", 30000, 30000, [])
    assert make_preview(out).is_file()


def test_eval_names_a_bomb_or_corrupt_image_without_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    real, fake = tmp_path / "real", tmp_path / "fake"
    for folder in (real, fake):
        for k in range(3):
            _save(folder / f"{k}.png", Image.fromarray(rgb_array()))
    header_bomb(fake / "3.png", 30000, 30000)
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake),
                                      "--metrics", "stats", "--extractor", "builtin",
                                      "--out", str(tmp_path / "report")])
    assert result.exit_code == 2, result.output
    assert "3.png" in result.output and "30000x30000" in result.output
    assert "Traceback" not in result.output


def test_image_module_documents_its_limit():
    assert "IMGSYNTH_MAX_IMAGE_PIXELS" in image_module.__doc__


# ---------------------------------------------------------------- label text encoding

def _yolo_text_files(root: Path, label: bytes, classes: bytes | None = None,
                     data_yaml: bytes | None = None) -> Path:
    _image(root / "images" / "a.png")
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_bytes(label)
    if classes is not None:
        (root / "classes.txt").write_bytes(classes)
    if data_yaml is not None:
        (root / "data.yaml").write_bytes(data_yaml)
    return root


@pytest.mark.parametrize("files, bad", [
    (dict(label=b"\xff\xfe0 0.5 0.5 0.1 0.1\n", classes=b"a\n"), "a.txt"),
    (dict(label=b"0 0.5 0.5 0.1 0.1\n", classes=b"\xffa\n"), "classes.txt"),
    (dict(label=b"0 0.5 0.5 0.1 0.1\n", data_yaml=b"names: [\xff]\n"), "data.yaml"),
])
def test_label_text_that_is_not_utf8_names_the_file(tmp_path, files, bad):
    _yolo_text_files(tmp_path, **files)
    with pytest.raises(InputError, match="not UTF-8") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith(bad)


def test_label_text_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors start UTF-8 files with a BOM: it must not become part of a name."""
    bom = b"\xef\xbb\xbf"
    _yolo_text_files(tmp_path / "yolo", bom + b"0 0.5 0.5 0.2 0.2\n", classes=bom + b"cat\ndog\n")
    ds = read_dataset(tmp_path / "yolo")
    assert ds.classes == ["cat", "dog"] and ds.load(0).class_names == ["cat"]
    data = coco(tmp_path / "coco", None, [ann()])
    (data / "annotations.json").write_bytes(bom + (data / "annotations.json").read_bytes())
    assert read_dataset(data).classes == ["a"]


@pytest.mark.parametrize("line, words", [
    (b'{"image": "images/a.png", "instances": "cat"}', r"line 1 .*instances"),
    (b'{"image": "../outside.png"}', r"line 1: .*leads outside"),
    (b'{"image": "images/a.png", "label": "\xff"}', r"not UTF-8"),
])
def test_eval_manifest_records_are_checked(tmp_path, line, words):
    from imgsynth.evaluate.imageset import open_image_set

    _save(tmp_path / "set" / "images" / "a.png", Image.fromarray(rgb_array()))
    _save(tmp_path / "outside.png", Image.fromarray(rgb_array()))
    (tmp_path / "set" / "manifest.jsonl").write_bytes(line + b"\n")
    with pytest.raises(InputError, match=words) as err:
        open_image_set(tmp_path / "set")
    assert err.value.file.endswith("manifest.jsonl")
