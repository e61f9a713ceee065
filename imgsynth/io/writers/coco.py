"""COCO instances JSON: OUT/annotations.json, `file_name` relative to OUT (images/...).

Ids start at 1: image id = record id, category id = position in the class list + 1,
annotation ids in record order. `bbox` is xywh, `area` the mask pixel count when a mask
exists, else the box area. `segmentation` is the compressed RLE of the mask
(output.coco_segmentation: rle) or its outer contours (polygon; a mask too small to give
a 3-point contour keeps its RLE); an instance without a mask writes its polygons, or `[]`
when it is a box only. The info block is fixed, so the bytes depend only on the records.
"""

from __future__ import annotations

import json
from pathlib import Path

from imgsynth import __version__
from imgsynth.core.boxes import xyxy_to_xywh
from imgsynth.core.masks import mask_polygons, rle_decode
from imgsynth.io.atomic import atomic_write_text
from imgsynth.io.writers import class_ids, labeled_boxes

INFO = {"description": "made with imgsynth", "version": __version__, "contributor": "imgsynth"}


def write_coco(out_dir: Path, records: list[dict], classes: list[str], output) -> list[Path]:
    ids = class_ids(records, classes)
    images, annotations = [], []
    for rec in records:
        images.append({"id": rec["id"], "file_name": rec["image"], "width": rec["width"],
                       "height": rec["height"]})
        for inst, box in labeled_boxes(rec, "coco"):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": rec["id"],
                "category_id": ids[inst["class"]] + 1,
                "bbox": [round(v, 4) for v in xyxy_to_xywh(box)],
                "area": inst["area"],
                "segmentation": coco_segmentation(inst, output.coco_segmentation),
                "iscrowd": int(inst.get("iscrowd", False)),
            })
    doc = {
        "info": INFO,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "object"}
                       for i, name in enumerate(classes)],
    }
    path = Path(out_dir) / "annotations.json"
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    return [path]


def coco_segmentation(inst: dict, encoding: str) -> dict | list:
    rle = inst.get("segmentation")
    if rle is not None and encoding == "polygon":
        polygons = mask_polygons(rle_decode(rle))
        if polygons:
            return [[round(float(v), 2) for v in p.reshape(-1)] for p in polygons]
    if rle is not None:
        return rle
    return inst.get("polygons") or []
