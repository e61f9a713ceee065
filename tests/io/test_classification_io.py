"""ImageFolder, labels.csv, Hugging Face metadata.jsonl and semantic mask maps."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from imgsynth.core.errors import RecipeError
from imgsynth.io.image import decode_image
from imgsynth.io.readers import read_dataset
from imgsynth.io.writers.classification import write_csv, write_hf_metadata, write_imagefolder
from imgsynth.io.writers.masks import write_semantic_masks
from imgsynth.recipes.schema import OutputConfig


def test_imagefolder_links_images_into_class_folders_and_reads_back(written, classes):
    out, records, samples = written
    write_imagefolder(out, records, classes, OutputConfig(formats=["imagefolder"]))
    linked = out / "imagefolder" / "dog" / "00000002.png"
    assert os.path.samefile(linked, out / "images" / "00000002.png")  # a hard link, no copy
    ds = read_dataset(out)  # an imgsynth output with only imagefolder: auto finds it
    assert ds.format == "imagefolder" and ds.classes == sorted(classes)
    assert [ds.load(i).label for i in range(len(ds))] == ["bird", "cat", "dog"]
    assert np.array_equal(ds.load(1).image, samples[0].image)


def test_csv_lists_file_and_label(written, classes):
    out, records, _ = written
    write_csv(out, records, classes, OutputConfig())
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["file", "label"], ["images/00000001.png", "cat"],
                    ["images/00000002.png", "dog"], ["images/00000003.png", "bird"]]


def test_classification_formats_need_labels(written, classes):
    out, records, _ = written
    for rec in records:
        rec["label"] = None
    with pytest.raises(RecipeError, match="needs a classification label") as err:
        write_csv(out, records, classes, OutputConfig())
    assert err.value.key == "output.formats"


def test_hf_metadata_has_relative_file_names_labels_and_objects(written, classes):
    out, records, _ = written
    write_hf_metadata(out, records, classes, OutputConfig())
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [rec["image"] for rec in records]
    assert all((out / r["file_name"]).is_file() for r in rows)
    assert [r["label"] for r in rows] == ["cat", "dog", "bird"]
    assert rows[0]["objects"] == {"bbox": [[10.0, 5.0, 20.0, 15.0], [33.0, 21.0, 25.0, 19.0]],
                                  "categories": [0, 1]}
    assert rows[2]["objects"] == {"bbox": [], "categories": []}


def test_semantic_masks_hold_class_id_plus_one(written, classes):
    out, records, samples = written
    with pytest.warns(UserWarning, match="box-only"):
        write_semantic_masks(out, records, classes, OutputConfig())
    for sample in samples:
        semantic = decode_image(out / "semantic" / f"{sample.index + 1:08d}.png", mode="L")
        expected = np.zeros(semantic.shape, dtype=np.uint8)
        for inst in sample.instances:
            if inst.mask is not None:
                expected[inst.mask] = classes.index(inst.class_name) + 1
        assert np.array_equal(semantic, expected)
    assert set(np.unique(decode_image(out / "semantic" / "00000001.png", mode="L"))) == {0, 1, 2}
