"""record_from_sample: the manifest record every writer reads; ManifestRecords: the same
records streamed from manifest.jsonl, as a run hands them to the writers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from imgsynth.core.masks import rle_decode
from imgsynth.core.registry import FORMATS, lookup
from imgsynth.core.sample import Instance, Sample
from imgsynth.io.writers.manifest import ManifestRecords, record_from_sample
from imgsynth.recipes.schema import OutputConfig
from tests.conftest import tree_hashes


def test_record_holds_files_labels_and_exact_masks():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    sample = Sample(
        index=4, image=np.zeros((10, 12, 3), dtype=np.uint8), label="cat", text="héllo",
        instances=[
            Instance("cat", (3.0, 2.0, 9.0, 5.0), mask=mask, occluded=0.123456),
            Instance("dog", (0.123456789, 1.0, 4.5, 3.25),
                     polygons=[np.array([[0.5, 1.0], [4.0, 1.0], [2.0, 3.0]])],
                     keypoints=np.array([[1.0, 2.0, 2.0]])),
        ],
        source_files=["data/a.png"], seed_keys=["0/source/4"],
        meta={"copy": np.int64(2), "scale": np.float32(0.5), "shape": (1, 2)})
    rec = record_from_sample(sample, {"image": "images/00000005.png", "mask": "masks/00000005.png"},
                             {"masks/00000005.png": "bb", "images/00000005.png": "aa"})
    assert json.loads(json.dumps(rec)) == rec  # plain JSON
    assert (rec["id"], rec["index"], rec["width"], rec["height"]) == (5, 4, 12, 10)
    assert rec["image"] == "images/00000005.png" and rec["mask"] == "masks/00000005.png"
    assert list(rec["sha256"]) == ["images/00000005.png", "masks/00000005.png"]
    assert rec["meta"] == {"copy": 2, "scale": 0.5, "shape": [1, 2]}
    cat, dog = rec["instances"]
    assert cat["area"] == 18 and np.array_equal(rle_decode(cat["segmentation"]), mask)
    assert cat["occluded"] == 0.1235 and cat["polygons"] is None
    assert dog["bbox_xyxy"] == [0.1235, 1.0, 4.5, 3.25] and dog["segmentation"] is None
    assert dog["area"] == round(4.3765 * 2.25, 4)
    assert dog["polygons"] == [[0.5, 1.0, 4.0, 1.0, 2.0, 3.0]]
    assert dog["keypoints"] == [[1.0, 2.0, 2.0]]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_writer_gives_the_same_bytes_from_the_streamed_manifest(fmt, written, classes, tmp_path):
    """A run passes ManifestRecords (re-read on each pass, not indexable) instead of a list:
    a writer that indexed the records or went over them only once would differ or fail."""
    out, records, _ = written
    for k, rec in enumerate(records):
        rec["text"] = f"line {k}"  # the OCR formats need texts
    (out / "manifest.jsonl").write_text(
        "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records), encoding="utf-8")
    streamed = shutil.copytree(out, tmp_path / "streamed")
    write = lookup(FORMATS, fmt, key="output.formats", what="label format")
    output = OutputConfig(formats=[fmt], shard_size=2)
    write(out, records, classes, output)
    write(streamed, ManifestRecords(streamed / "manifest.jsonl"), classes, output)
    assert tree_hashes(streamed) == tree_hashes(out)


def test_streamed_manifest_is_sized_and_read_again_on_each_pass(tmp_path):
    rows = [{"id": 1, "text": "a\u2028b"}, {"id": 2, "text": "c\x85d"}]  # not line ends in JSONL
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n",
                    encoding="utf-8")
    records = ManifestRecords(path)
    assert len(records) == 2
    assert list(records) == rows and list(records) == rows
