"""VOC writer: 1-based inclusive integer boxes, flags, round trip through the reader."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from imgsynth.io.readers import read_dataset
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers.voc import write_voc
from imgsynth.recipes.schema import OutputConfig


def test_voc_xml_uses_one_based_inclusive_pixels_and_flags(written, classes):
    out, records, _ = written
    write_voc(out, records, classes, OutputConfig())
    root = ET.parse(out / "Annotations" / "00000001.xml").getroot()
    assert root.findtext("filename") == "00000001.png"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("64", "48")
    cat, dog = root.findall("object")
    # the cat covers columns 10..29 and rows 5..19 (0-based)
    assert [cat.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["11", "6", "30", "20"]
    assert (cat.findtext("truncated"), cat.findtext("difficult"), cat.findtext("occluded")) == ("1", "0", "0")
    assert (dog.findtext("truncated"), dog.findtext("difficult"), dog.findtext("occluded")) == ("0", "1", "1")


def test_voc_round_trip(written, classes):
    out, records, samples = written
    write_voc(out, records, classes, OutputConfig())
    ds = read_dataset(out, "voc", classes=classes)
    assert ds.classes == classes and len(ds) == 3
    assert read_dataset(out, "voc").classes == sorted(classes)  # without a class list
    for i, sample in enumerate(samples):
        back = ds.load(i)
        assert np.array_equal(back.image, sample.image)
        assert back.class_names == sample.class_names
        for got, want in zip(back.instances, sample.instances):
            np.testing.assert_allclose(got.bbox_xyxy, want.bbox_xyxy, atol=1e-3)
            assert got.truncated == want.truncated and got.difficult == want.difficult
            assert (got.occluded > 0) == (want.occluded > 0.05)


def test_subpixel_boxes_are_left_out_with_a_warning(written, classes):
    out, records, _ = written
    records[2]["instances"] = [{"class": "cat", "bbox_xyxy": [5.2, 5.0, 5.4, 9.0]},
                               {"class": "dog", "bbox_xyxy": [2.5, 3.5, 7.5, 9.49]}]
    with pytest.warns(LabelWarning, match="smaller than one pixel"):
        write_voc(out, records, classes, OutputConfig())
    objects = ET.parse(out / "Annotations" / "00000003.xml").getroot().findall("object")
    assert [[o.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] for o in objects] == [
        ["4", "5", "8", "9"]]  # halves round up: 2.5 -> 3 (+1), 3.5 -> 4 (+1), 7.5 -> 8
