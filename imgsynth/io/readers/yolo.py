"""YOLO detect and segment labels (ultralytics layout).

Images live under a folder named `images` (any depth: `images/train/a.jpg`); the label of
`.../images/x/a.jpg` is `.../labels/x/a.txt` (ultralytics' rule). An image without a label
file is a background image (no objects); a label file without an image is an error.
Lines: `cls cx cy w h` (detect) or `cls x1 y1 x2 y2 ...` (segment, >= 3 points), all
normalized to [0, 1]; coordinates outside are clipped (counted). Class names come from
`data.yaml` (`names` as list or {id: name}) or `classes.txt`, each name once (a repeat
would shift the class of every later id). A segment line's box is the tight box of its
rasterized mask (`polygons_to_mask`), as for every masked instance.

The dataset path may be the dataset folder, a folder under `images/`, or the data.yaml
(then every folder it lists under train/val/test is read). The types of data.yaml's
fields are checked in one place (`_load_yaml`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from imgsynth.core.boxes import cxcywh_norm_to_xyxy, points_bbox
from imgsynth.core.errors import InputError
from imgsynth.io.folders import image_files
from imgsynth.io.readers.base import (
    ImageEntry, InstanceLabel, LabeledDataset, checked_box, checked_polygons, parse_number,
    read_label_text, shown, unique_names,
)


def read_yolo(path: Path, classes: list[str] | None = None) -> LabeledDataset:
    yaml_path, image_dirs = _layout(path)
    if classes:
        names = unique_names(list(classes), path, "the given class names")
    else:
        names = _class_names(yaml_path, image_dirs)
    images = sorted({p for d in image_dirs for p in image_files(d)})
    by_label = {label_path(p): p for p in images}
    _check_orphan_labels(image_dirs, by_label)
    issues: Counter = Counter()
    entries = []
    for image in images:
        label_file = label_path(image)
        instances = []
        if label_file.is_file():
            instances = parse_label_file(label_file, names, issues)
        entries.append(ImageEntry(image=image, label_file=label_file if label_file.is_file() else None,
                                  instances=instances, normalized=True))
    root = yaml_path.parent if yaml_path else image_dirs[0].parent
    return LabeledDataset("yolo", root, names, entries, issues)


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last `images` folder in the path becomes `labels`, suffix .txt."""
    parts = list(image.parts)
    k = len(parts) - 1 - parts[::-1].index("images")
    parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def _layout(path: Path) -> tuple[Path | None, list[Path]]:
    """(data.yaml or None, folders of images)."""
    if path.is_file():
        return path, _yaml_image_dirs(path)
    if (path / "images").is_dir():
        dirs = [path / "images"]
    elif "images" in path.parts:
        dirs = [path]
    else:
        raise InputError("no 'images' folder (YOLO layout: images/ and labels/)", file=str(path),
                         fix="point the dataset path at the folder holding images/ and labels/")
    for folder in (dirs[0], *dirs[0].parents):
        for name in ("data.yaml", "dataset.yaml"):
            if (folder / name).is_file():
                return folder / name, dirs
    return None, dirs


def _load_yaml(path: Path) -> dict:
    """data.yaml with the type of every field imgsynth reads checked (path, train/val/test,
    names), so a wrong type is an InputError here, not a traceback or a wrong name later."""
    from imgsynth.core.safe_yaml import safe_load

    doc = safe_load(read_label_text(path), str(path), error=InputError)  # bounded: no alias bombs
    if not isinstance(doc, dict):
        raise InputError("data.yaml must be a mapping with 'names'", file=str(path))
    if "kpt_shape" in doc:
        raise InputError("YOLO pose labels are not supported (only detect and segment)",
                         file=str(path))
    if doc.get("path") is not None and not isinstance(doc["path"], str):
        raise InputError(f"'path' must be a folder path, got {shown(doc['path'])}", file=str(path))
    for split in ("train", "val", "test"):
        entries = doc.get(split)
        if not (entries is None or isinstance(entries, str)
                or isinstance(entries, list) and all(isinstance(e, str) for e in entries)):
            raise InputError(f"'{split}' must be a folder path or a list of them, got "
                             f"{shown(entries)}", file=str(path))
    if "names" in doc:
        doc["names"] = _names(doc["names"], path)
    return doc


def _names(names, path: Path) -> list[str] | None:
    """`names` as a list (a mapping's keys must be the ids 0..n-1); None when absent."""
    if names is None:
        return None
    if isinstance(names, dict):
        ids = {}
        for key in names:
            if isinstance(key, bool) or not (isinstance(key, int) or str(key).isdigit()):
                raise InputError(f"names: key {shown(key)} is not a class id (0, 1, 2, ...)",
                                 file=str(path), fix="write names as {0: first, 1: second, ...}")
            if int(key) in ids:
                raise InputError(f"names: class id {key} is given twice", file=str(path))
            ids[int(key)] = names[key]
        if sorted(ids) != list(range(len(ids))):
            raise InputError(f"names ids must be 0..{len(ids) - 1}, got {sorted(ids)}",
                             file=str(path))
        names = [ids[k] for k in range(len(ids))]
    if not isinstance(names, list):
        raise InputError(f"'names' must be a list or a mapping of class names, got {shown(names)}",
                         file=str(path), fix="add names: [class0, class1, ...]")
    for k, name in enumerate(names):
        # YAML reads yes/no/on/off as booleans: 'no' would silently become the class 'False'.
        if isinstance(name, bool) or not isinstance(name, str | int):
            raise InputError(f"names: class {k} is {shown(name)}, not a name", file=str(path),
                             fix="quote each name, e.g. names: ['yes', 'no']")
    return unique_names([str(n) for n in names], path)


def _yaml_image_dirs(yaml_path: Path) -> list[Path]:
    doc = _load_yaml(yaml_path)
    base = Path(doc.get("path") or ".")
    if not base.is_absolute() or not base.is_dir():
        base = yaml_path.parent
    dirs: list[Path] = []
    for split in ("train", "val", "test"):
        entries = doc.get(split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            folder = (base / entry).resolve()
            if not folder.is_dir():
                raise InputError(f"'{split}: {entry}' is not a folder ({folder})", file=str(yaml_path),
                                 fix="correct the path (image list .txt files are not supported)")
            if folder not in dirs:
                dirs.append(folder)
    if not dirs:
        raise InputError("data.yaml lists no train/val/test image folder", file=str(yaml_path))
    return dirs


def _class_names(yaml_path: Path | None, image_dirs: list[Path]) -> list[str]:
    if yaml_path is not None:
        names = _load_yaml(yaml_path).get("names")
        if names is None:
            raise InputError("no 'names' list or mapping", file=str(yaml_path),
                             fix="add names: [class0, class1, ...]")
        return names
    for folder in (image_dirs[0].parent, *image_dirs[0].parents):
        if (folder / "classes.txt").is_file():
            text = read_label_text(folder / "classes.txt")
            return unique_names([ln.strip() for ln in text.splitlines() if ln.strip()],
                                folder / "classes.txt")
    raise InputError("no class names: neither data.yaml nor classes.txt found",
                     file=str(image_dirs[0]), fix="add data.yaml with 'names' next to images/")


def _check_orphan_labels(image_dirs: list[Path], by_label: dict[Path, Path]) -> None:
    for folder in image_dirs:
        labels = label_path(folder / "x.png").parent
        for label in sorted(labels.rglob("*.txt")) if labels.is_dir() else []:
            if label not in by_label:
                raise InputError("label file has no image (looked for an image of the same "
                                 f"name under '{folder}')", file=str(label),
                                 fix="restore the image or remove the label file")


def parse_label_file(path: Path, names: list[str], issues: Counter) -> list[InstanceLabel]:
    """Instances of one YOLO label file, coordinates normalized (x and y in [0, 1])."""
    instances = []
    for lineno, line in enumerate(read_label_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {lineno}"
        if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
            raise InputError(f"{where}: {len(tokens)} values; expected 'cls cx cy w h' or "
                             "'cls x1 y1 x2 y2 x3 y3 ...'", file=str(path),
                             fix="correct or remove this line")
        cls = parse_number(tokens[0], path, where)
        if cls != int(cls) or not 0 <= cls < len(names):
            raise InputError(f"{where}: class id {tokens[0]} is not one of 0..{len(names) - 1}",
                             file=str(path), fix="correct the id or add the class to names")
        values = np.array([parse_number(t, path, where) for t in tokens[1:]])
        polygons = None
        if len(tokens) == 5:
            box = cxcywh_norm_to_xyxy(tuple(values), 1, 1)
        else:
            clipped = np.clip(values, 0.0, 1.0)
            if not np.array_equal(clipped, values):
                issues["clipped_boxes"] += 1
            polygons = checked_polygons([clipped], issues, f"{path}: {where}")
            if not polygons:
                continue
            box = points_bbox(polygons[0])
        box = checked_box(box, (1, 1), issues, f"{path}: {where}")
        if box is not None:
            instances.append(InstanceLabel(class_name=names[int(cls)], bbox_xyxy=box,
                                           polygons=polygons, bbox_from_mask=polygons is not None))
    return instances
