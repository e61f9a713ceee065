"""What every dataset reader returns: an index over labeled images, loaded one at a time.

Readers parse and check every label file when the dataset is opened, so a malformed
label stops a run before anything is written; pixels are decoded only in `load(i)`.

Label handling shared by all formats (also in the note of issue 3):
- a box partly outside the image is clipped to it and counted in `issues["clipped_boxes"]`;
- a box with no area after clipping, and a polygon with fewer than 3 points, is dropped
  with a `LabelWarning` naming the file and the record, and counted;
- a class the dataset does not declare, unparsable text, a field of the wrong type, a
  malformed RLE, or a label without its image is an `InputError` naming the file and the
  record; so are duplicate ids or class names (they would give objects the wrong class),
  checked by `unique_names` and each format's id checks;
- a path a label file gives (COCO `file_name`, VOC `<folder>`/`<filename>`) is joined to
  its folder only by `join_inside`, which refuses one that leads outside it.
Boxes and polygons refer to the *displayed* image, i.e. after the EXIF orientation that
`decode_image` applies; a label file that states an image size (COCO, VOC) must match the
displayed size, otherwise the image is refused with an InputError.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.boxes import Box, clip_xyxy, is_empty
from imgsynth.core.errors import InputError
from imgsynth.core.masks import polygons_to_mask, rle_runs, tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.io.image import decode_image


class LabelWarning(UserWarning):
    """A label was dropped or changed while reading or writing; the message names file and record."""


@dataclass
class InstanceLabel:
    """One object as parsed from a label file, before the image is decoded.

    Coordinates are absolute pixels of the displayed image. `rle` is a COCO RLE dict,
    decoded to a mask only when the sample is loaded.
    """

    class_name: str
    bbox_xyxy: Box
    polygons: list[np.ndarray] | None = None
    rle: dict | None = None
    truncated: bool = False
    occluded: float = 0.0
    difficult: bool = False
    iscrowd: bool = False
    bbox_from_mask: bool = False  # the file states no box (YOLO segment): use tight_bbox(mask)


@dataclass
class ImageEntry:
    """One image of a dataset with its parsed labels."""

    image: Path
    label_file: Path | None = None
    instances: list[InstanceLabel] = field(default_factory=list)
    label: str | None = None  # classification label (ImageFolder)
    size: tuple[int, int] | None = None  # (width, height) stated by the label file, if any
    normalized: bool = False  # coordinates are fractions of width/height (YOLO)


class LabeledDataset:
    """A labeled dataset on disk: `len(ds)`, `ds.classes`, `ds.load(i) -> Sample`.

    Entries are in sorted, deterministic order. `issues` counts labels fixed or dropped
    while the dataset was opened (keys: clipped_boxes, dropped_empty_boxes,
    dropped_polygons).
    """

    def __init__(self, fmt: str, root: Path, classes: list[str], entries: list[ImageEntry],
                 issues: Counter):
        self.format = fmt
        self.root = root
        self.classes = classes
        self.entries = entries
        self.issues = issues

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (f"LabeledDataset(format={self.format!r}, root='{self.root}', "
                f"images={len(self)}, classes={len(self.classes)})")

    def load(self, i: int) -> Sample:
        entry = self.entries[i]
        image = decode_image(entry.image)
        height, width = image.shape[:2]
        if entry.size is not None and entry.size != (width, height):
            raise InputError(
                f"the label file states size {entry.size[0]}x{entry.size[1]} but the image "
                f"displays as {width}x{height} (after EXIF orientation)", file=str(entry.image),
                fix=f"fix the size in '{entry.label_file}' or re-export the image; imgsynth "
                "reads labels in the displayed orientation")
        labels = entry.instances
        if entry.normalized:
            labels = [_scaled(lab, width, height) for lab in labels]
        instances = [_to_instance(lab, height, width, entry) for lab in labels]
        sources = [str(entry.image)] + ([str(entry.label_file)] if entry.label_file else [])
        return Sample(index=i, image=image, instances=instances, label=entry.label,
                      source_files=sources)


def _scaled(lab: InstanceLabel, width: int, height: int) -> InstanceLabel:
    x1, y1, x2, y2 = lab.bbox_xyxy
    polygons = None
    if lab.polygons is not None:
        polygons = [p * np.array([width, height], dtype=np.float64) for p in lab.polygons]
    return replace(lab, bbox_xyxy=(x1 * width, y1 * height, x2 * width, y2 * height),
                   polygons=polygons)


def _to_instance(lab: InstanceLabel, height: int, width: int, entry: ImageEntry) -> Instance:
    mask = None
    if lab.rle is not None:
        from imgsynth.core.masks import rle_decode

        if list(lab.rle["size"]) != [height, width]:
            raise InputError(
                f"RLE size {lab.rle['size']} does not match the image size [{height}, {width}]",
                file=str(entry.label_file), fix="re-export the segmentation for this image")
        mask = rle_decode(lab.rle)
    elif lab.polygons:
        mask = polygons_to_mask(lab.polygons, height, width)
    box = clip_xyxy(lab.bbox_xyxy, width, height)
    if lab.bbox_from_mask and mask is not None and mask.any():
        box = tight_bbox(mask)
    return Instance(class_name=lab.class_name, bbox_xyxy=box,
                    mask=mask, polygons=lab.polygons, truncated=lab.truncated,
                    occluded=lab.occluded, difficult=lab.difficult, iscrowd=lab.iscrowd)


def checked_box(box: Box, size: tuple[int, int] | None, issues: Counter, where: str) -> Box | None:
    """Clip a box to the stated image size (counted); None (with a warning) if it has no area."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        issues["dropped_empty_boxes"] += 1
        side = "width (x2 < x1)" if x2 < x1 else "height (y2 < y1)"
        warnings.warn(f"{where}: box {plain(box)} (x1, y1, x2, y2) has a negative {side}; "
                      "dropped", LabelWarning, stacklevel=3)
        return None
    if size is not None:
        clipped = clip_xyxy(box, *size)
        if clipped != tuple(box):
            issues["clipped_boxes"] += 1
        box = clipped
    if is_empty(box):
        issues["dropped_empty_boxes"] += 1
        warnings.warn(f"{where}: box {plain(box)} has no area inside the image; dropped",
                      LabelWarning, stacklevel=3)
        return None
    return box


def checked_polygons(polygons: list[Any], issues: Counter, where: str,
                     file: Path | None = None) -> list[np.ndarray]:
    """Polygons as (K, 2) arrays; those with fewer than 3 points are dropped with a warning.
    A polygon that is not a flat list of finite numbers is an InputError naming `file`."""
    kept = []
    for k, poly in enumerate(polygons):
        try:  # a flat list of numbers (COCO) or an array of points (YOLO)
            pts = (np.asarray(poly, dtype=np.float64).reshape(-1)
                   if isinstance(poly, list | tuple | np.ndarray) else None)
        except (TypeError, ValueError):
            pts = None
        if pts is None or not np.isfinite(pts).all():
            raise InputError(f"{where}: polygon {k} must be a list of finite numbers "
                             f"[x1, y1, x2, y2, ...], got {shown(poly)}", file=str(file),
                             fix="correct or remove this record")
        if pts.size < 6 or pts.size % 2:
            issues["dropped_polygons"] += 1
            warnings.warn(f"{where}: polygon {k} has {pts.size} coordinates (needs an even "
                          "count of at least 6); dropped", LabelWarning, stacklevel=3)
            continue
        kept.append(pts.reshape(-1, 2))
    return kept


def checked_rle(rle: dict, size: tuple[int, int] | None, file: Path, where: str) -> dict:
    """A COCO RLE checked before anything is decoded (imgsynth.core.masks.rle_runs: types,
    no negative run, runs covering exactly its size) and, when the label file states the
    image size (width, height), its size against that; the load checks it against the image."""
    try:
        height, width, _ = rle_runs(rle)
    except ValueError as exc:
        raise InputError(f"{where}: malformed RLE segmentation: {exc}", file=str(file),
                         fix="re-export the segmentation or remove this annotation") from None
    if size is not None and (width, height) != tuple(size):
        raise InputError(f"{where}: RLE size [{height}, {width}] does not match the image size "
                         f"[{size[1]}, {size[0]}] stated for it", file=str(file),
                         fix="re-export the segmentation for this image")
    return rle


def unique_names(names: list[str], file: Path | str, what: str = "class names") -> list[str]:
    """`names` unchanged, or an InputError naming each duplicate: a class id is a position
    in the list, so a repeated name would give later classes the wrong id."""
    positions: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        positions.setdefault(name, []).append(k)
    repeated = [(name, ks) for name, ks in positions.items() if len(ks) > 1]
    if repeated:
        listed = "; ".join(f"'{name}' {'twice' if len(ks) == 2 else f'{len(ks)} times'} "
                           f"(positions {', '.join(map(str, ks))})" for name, ks in repeated[:5])
        raise InputError(f"{what} must be unique: {listed}", file=str(file),
                         fix="give each class one name, used once")
    return names


def join_inside(folder: Path, name: str, file: Path, where: str) -> Path:
    """`folder / name` for a path a label file gives, refused (InputError naming the file,
    the record and the path) when it is absolute or its '..' lead outside `folder`.

    The rule is lexical: `name` is normalized (os.path.normpath) and must not climb above
    the folder; symlinks are not resolved, so an image folder the user linked into the
    dataset is read, while a label file cannot point at another file on the machine."""
    if "\x00" in name:
        raise InputError(f"{where}: path {shown(name)} holds a NUL character", file=str(file),
                         fix="correct the image path")
    normal = os.path.normpath(name) if name else name
    if os.path.isabs(name) or normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise InputError(f"{where}: path '{name}' leads outside the image folder '{folder}'",
                         file=str(file),
                         fix="give the image path relative to the image folder, without '..'")
    return folder / name


def shown(value: Any) -> str:
    """A value from a label file for a message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain(values) -> str:
    """Numbers for a message, as a user wrote them ('0.6', not 'np.float64(0.6)')."""
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def read_label_text(path: Path) -> str:
    """A label file's text, UTF-8 with or without a byte order mark (Windows editors add
    one; it must not become part of a class name); otherwise an InputError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at "
                         f"offset {exc.start})", file=str(path),
                         fix="save the file as UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from None


def parse_number(text: Any, file: Path, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: '{text}' is not a number", file=str(file),
                         fix="correct or remove this record") from None
    if not np.isfinite(value):
        raise InputError(f"{where}: '{text}' is not a finite number", file=str(file),
                         fix="correct or remove this record")
    return value
