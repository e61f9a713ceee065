"""COCO instances JSON (boxes, polygons, RLE, iscrowd).

Accepted layouts: the file itself (`annotations/instances_val2017.json`), or a folder
holding `annotations.json` (what imgsynth writes) or exactly one `annotations/*.json`
(`instances_*.json` preferred). `file_name` is looked up, in order, relative to the
folder given as `images=`, the JSON's folder, its parent, the parent's `<split>/` folder
(`instances_<split>.json`), and `images/` under both.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from imgsynth.core.boxes import xywh_to_xyxy
from imgsynth.core.errors import InputError
from imgsynth.io.readers.base import (
    ImageEntry, InstanceLabel, LabeledDataset, checked_box, checked_polygons, parse_number,
)


def find_coco_json(folder: Path) -> Path | None:
    if (folder / "annotations.json").is_file():
        return folder / "annotations.json"
    candidates = sorted((folder / "annotations").glob("*.json"))
    instances = [p for p in candidates if p.name.startswith("instances_")]
    for group in (instances, candidates):
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            raise InputError(
                f"several COCO files: {', '.join(p.name for p in group)}", file=str(folder),
                fix="point the dataset path at one of them")
    return None


def read_coco(path: Path, images: Path | None = None) -> LabeledDataset:
    json_path = path if path.is_file() else find_coco_json(path)
    if json_path is None:
        raise InputError("no COCO annotation file (annotations.json or annotations/*.json)",
                         file=str(path), fix="point the dataset path at the COCO JSON file")
    doc = _load_json(json_path)
    classes, category_names = _categories(doc, json_path)
    image_records = _records(doc, "images", json_path, required=("id", "file_name"))
    by_id = {rec["id"]: rec for rec in image_records}
    annotations = defaultdict(list)
    for k, ann in enumerate(_records(doc, "annotations", json_path,
                                     required=("image_id", "category_id", "bbox"))):
        where = f"annotation id={ann.get('id', '?')} (#{k})"
        if ann["image_id"] not in by_id:
            raise InputError(f"{where}: image_id {ann['image_id']} is not in 'images'",
                             file=str(json_path), fix="remove the annotation or add its image")
        if ann["category_id"] not in category_names:
            raise InputError(
                f"{where}: category_id {ann['category_id']} is not in 'categories' "
                f"(known: {sorted(category_names)})", file=str(json_path),
                fix="add the category or correct the annotation")
        annotations[ann["image_id"]].append((where, ann))

    image_root = _image_root(json_path, image_records, images)
    issues: Counter = Counter()
    entries = []
    for rec in sorted(image_records, key=lambda r: (str(r["file_name"]), str(r["id"]))):
        image_path = image_root / rec["file_name"]
        if not image_path.is_file():
            raise InputError(f"image id={rec['id']}: file '{image_path}' not found",
                             file=str(json_path), fix="restore the image or remove its record")
        size = _stated_size(rec, json_path)
        instances = []
        for where, ann in annotations.get(rec["id"], []):
            lab = _instance(ann, category_names, size, issues, f"{where} of '{rec['file_name']}'",
                            json_path)
            if lab is not None:
                instances.append(lab)
        entries.append(ImageEntry(image=image_path, label_file=json_path, instances=instances,
                                  size=size))
    return LabeledDataset("coco", json_path.parent, classes, entries, issues)


def _load_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                         file=str(path), fix="repair or re-export the annotation file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from None
    if not isinstance(doc, dict):
        raise InputError("a COCO file is a JSON object with images, annotations, categories",
                         file=str(path))
    return doc


def _records(doc: dict, key: str, path: Path, required: tuple[str, ...]) -> list[dict]:
    records = doc.get(key, [] if key == "annotations" else None)
    if not isinstance(records, list):
        raise InputError(f"'{key}' must be a list", file=str(path),
                         fix="is this a COCO instances file?")
    for k, rec in enumerate(records):
        missing = [f for f in required if not isinstance(rec, dict) or f not in rec]
        if missing:
            raise InputError(f"{key}[{k}] lacks {', '.join(missing)}", file=str(path),
                             fix="correct or remove this record")
    return records


def _categories(doc: dict, path: Path) -> tuple[list[str], dict[Any, str]]:
    """Class names ordered by category id, and id -> name."""
    cats = _records(doc, "categories", path, required=("id", "name"))
    names = {c["id"]: str(c["name"]) for c in sorted(cats, key=lambda c: c["id"])}
    return list(names.values()), names


def _image_root(json_path: Path, records: list[dict], images: Path | None) -> Path:
    if images is not None:
        return images
    base = json_path.parent
    split = json_path.stem.removeprefix("instances_")
    roots = [base, base.parent, base.parent / split, base / "images", base.parent / "images"]
    if not records:
        return base
    first = records[0]["file_name"]
    for root in roots:
        if (root / first).is_file():
            return root
    raise InputError(
        f"cannot find image '{first}' (looked in {', '.join(str(r) for r in roots)})",
        file=str(json_path), fix="give the image folder (read_dataset(..., images=DIR))")


def _stated_size(rec: dict, path: Path) -> tuple[int, int] | None:
    if "width" not in rec or "height" not in rec:
        return None
    where = f"image id={rec['id']}"
    return (int(parse_number(rec["width"], path, where)), int(parse_number(rec["height"], path, where)))


def _instance(ann: dict, names: dict, size, issues: Counter, where: str,
              path: Path) -> InstanceLabel | None:
    bbox = ann["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise InputError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}",
                         file=str(path), fix="correct or remove this annotation")
    box = checked_box(xywh_to_xyxy(tuple(parse_number(v, path, where) for v in bbox)),
                      size, issues, where)
    if box is None:
        return None
    segm = ann.get("segmentation")
    polygons = rle = None
    if isinstance(segm, list) and segm:
        polygons = checked_polygons(segm, issues, where) or None
    elif isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            raise InputError(f"{where}: RLE segmentation needs 'counts' and 'size'",
                             file=str(path), fix="correct or remove this annotation")
        rle = segm
    elif segm not in (None, []):
        raise InputError(f"{where}: segmentation must be a list of polygons or an RLE dict",
                         file=str(path), fix="correct or remove this annotation")
    return InstanceLabel(class_name=names[ann["category_id"]], bbox_xyxy=box, polygons=polygons,
                         rle=rle, iscrowd=bool(ann.get("iscrowd", 0)))
