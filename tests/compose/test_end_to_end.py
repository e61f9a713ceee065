"""`imgsynth run` with a compose recipe: exact labels in every written format, same bytes twice."""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from imgsynth.core.masks import rle_decode, tight_bbox
from imgsynth.run import run_recipe
from tests.conftest import tree_hashes, write_recipe

RECIPE = """
seed: 3
count: 8
source:
  type: compose
  objects: {assets}/objects
  backgrounds: {assets}/backgrounds
  width: 160
  height: 120
  objects_per_image: [3, 4]
  max_occlusion: 0.7
  max_truncation: 0.3
  blend: {{hard: 1, gaussian: 1, pyramid: 1, poisson_normal: 1}}
  shadow: 0.3
output:
  formats: [coco, yolo, yolo_seg, voc, semantic_masks]
  preview: false
"""


@pytest.fixture(scope="module")
def written(assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("compose_run")
    recipe = write_recipe(root / "recipe.yaml", RECIPE.format(assets=assets))
    run_recipe(recipe, root / "a", quiet=True)
    return root, recipe


def _ap(gt_path, iou_type: str) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        preds = []
        for ann in gt.loadAnns(gt.getAnnIds()):
            pred = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
            pred["bbox" if iou_type == "bbox" else "segmentation"] = (
                ann["bbox"] if iou_type == "bbox" else gt.annToRLE(ann))
            preds.append(pred)
        evaluator = COCOeval(gt, gt.loadRes(preds), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0]


def test_coco_boxes_are_tight_boxes_of_masks_and_cocoeval_is_perfect(written):
    out = written[0] / "a"
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 8 and len(doc["annotations"]) >= 20
    for ann in doc["annotations"]:
        mask = rle_decode(ann["segmentation"])
        x1, y1, x2, y2 = tight_bbox(mask)
        assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert ann["area"] == int(mask.sum()) > 0
        assert 0 <= x1 and 0 <= y1 and x2 <= 160 and y2 <= 120
    assert _ap(out / "annotations.json", "bbox") == 1.0
    assert _ap(out / "annotations.json", "segm") == 1.0


def test_yolo_voc_and_masks_agree_with_the_manifest(written):
    out = written[0] / "a"
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for rec in records:
        stem = rec["image"].split("/")[-1].rsplit(".", 1)[0]
        lines = (out / "labels" / f"{stem}.txt").read_text().split("\n")
        lines = [ln for ln in lines if ln.strip()]
        assert len(lines) == len(rec["instances"])
        for line, inst in zip(lines, rec["instances"]):
            _, cx, cy, w, h = map(float, line.split())
            x1, y1, x2, y2 = inst["bbox_xyxy"]
            assert abs(cx * 160 - (x1 + x2) / 2) < 1e-3 and abs(w * 160 - (x2 - x1)) < 1e-3
            assert abs(cy * 120 - (y1 + y2) / 2) < 1e-3 and abs(h * 120 - (y2 - y1)) < 1e-3
        voc = ET.parse(out / "Annotations" / f"{stem}.xml").getroot()
        assert len(voc.findall("object")) == len(rec["instances"])
        for inst in rec["instances"]:
            assert inst["visible_fraction"] > 0 and inst["area"] > 0


def test_same_seed_same_bytes(written):
    root, recipe = written
    run_recipe(recipe, root / "b", quiet=True)
    a, b = tree_hashes(root / "a"), tree_hashes(root / "b")
    a.pop("recipe.yaml", None), b.pop("recipe.yaml", None)
    assert a == b and any(k.startswith("images/") for k in a)


def test_instance_mask_png_matches_coco_masks(written):
    out = written[0] / "a"
    doc = json.loads((out / "annotations.json").read_text())
    image = doc["images"][0]
    import cv2

    ids = cv2.imread(str(out / "masks" / image["file_name"].split("/")[-1].rsplit(".", 1)[0])
                     + ".png", cv2.IMREAD_UNCHANGED)
    anns = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
    for k, ann in enumerate(anns, start=1):
        assert np.array_equal(ids == k, rle_decode(ann["segmentation"]))


def test_copy_paste_run_keeps_class_ids_and_exact_labels(coco_dataset, tmp_path):
    recipe = write_recipe(tmp_path / "cp.yaml", f"""
seed: 1
source:
  type: copy_paste
  dataset: {coco_dataset}
  copies: 2
  pastes: [2, 4]
output:
  formats: [coco]
  preview: false
""")
    summary = run_recipe(recipe, tmp_path / "out", quiet=True)
    assert summary.written == 12
    doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["disk", "square"]
    for ann in doc["annotations"]:
        mask = rle_decode(ann["segmentation"])
        x1, y1, x2, y2 = tight_bbox(mask)
        assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1] and ann["area"] == int(mask.sum()) > 0
    assert _ap(tmp_path / "out" / "annotations.json", "segm") == 1.0
    # Two workers read the driver's parsed dataset (.imgsynth/shared) and write the same files.
    run_recipe(recipe, tmp_path / "two", workers=2, quiet=True)
    assert tree_hashes(tmp_path / "out") == tree_hashes(tmp_path / "two")


def test_the_old_photometric_spelling_writes_the_same_folder(assets, tmp_path):
    """Recipes written before `photometric` took augment's syntax still run, byte for byte,
    and the saved recipe.yaml holds the new spelling (so both folders are identical)."""
    base = RECIPE.format(assets=assets).replace("count: 8", "count: 3")
    old = write_recipe(tmp_path / "old.yaml", base.replace("output:", """\
  photometric:
    - RandomBrightnessContrast: {p: 0.9}
    - GaussNoise: {std_range: [0.02, 0.05]}
output:"""))
    new = write_recipe(tmp_path / "new.yaml", base.replace("output:", """\
  photometric:
    - {name: RandomBrightnessContrast, p: 0.9}
    - {name: GaussNoise, std_range: [0.02, 0.05]}
output:"""))
    with pytest.warns(FutureWarning, match="photometric"):
        run_recipe(old, tmp_path / "old", quiet=True)
    run_recipe(new, tmp_path / "new", quiet=True)
    assert tree_hashes(tmp_path / "old") == tree_hashes(tmp_path / "new")
    assert "name: GaussNoise" in (tmp_path / "old" / "recipe.yaml").read_text()
