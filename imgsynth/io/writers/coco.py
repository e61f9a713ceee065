"""COCO instances JSON: OUT/annotations.json, `file_name` relative to OUT (images/...).

Ids start at 1: image id = record id, category id = position in the class list + 1,
annotation ids in record order. `bbox` is xywh, `area` the mask pixel count when a mask
exists, else the box area. `segmentation` is the compressed RLE of the mask
(output.coco_segmentation: rle) or its outlines (polygon: along pixel edges, so pycocotools
decodes exactly the mask's pixels, one-pixel parts and lines included; a mask with a hole
keeps its RLE, as a COCO polygon cannot hold one); an instance without a mask writes its
polygons, or `[]` when it is a box only. The info block is fixed, so the bytes depend only
on the records.
"""

from __future__ import annotations

import json
from pathlib import Path

from imgsynth import __version__
from imgsynth.core.boxes import xyxy_to_xywh
from imgsynth.core.masks import mask_outlines, rle_decode
from imgsynth.io.atomic import atomic_writer
from imgsynth.io.writers import Records, class_ids, labeled_boxes

INFO = {"description": "made with imgsynth", "version": __version__, "contributor": "imgsynth"}


def write_coco(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    ids = class_ids(records, classes)
    categories = [{"id": i + 1, "name": name, "supercategory": "object"}
                  for i, name in enumerate(classes)]
    path = Path(out_dir) / "annotations.json"
    # Written piece by piece (one image or annotation at a time): the same bytes as
    # json.dumps of the whole document, without holding it in memory.
    with atomic_writer(path, "w") as fh:
        fh.write(f'{{"info":{_json(INFO)},"licenses":[],"images":[')
        _write_list(fh, ({"id": rec["id"], "file_name": rec["image"], "width": rec["width"],
                          "height": rec["height"]} for rec in records))
        fh.write('],"annotations":[')
        _write_list(fh, _annotations(records, ids, output.coco_segmentation))
        fh.write(f'],"categories":{_json(categories)}}}')
    return [path]


def _annotations(records: Records, ids: dict[str, int], encoding: str):
    number = 0
    for rec in records:
        for inst, box in labeled_boxes(rec, "coco"):
            number += 1
            yield {
                "id": number,
                "image_id": rec["id"],
                "category_id": ids[inst["class"]] + 1,
                "bbox": [round(v, 4) for v in xyxy_to_xywh(box)],
                "area": inst["area"],
                "segmentation": coco_segmentation(inst, encoding),
                "iscrowd": int(inst.get("iscrowd", False)),
            }


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _write_list(fh, items) -> None:
    for k, item in enumerate(items):
        fh.write(("," if k else "") + _json(item))


def coco_segmentation(inst: dict, encoding: str) -> dict | list:
    rle = inst.get("segmentation")
    if rle is not None and encoding == "polygon":
        outlines, holes = mask_outlines(rle_decode(rle))
        if outlines and not holes:
            return [[float(v) for v in p.reshape(-1)] for p in outlines]  # whole numbers
    if rle is not None:
        return rle
    return inst.get("polygons") or []
