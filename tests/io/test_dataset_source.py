"""The `dataset` source: config validation, counts, index -> (image, copy), originals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from imgsynth.core.registry import SOURCES, resolve
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext
from imgsynth.io.source import DatasetSourceConfig
from imgsynth.io.writers.coco import write_coco
from imgsynth.io.writers.manifest import read_manifest
from imgsynth.recipes.schema import OutputConfig

SHAPES = "sample_assets/datasets/shapes_coco"


def test_registered_and_documented():
    assert resolve(SOURCES["dataset"]) is DatasetSourceConfig
    for name, field in DatasetSourceConfig.model_fields.items():
        assert field.description, name


def test_missing_path_and_unknown_keys_are_refused(tmp_path):
    with pytest.raises(ValidationError) as err:
        DatasetSourceConfig(type="dataset", path=tmp_path / "nope")
    assert err.value.errors()[0]["loc"] == ("path",) and "does not exist" in str(err.value)
    with pytest.raises(ValidationError):
        DatasetSourceConfig(type="dataset", path=tmp_path, copis=2)
    with pytest.raises(ValidationError, match="nothing to make"):
        DatasetSourceConfig(type="dataset", path=tmp_path, copies=0)


def test_count_classes_and_index_mapping(written, classes):
    out, records, samples = written
    write_coco(out, records, classes, OutputConfig())
    config = DatasetSourceConfig(type="dataset", path=out, copies=2, include_originals=True)
    assert config.classes() == classes and config.count() == 3 * 3
    source = config.build(BuildContext(seed=0))
    seen = []
    for index in range(config.count() + 3):  # one more image's worth: a second round
        sample = source.generate(index, sample_rng(0, "source", index))
        seen.append((sample.meta["source_index"], sample.meta["copy"], sample.passthrough))
        assert sample.index == index
        assert np.array_equal(sample.image, samples[sample.meta["source_index"]].image)
        assert sample.source_files[-1].endswith("annotations.json")
    assert seen[:3] == [(0, 0, True), (0, 1, False), (0, 2, False)]
    assert seen[3:6] == [(1, 0, True), (1, 1, False), (1, 2, False)]
    assert seen[9:] == [(0, 3, False), (0, 4, False), (0, 5, False)]  # further copies, no originals


def test_reads_the_sample_assets_datasets_alike():
    coco = DatasetSourceConfig(type="dataset", path=SHAPES)
    yolo = DatasetSourceConfig(type="dataset", path="sample_assets/datasets/shapes_yolo")
    assert coco.classes() == yolo.classes() and coco.count() == yolo.count() == 12
    a = coco.build(BuildContext(seed=0)).generate(4, None)
    b = yolo.build(BuildContext(seed=0)).generate(4, None)
    assert a.class_names == b.class_names
    for x, y in zip(a.instances, b.instances):
        assert np.array_equal(x.mask, y.mask) and x.bbox_xyxy == y.bbox_xyxy


def test_read_manifest_names_a_broken_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n" + '{"id": 2,' + "\n")
    with pytest.raises(Exception, match="line 2 is not valid JSON") as err:
        read_manifest(path)
    assert err.value.file == str(path)
    path.write_text(json.dumps({"id": 1}) + "\n\n")
    assert read_manifest(path) == [{"id": 1}]
