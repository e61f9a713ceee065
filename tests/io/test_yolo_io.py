"""YOLO detect/segment writers: parseable lines in range, data.yaml, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from imgsynth.io.readers import read_dataset
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers.yolo import join_polygons, write_yolo_detect, write_yolo_segment
from imgsynth.recipes.schema import OutputConfig


def _rows(path):
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_yolo_detect_lines_are_normalized_and_every_image_has_a_label_file(written, classes):
    out, records, samples = written
    write_yolo_detect(out, records, classes, OutputConfig(formats=["yolo"]))
    files = sorted((out / "labels").glob("*.txt"))
    assert [f.name for f in files] == ["00000001.txt", "00000002.txt", "00000003.txt"]
    assert files[2].read_text() == ""  # image without objects: empty label file
    rows = [row for f in files for row in _rows(f)]
    assert len(rows) == 4
    for row in rows:
        assert len(row) == 5 and row[0] == int(row[0]) and 0 <= row[0] < len(classes)
        assert all(0.0 <= v <= 1.0 for v in row[1:]) and row[3] > 0 and row[4] > 0
    cls, cx, cy, w, h = _rows(files[0])[0]  # the 20x15 rectangle at (10, 5) in 64x48
    assert (cls, cx, cy, w, h) == pytest.approx((0, 20 / 64, 12.5 / 48, 20 / 64, 15 / 48), abs=1e-6)


def test_data_yaml_names_and_paths(written, classes):
    out, records, _ = written
    write_yolo_detect(out, records, classes, OutputConfig())
    doc = yaml.safe_load((out / "data.yaml").read_text())
    # no `path`: ultralytics takes data.yaml's folder as the root, so the set can move
    assert doc == {"train": "images", "val": "images", "names": {0: "cat", 1: "dog", 2: "bird"}}


def test_yolo_detect_round_trip(written, classes):
    out, records, samples = written
    write_yolo_detect(out, records, classes, OutputConfig())
    ds = read_dataset(out)
    assert ds.format == "yolo" and ds.classes == classes
    for i, sample in enumerate(samples):
        back = ds.load(i)
        assert back.class_names == sample.class_names
        for got, want in zip(back.instances, sample.instances):
            np.testing.assert_allclose(got.bbox_xyxy, want.bbox_xyxy, atol=64 * 1e-6)


def test_boxes_outside_the_image_are_clipped_and_empty_ones_left_out(written, classes):
    out, records, _ = written
    records[2]["instances"] = [
        {"class": "cat", "bbox_xyxy": [-10.0, -5.0, 20.0, 60.0]},
        {"class": "cat", "bbox_xyxy": [70.0, 10.0, 80.0, 20.0]},  # entirely right of the image
        {"class": "dog", "bbox_xyxy": [5.0, 5.0, 5.0, 9.0]},  # zero width
    ]
    with pytest.warns(LabelWarning):
        write_yolo_detect(out, records, classes, OutputConfig())
    assert _rows(out / "labels" / "00000003.txt") == [pytest.approx([0, 10 / 64, 0.5, 20 / 64, 1.0])]


def test_yolo_segment_round_trip_gives_the_masks(written, classes):
    out, records, samples = written
    with pytest.warns(LabelWarning, match="box corners"):  # the box-only bird
        write_yolo_segment(out, records, classes, OutputConfig(formats=["yolo_seg"]))
    for row in _rows(out / "labels" / "00000001.txt"):
        assert len(row) >= 7 and len(row) % 2 == 1 and all(0 <= v <= 1 for v in row[1:])
    ds = read_dataset(out)
    for i, sample in enumerate(samples):
        back = ds.load(i)
        assert back.class_names == sample.class_names
        for got, want in zip(back.instances, sample.instances):
            if want.mask is None:
                continue
            if sample.index == 0:  # one-part masks come back exactly, so do their boxes
                assert got.bbox_xyxy == want.bbox_xyxy
            assert not (want.mask & ~got.mask).any()  # every object pixel comes back
            # a two-part mask is one YOLO outline; its bridge rasterizes as a thin line
            extra = (got.mask & ~want.mask).sum()
            assert extra == 0 if sample.index == 0 else extra < 40


def test_detect_and_segment_together_make_two_datasets(written, classes):
    out, records, _ = written
    output = OutputConfig(formats=["yolo", "yolo_seg"])
    write_yolo_detect(out, records, classes, output)
    with pytest.warns(LabelWarning):
        write_yolo_segment(out, records, classes, output)
    assert all(len(r) == 5 for r in _rows(out / "labels" / "00000001.txt"))
    seg = out / "yolo_seg"
    assert (seg / "images" / "00000001.png").read_bytes() == (out / "images" / "00000001.png").read_bytes()
    assert all(len(r) > 5 for r in _rows(seg / "labels" / "00000001.txt"))
    assert yaml.safe_load((seg / "data.yaml").read_text())["names"][2] == "bird"
    assert len(read_dataset(seg)) == 3


def test_join_polygons_visits_every_part_once():
    a = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    b = a + [10, 0]
    joined = join_polygons([a, b])
    assert len(joined) == len(a) + len(b) + 2  # plus the bridge's two return points
    assert {tuple(p) for p in joined} == {tuple(p) for p in np.vstack([a, b])}
