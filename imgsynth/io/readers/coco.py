"""COCO instances JSON (boxes, polygons, RLE, iscrowd).

Accepted layouts: the file itself (`annotations/instances_val2017.json`), or a folder
holding `annotations.json` (what imgsynth writes) or exactly one `annotations/*.json`
(`instances_*.json` preferred). `file_name` is looked up, in order, relative to the
folder given as `images=`, the JSON's folder, its parent, the parent's `<split>/` folder
(`instances_<split>.json`), and `images/` under both; it must stay inside that folder
(`join_inside`).

Checked when the file is read, before anything is written: the type of every field
imgsynth reads (`RECORD_FIELDS`, one place), unique image ids, category ids and category
names (a repeat would give annotations another image or class), and each RLE's counts
against its size (`checked_rle`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from imgsynth.core.boxes import xywh_to_xyxy
from imgsynth.core.errors import InputError
from imgsynth.io.readers.base import (
    ImageEntry, InstanceLabel, LabeledDataset, checked_box, checked_polygons, checked_rle,
    join_inside, parse_number, read_label_text, shown,
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)


def _is_size(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0 \
        and float(value).is_integer()


# Per record list: the fields it must have, and the type of every field imgsynth reads.
RECORD_FIELDS: dict[str, tuple[tuple[str, ...], dict[str, tuple[Any, str]]]] = {
    "images": (("id", "file_name"), {
        "id": (_is_id, "an integer or a string"),
        "file_name": (lambda v: isinstance(v, str) and v != "", "a string (the image path)"),
        "width": (_is_size, "a positive whole number"),
        "height": (_is_size, "a positive whole number"),
    }),
    "annotations": (("image_id", "category_id", "bbox"), {
        "image_id": (_is_id, "an integer or a string"),
        "category_id": (_is_id, "an integer or a string"),
        "bbox": (lambda v: isinstance(v, list) and len(v) == 4, "[x, y, width, height]"),
        "segmentation": (lambda v: v is None or isinstance(v, list | dict),
                         "a list of polygons or an RLE dict"),
        "iscrowd": (lambda v: v in (0, 1), "0 or 1"),
    }),
    "categories": (("id", "name"), {
        "id": (_is_id, "an integer or a string"),
        "name": (lambda v: isinstance(v, str) or _is_int(v), "a string"),
    }),
}


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
    image_records = _records(doc, "images", json_path)
    by_id = _unique_ids(image_records, "images", json_path)
    classes, category_names = _categories(_records(doc, "categories", json_path), json_path)
    annotations = defaultdict(list)
    for k, ann in enumerate(_records(doc, "annotations", json_path)):
        where = f"annotation id={shown(ann.get('id', '?'))} (#{k})"
        if ann["image_id"] not in by_id:
            raise InputError(f"{where}: image_id {shown(ann['image_id'])} is not in 'images'",
                             file=str(json_path), fix="remove the annotation or add its image")
        if ann["category_id"] not in category_names:
            raise InputError(
                f"{where}: category_id {shown(ann['category_id'])} is not in 'categories' "
                f"(known: {sorted(category_names, key=_id_order)})", file=str(json_path),
                fix="add the category or correct the annotation")
        annotations[ann["image_id"]].append((where, ann))

    image_root = _image_root(json_path, image_records, images)
    issues: Counter = Counter()
    entries = []
    for rec in sorted(image_records, key=lambda r: (r["file_name"], str(r["id"]))):
        image_path = join_inside(image_root, rec["file_name"], json_path, f"image id={shown(rec['id'])}")
        if not image_path.is_file():
            raise InputError(f"image id={shown(rec['id'])}: file '{image_path}' not found",
                             file=str(json_path), fix="restore the image or remove its record")
        size = _stated_size(rec)
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
        doc = json.loads(read_label_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                         file=str(path), fix="repair or re-export the annotation file") from None
    if not isinstance(doc, dict):
        raise InputError("a COCO file is a JSON object with images, annotations, categories",
                         file=str(path))
    return doc


def _records(doc: dict, key: str, path: Path) -> list[dict]:
    """doc[key] with every record's required fields present and every field it uses of the
    right type (RECORD_FIELDS): the one place this reader checks types."""
    records = doc.get(key, [] if key == "annotations" else None)
    if not isinstance(records, list):
        raise InputError(f"'{key}' must be a list", file=str(path),
                         fix="is this a COCO instances file?")
    required, fields = RECORD_FIELDS[key]
    for k, rec in enumerate(records):
        missing = [f for f in required if not isinstance(rec, dict) or f not in rec]
        if missing:
            raise InputError(f"{key}[{k}] lacks {', '.join(missing)}", file=str(path),
                             fix="correct or remove this record")
        for name, (valid, expected) in fields.items():
            if name in rec and not valid(rec[name]):
                raise InputError(f"{key}[{k}] (id={shown(rec.get('id', '?'))}): '{name}' must be "
                                 f"{expected}, got {shown(rec[name])}", file=str(path),
                                 fix="correct or remove this record")
    return records


def _unique_ids(records: list[dict], key: str, path: Path) -> dict[Any, dict]:
    """id -> record; a repeated id is refused (its annotations would go to the first)."""
    by_id: dict[Any, dict] = {}
    first: dict[Any, int] = {}
    repeated = []
    for k, rec in enumerate(records):
        if rec["id"] in by_id:
            repeated.append(f"{shown(rec['id'])} ({key}[{first[rec['id']]}] and {key}[{k}])")
        else:
            by_id[rec["id"]], first[rec["id"]] = rec, k
    if repeated:
        kind = {"images": "image", "categories": "category"}[key]
        raise InputError(f"duplicate {kind} ids: {'; '.join(repeated[:5])}"
                         + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""),
                         file=str(path), fix=f"give each {kind} its own id (annotations find "
                         f"their {kind} by {kind}_id)")
    return by_id


def _id_order(value: Any) -> tuple[bool, Any]:
    """Integer ids in order, then string ids (sortable together)."""
    return isinstance(value, str), value


def _categories(cats: list[dict], path: Path) -> tuple[list[str], dict[Any, str]]:
    """Class names ordered by category id, and id -> name; ids and names must be unique
    (a class id is the position of its name)."""
    _unique_ids(cats, "categories", path)
    names: dict[Any, str] = {}
    id_of: dict[str, Any] = {}
    for cat in sorted(cats, key=lambda c: _id_order(c["id"])):
        name = str(cat["name"])
        if name in id_of:
            raise InputError(f"categories {shown(id_of[name])} and {shown(cat['id'])} have the "
                             f"same name '{name}'; class names must be unique", file=str(path),
                             fix="rename one, or merge them into one category")
        id_of[name] = cat["id"]
        names[cat["id"]] = name
    return list(names.values()), names


def _image_root(json_path: Path, records: list[dict], images: Path | None) -> Path:
    if images is not None:
        return images
    base = json_path.parent
    split = json_path.stem.removeprefix("instances_")
    roots = [base, base.parent, base.parent / split, base / "images", base.parent / "images"]
    if not records:
        return base
    first = records[0]
    for root in roots:
        if join_inside(root, first["file_name"], json_path, f"image id={shown(first['id'])}").is_file():
            return root
    raise InputError(
        f"cannot find image '{first['file_name']}' (looked in {', '.join(str(r) for r in roots)})",
        file=str(json_path), fix="give the image folder (read_dataset(..., images=DIR))")


def _stated_size(rec: dict) -> tuple[int, int] | None:
    if "width" not in rec or "height" not in rec:
        return None
    return int(rec["width"]), int(rec["height"])


def _instance(ann: dict, names: dict, size, issues: Counter, where: str,
              path: Path) -> InstanceLabel | None:
    box = checked_box(xywh_to_xyxy(tuple(parse_number(v, path, where) for v in ann["bbox"])),
                      size, issues, where)
    if box is None:
        return None
    segm = ann.get("segmentation")
    polygons = rle = None
    if isinstance(segm, list) and segm:
        polygons = checked_polygons(segm, issues, where, path) or None
    elif isinstance(segm, dict):
        rle = checked_rle(segm, size, path, where)
    return InstanceLabel(class_name=names[ann["category_id"]], bbox_xyxy=box, polygons=polygons,
                         rle=rle, iscrowd=bool(ann.get("iscrowd", 0)))
