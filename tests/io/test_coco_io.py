"""COCO writer -> reader round trip, and the file as pycocotools/COCOeval see it."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from imgsynth.io.readers import read_dataset
from imgsynth.io.writers.coco import write_coco
from imgsynth.recipes.schema import OutputConfig


def test_coco_round_trip_keeps_boxes_masks_and_classes(written, classes):
    out, records, samples = written
    write_coco(out, records, classes, OutputConfig(formats=["coco"]))
    ds = read_dataset(out)
    assert ds.format == "coco" and ds.classes == classes and len(ds) == 3
    for i, sample in enumerate(samples):
        back = ds.load(i)
        assert np.array_equal(back.image, sample.image)
        assert [inst.class_name for inst in back.instances] == sample.class_names
        for got, want in zip(back.instances, sample.instances):
            np.testing.assert_allclose(got.bbox_xyxy, want.bbox_xyxy, atol=1e-3)
            if want.mask is not None:
                assert np.array_equal(got.mask, want.mask)
            else:
                assert got.mask is None


def test_coco_file_has_the_required_fields_and_ids(written, classes):
    out, records, _ = written
    write_coco(out, records, classes, OutputConfig())
    doc = json.loads((out / "annotations.json").read_text())
    assert set(doc) == {"info", "licenses", "images", "annotations", "categories"}
    assert [c["id"] for c in doc["categories"]] == [1, 2, 3]
    assert [im["id"] for im in doc["images"]] == [1, 2, 3]
    assert doc["images"][0]["file_name"] == "images/00000001.png"
    assert [a["id"] for a in doc["annotations"]] == [1, 2, 3, 4]
    rect = doc["annotations"][0]
    assert rect["bbox"] == [10.0, 5.0, 20.0, 15.0] and rect["area"] == 300
    assert rect["iscrowd"] == 0 and isinstance(rect["segmentation"]["counts"], str)
    bird = doc["annotations"][3]
    assert bird["segmentation"] == [] and bird["area"] == 17 * 27


def _coco_ap(gt_path, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        preds = []
        for ann in gt.loadAnns(gt.getAnnIds()):
            pred = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
            if iou_type == "bbox":
                pred["bbox"] = ann["bbox"]
            else:
                pred["segmentation"] = gt.annToRLE(ann)
            preds.append(pred)
        evaluator = COCOeval(gt, gt.loadRes(preds), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0]


@pytest.mark.parametrize("encoding", ["rle", "polygon"])
def test_cocoeval_of_ground_truth_against_itself_is_perfect(tmp_path, encoding, classes,
                                                           make_samples, write_output):
    samples = make_samples()
    for s in samples:  # segm evaluation needs a segmentation on every annotation
        s.instances = [inst for inst in s.instances if inst.mask is not None]
    out = tmp_path / "out"
    records = write_output(out, samples)
    write_coco(out, records, classes, OutputConfig(coco_segmentation=encoding))
    assert _coco_ap(out / "annotations.json", "bbox") == pytest.approx(1.0)
    assert _coco_ap(out / "annotations.json", "segm") == pytest.approx(1.0)


def test_polygon_encoding_reads_back_close_to_the_mask(written, classes):
    out, records, samples = written
    write_coco(out, records, classes, OutputConfig(coco_segmentation="polygon"))
    doc = json.loads((out / "annotations.json").read_text())
    assert isinstance(doc["annotations"][0]["segmentation"], list)
    back = read_dataset(out).load(0)
    for got, want in zip(back.instances, samples[0].instances):
        overlap = (got.mask & want.mask).sum() / (got.mask | want.mask).sum()
        assert overlap > 0.9


def test_coco_bytes_are_deterministic(written, classes):
    out, records, _ = written
    write_coco(out, records, classes, OutputConfig())
    first = (out / "annotations.json").read_bytes()
    write_coco(out, records, classes, OutputConfig())
    assert (out / "annotations.json").read_bytes() == first
