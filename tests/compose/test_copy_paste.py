"""Copy-paste augmentation of a COCO set: covered annotations shrink or vanish."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgsynth.compose.config import CopyPasteConfig
from imgsynth.core.errors import InputError
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.io.readers import read_dataset


def _source(path, **fields):
    return CopyPasteConfig(dataset=str(path), **fields).build(BuildContext())


def test_pasted_instances_cover_old_ones_and_labels_stay_exact(coco_dataset):
    source = _source(coco_dataset, pastes=[3, 3], scale=[0.8, 2.0], min_visible_fraction=0.0, min_area=1)
    original = read_dataset(coco_dataset, format="coco")
    assert len(source) == 6
    shrunk = vanished = pasted = 0
    for i in range(12):
        sample = source.generate(i, sample_rng(0, "copy_paste", i))
        target = original.load(sample.meta["copy_paste"]["target"])
        pasted_union = np.zeros(sample.image.shape[:2], int)
        for inst in sample.instances:
            assert inst.mask.any() and inst.bbox_xyxy == tight_bbox(inst.mask)
            if inst.attributes["copy_paste"] == "pasted":
                pasted_union += inst.mask
        assert pasted_union.max() <= 1
        for inst in sample.instances:  # pasted pixels belong to the pasted instance only
            if inst.attributes["copy_paste"] == "kept":
                assert not (inst.mask & (pasted_union > 0)).any()
        kept = {inst.attributes["original_index"]: inst for inst in sample.instances
                if inst.attributes["copy_paste"] == "kept"}
        pasted += sum(inst.attributes["copy_paste"] == "pasted" for inst in sample.instances)
        for k, old in enumerate(target.instances):
            if k not in kept:
                vanished += 1
                continue
            new = kept[k]
            assert not (new.mask & ~old.mask).any() and new.class_name == old.class_name
            if new.mask.sum() < old.mask.sum():
                shrunk += 1
                assert new.occluded > 0 and new.visible_fraction < 1
                x1, y1, x2, y2 = new.bbox_xyxy
                ox1, oy1, ox2, oy2 = tight_bbox(old.mask)
                assert ox1 <= x1 and oy1 <= y1 and x2 <= ox2 and y2 <= oy2
    assert shrunk > 0 and vanished > 0 and pasted > 0


def test_same_index_same_sample(coco_dataset):
    a = _source(coco_dataset).generate(4, sample_rng(9, "copy_paste", 4))
    b = _source(coco_dataset).generate(4, sample_rng(9, "copy_paste", 4))
    assert (a.image == b.image).all()
    assert [i.bbox_xyxy for i in a.instances] == [i.bbox_xyxy for i in b.instances]


def test_empty_segmentation_is_counted_never_labeled(coco_dataset):
    path = coco_dataset / "annotations.json"
    doc = json.loads(path.read_text())
    first_seen = set()
    for ann in doc["annotations"]:  # the first annotation of each image with several
        if ann["image_id"] not in first_seen and ann["image_id"] % 3 != 1:
            ann["segmentation"] = []
        first_seen.add(ann["image_id"])
    path.write_text(json.dumps(doc))
    source = _source(coco_dataset, min_visible_fraction=0.0, min_area=1)
    empty = 0
    for i in range(6):
        sample = source.generate(i, sample_rng(0, "copy_paste", i))
        empty += sample.meta["copy_paste"]["left_out"].get("empty_segmentation", 0)
        assert all(inst.mask.any() for inst in sample.instances)
    assert empty > 0
    for ann in doc["annotations"]:
        ann["segmentation"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(SkipSample, match="no_instances"):
        _source(coco_dataset).generate(0, sample_rng(0, "copy_paste", 0))


def test_coco_instances_as_an_object_library(coco_dataset, tmp_path):
    from tests.compose.conftest import build, generate, make_backgrounds

    make_backgrounds(tmp_path / "backgrounds")
    source = build(tmp_path, objects=[{"path": str(coco_dataset), "format": "coco"}],
                   objects_per_image=[3, 3])
    assert source.classes == ["disk", "square"]
    sample = generate(source, 0)
    assert len(sample.instances) >= 1
    assert all(inst.bbox_xyxy == tight_bbox(inst.mask) for inst in sample.instances)


def test_one_image_is_not_enough(coco_dataset):
    path = coco_dataset / "annotations.json"
    doc = json.loads(path.read_text())
    doc["images"] = doc["images"][:1]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] == doc["images"][0]["id"]]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="at least 2 images"):
        _source(coco_dataset)
