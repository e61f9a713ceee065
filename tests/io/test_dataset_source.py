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
    source = config.build(BuildContext())
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
    a = coco.build(BuildContext()).generate(4, None)
    b = yolo.build(BuildContext()).generate(4, None)
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


def _same_sample(a, b):
    assert np.array_equal(a.image, b.image) and a.label == b.label and a.source_files == b.source_files
    assert len(a.instances) == len(b.instances)
    for x, y in zip(a.instances, b.instances):
        assert (x.class_name, x.bbox_xyxy, x.truncated, x.occluded, x.difficult, x.iscrowd) == \
               (y.class_name, y.bbox_xyxy, y.truncated, y.occluded, y.difficult, y.iscrowd)
        assert (x.mask is None) == (y.mask is None) and (x.mask is None or np.array_equal(x.mask, y.mask))
        assert [p.tolist() for p in x.polygons or []] == [p.tolist() for p in y.polygons or []]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "imagefolder"])
def test_workers_read_the_drivers_index_and_load_the_same_samples(tmp_path, written, classes, fmt):
    """A run's driver shares the parsed dataset; its workers open that index instead of
    parsing every label file (masks as RLE, polygons, normalized YOLO, class labels)."""
    from imgsynth.core.registry import FORMATS
    from imgsynth.io.readers.index import IndexedEntries

    out, records, _ = written
    resolve(FORMATS[fmt])(out, records, classes, OutputConfig(formats=[fmt]))
    path = out / "imagefolder" if fmt == "imagefolder" else out
    config = DatasetSourceConfig(type="dataset", path=path, format=fmt, copies=2)
    parsed = config.build(BuildContext()).dataset  # the driver's parse
    config.share(tmp_path / "run")
    assert isinstance(parsed.entries, list) and isinstance(config.dataset().entries, IndexedEntries)
    worker_config = DatasetSourceConfig(type="dataset", path=path, format=fmt, copies=2)
    opened = worker_config.build(BuildContext(out_dir=tmp_path / "run", in_worker=True)).dataset
    assert isinstance(opened.entries, IndexedEntries) and worker_config._dataset is None  # not parsed
    assert (opened.format, opened.classes, opened.issues) == (parsed.format, parsed.classes, parsed.issues)
    assert len(opened) == len(parsed) == 3
    for i in range(len(parsed)):
        _same_sample(parsed.load(i), opened.load(i))


def test_a_worker_without_the_index_parses_the_dataset(tmp_path):
    config = DatasetSourceConfig(type="dataset", path=SHAPES)
    source = config.build(BuildContext(out_dir=tmp_path, in_worker=True))
    assert isinstance(source.dataset.entries, list) and len(source) == 12
