"""Malformed label files: an InputError naming the file and the record, or a documented
fix (clip, drop with a warning) -- never a silently wrong label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imgsynth.core.errors import InputError
from imgsynth.io.readers import read_dataset
from imgsynth.io.readers.base import LabelWarning


def _image(path, width=40, height=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(path)


def _coco(tmp_path, annotations, images=None, text=None):
    _image(tmp_path / "images" / "a.png")
    doc = {"images": images or [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
           "annotations": annotations, "categories": [{"id": 5, "name": "cat"}]}
    (tmp_path / "annotations.json").write_text(text if text is not None else json.dumps(doc))
    return tmp_path


def _ann(ann_id, bbox, **extra):
    return {"id": ann_id, "image_id": 1, "category_id": 5, "bbox": bbox, **extra}


def test_coco_bad_json_names_file_and_position(tmp_path):
    _coco(tmp_path, [], text='{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(InputError, match=r"line 2 column") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("annotations.json")


def test_coco_unknown_category_names_the_annotation(tmp_path):
    _coco(tmp_path, [_ann(7, [1, 1, 5, 5], category_id=99)])
    with pytest.raises(InputError, match=r"annotation id=7 .*category_id 99"):
        read_dataset(tmp_path)


def test_coco_annotation_of_a_missing_image_record(tmp_path):
    _coco(tmp_path, [_ann(3, [1, 1, 5, 5], image_id=42)])
    with pytest.raises(InputError, match=r"annotation id=3 .*image_id 42"):
        read_dataset(tmp_path)


def test_coco_image_file_missing(tmp_path):
    _coco(tmp_path, [], images=[{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"}])
    with pytest.raises(InputError, match=r"image id=2: file '.*gone.png' not found"):
        read_dataset(tmp_path)


def test_coco_boxes_are_clipped_counted_or_dropped_with_a_warning(tmp_path):
    _coco(tmp_path, [_ann(1, [-5, 10, 20, 40]),  # sticks out left and bottom
                     _ann(2, [10, 10, 0, 5]),  # zero width
                     _ann(3, [2, 2, 8, 8], segmentation=[[1, 2, 3, 4]])])  # 2-point polygon
    with pytest.warns(LabelWarning) as caught:
        ds = read_dataset(tmp_path)
    messages = [str(w.message) for w in caught]
    assert any("annotation id=2" in m and "a.png" in m and "dropped" in m for m in messages)
    assert any("annotation id=3" in m and "polygon 0" in m for m in messages)
    assert ds.issues == {"clipped_boxes": 1, "dropped_empty_boxes": 1, "dropped_polygons": 1}
    boxes = [inst.bbox_xyxy for inst in ds.load(0).instances]
    assert boxes == [(0.0, 10.0, 15.0, 30.0), (2.0, 2.0, 10.0, 10.0)]
    assert ds.load(0).instances[1].mask is None  # its only polygon was unusable: box only


def test_coco_size_that_disagrees_with_the_displayed_image(tmp_path):
    _coco(tmp_path, [], images=[{"id": 1, "file_name": "a.png", "width": 30, "height": 40}])
    ds = read_dataset(tmp_path)
    with pytest.raises(InputError, match=r"states size 30x40 but the image displays as 40x30"):
        ds.load(0)


def test_coco_rle_of_the_wrong_size(tmp_path):
    _coco(tmp_path, [_ann(1, [0, 0, 2, 2], segmentation={"size": [3, 3], "counts": [0, 9]})])
    with pytest.raises(InputError, match=r"RLE size \[3, 3\]"):
        read_dataset(tmp_path).load(0)


def _yolo(tmp_path, lines, names=("cat", "dog")):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir(exist_ok=True)
    (tmp_path / "labels" / "a.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "data.yaml").write_text(json.dumps({"names": list(names)}))
    return tmp_path


@pytest.mark.parametrize("line, message", [
    ("2 0.5 0.5 0.1 0.1", r"line 2: class id 2 is not one of 0..1"),
    ("0 0.5 0.5 0.1", r"line 2: 4 values"),
    ("0 0.5 0.5 0.1 0.2 0.3", r"line 2: 6 values"),
    ("1 0.5 abc 0.1 0.1", r"line 2: 'abc' is not a number"),
    ("0.5 0.5 0.5 0.1 0.1", r"line 2: class id 0.5"),
])
def test_yolo_bad_lines_name_file_and_line(tmp_path, line, message):
    _yolo(tmp_path, ["0 0.5 0.5 0.2 0.2", line])
    with pytest.raises(InputError, match=message) as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("a.txt")


def test_yolo_label_without_image(tmp_path):
    _yolo(tmp_path, ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InputError, match="label file has no image") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("orphan.txt")


def test_yolo_out_of_range_is_clipped_and_zero_size_dropped(tmp_path):
    _yolo(tmp_path, ["0 0.9 0.5 0.4 0.2", "1 0.5 0.5 0.0 0.3", "1 -0.1 0.2 0.5 0.2 0.5 0.6"])
    with pytest.warns(LabelWarning, match=r"a.txt: line 2: box .* has no area"):
        ds = read_dataset(tmp_path)
    assert ds.issues == {"clipped_boxes": 2, "dropped_empty_boxes": 1}
    sample = ds.load(0)
    assert sample.class_names == ["cat", "dog"]
    np.testing.assert_allclose(sample.instances[0].bbox_xyxy, (28.0, 12.0, 40.0, 18.0))
    # pixel centers inside the triangle (0, 6) (20, 6) (20, 18): (15.5, 8.5) is, (10.5, 12.5) is not
    assert sample.instances[1].mask[8, 15] and not sample.instances[1].mask[12, 10]
    assert not sample.instances[1].mask[:, 20:].any()


def test_yolo_image_without_label_is_background(tmp_path):
    _yolo(tmp_path, [""])
    _image(tmp_path / "images" / "b.png")
    ds = read_dataset(tmp_path)
    assert len(ds) == 2 and ds.load(1).instances == [] and ds.load(1).source_files[-1].endswith("b.png")


def test_yolo_without_class_names(tmp_path):
    _yolo(tmp_path, [""])
    (tmp_path / "data.yaml").unlink()
    with pytest.raises(InputError, match="no class names"):
        read_dataset(tmp_path, "yolo")


def _voc(tmp_path, xml):
    _image(tmp_path / "JPEGImages" / "a.jpg")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(xml)
    return tmp_path


def test_voc_bad_xml(tmp_path):
    _voc(tmp_path, "<annotation><filename>a.jpg</filename>\n<object></annotation>")
    with pytest.raises(InputError, match=r"invalid XML at line 2") as err:
        read_dataset(tmp_path)
    assert err.value.file.endswith("a.xml")


def test_voc_object_without_box(tmp_path):
    _voc(tmp_path, "<annotation><filename>a.jpg</filename><object><name>cat</name></object></annotation>")
    with pytest.raises(InputError, match=r"object #0 \(cat\) has no <bndbox>"):
        read_dataset(tmp_path)


def test_voc_annotation_without_image(tmp_path):
    _voc(tmp_path, "<annotation><filename>zzz.jpg</filename></annotation>")
    with pytest.raises(InputError, match="annotation has no image: 'zzz.jpg'"):
        read_dataset(tmp_path)


def test_auto_refuses_a_folder_with_several_formats(tmp_path):
    _yolo(tmp_path, [""])
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(InputError, match="several label formats: yolo, voc") as err:
        read_dataset(tmp_path)
    assert "set the format" in err.value.fix


def test_exif_rotated_image_labels_refer_to_the_displayed_image(tmp_path):
    """A YOLO box drawn on the displayed (rotated) picture lands on the displayed pixels."""
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    img.save(tmp_path / "images" / "r.jpg", exif=exif)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "r.txt").write_text("0 0.5 0.25 1.0 0.5\n")  # the top half as shown
    (tmp_path / "classes.txt").write_text("cat\n")
    sample = read_dataset(tmp_path).load(0)
    assert sample.image.shape[:2] == (40, 20)
    assert sample.instances[0].bbox_xyxy == (0.0, 0.0, 20.0, 20.0)
