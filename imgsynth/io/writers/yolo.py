"""YOLO detect and segment labels in the layout ultralytics trains on.

- `yolo`: OUT/labels/<stem>.txt with `cls cx cy w h` and OUT/data.yaml.
- `yolo_seg`: the same place with `cls x1 y1 x2 y2 ...` lines, when asked alone. When both
  are asked, detection keeps OUT/labels + OUT/data.yaml and segmentation becomes its own
  dataset OUT/yolo_seg/{images,labels,data.yaml}, its images hard links to OUT/images
  (ultralytics finds a label by replacing the last `images` folder of the image path with
  `labels`, so two label sets need two `images` folders).
Class ids are 0-based; coordinates are normalized, clipped to [0, 1], 6 decimals; a box
that is empty after clipping/rounding is left out with a LabelWarning. Every image gets
a label file, empty when it has no objects (a background image). data.yaml has
`train: images`, `val: images`, `names: {id: name}` and no `path`: ultralytics then takes
the folder holding data.yaml as the dataset root, so the set can be moved as it is and its
bytes do not depend on where it was written.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from imgsynth.core.boxes import xyxy_to_cxcywh_norm
from imgsynth.core.masks import mask_outlines, rle_decode
from imgsynth.io.atomic import atomic_write_text
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers import Records, class_ids, image_under, labeled_boxes, link_or_copy


def write_yolo_detect(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    ids = class_ids(records, classes)

    def lines(rec: dict) -> list[str]:
        out = []
        for inst, box in labeled_boxes(rec, "yolo"):
            values = _norm_text(xyxy_to_cxcywh_norm(box, rec["width"], rec["height"]))
            if float(values[2]) > 0 and float(values[3]) > 0:
                out.append(" ".join([str(ids[inst["class"]]), *values]))
            else:
                warnings.warn(f"yolo: sample id {rec['id']} {inst['class']} box {list(box)} is "
                              "empty at 6 decimals; left out", LabelWarning, stacklevel=2)
        return out

    return _write_dataset(Path(out_dir), records, classes, lines)


def write_yolo_segment(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    ids = class_ids(records, classes)
    out_dir = Path(out_dir)
    written: list[Path] = []
    if "yolo" in output.formats:
        for rec in records:
            dst = out_dir / "yolo_seg" / rec["image"]
            link_or_copy(out_dir / rec["image"], dst)
            written.append(dst)
        out_dir = out_dir / "yolo_seg"

    def lines(rec: dict) -> list[str]:
        out = []
        for inst, box in labeled_boxes(rec, "yolo_seg"):
            points = segment_points(inst, box, rec)
            xy = np.clip(points / [rec["width"], rec["height"]], 0.0, 1.0).reshape(-1)
            out.append(" ".join([str(ids[inst["class"]]), *_norm_text(xy)]))
        return out

    return written + _write_dataset(out_dir, records, classes, lines)


def segment_points(inst: dict, box, rec: dict) -> np.ndarray:
    """One (K, 2) outline per instance in absolute pixels. A mask's outline runs along pixel
    edges (`mask_outlines`: every part, one-pixel ones included, and the tight box as the
    outline's extent); several parts are joined into one outline (YOLO has one polygon per
    object) and holes cannot be held. A box-only instance gives its corners."""
    if inst.get("polygons"):
        parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in inst["polygons"]]
    elif inst.get("segmentation"):
        parts = mask_outlines(rle_decode(inst["segmentation"]))[0]
    else:
        parts = []
    if not parts:
        warnings.warn(f"yolo_seg: sample id {rec['id']} {inst['class']} has no mask or polygon; "
                      "its box corners are written as its outline", LabelWarning, stacklevel=3)
        x1, y1, x2, y2 = box
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    return join_polygons(parts)


def join_polygons(parts: list[np.ndarray]) -> np.ndarray:
    """Join outlines into one by zero-width bridges: each further part is entered from the
    nearest point of the outline built so far, walked around, and left the same way."""
    outline = parts[0]
    for part in parts[1:]:
        dist = ((outline[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        loop = np.roll(part, -j, axis=0)
        outline = np.concatenate([outline[:i + 1], loop, loop[:1], outline[i:]])
    return outline


def _norm_text(values) -> list[str]:
    return [f"{float(v):.6f}" for v in values]


def _write_dataset(root: Path, records: Records, classes: list[str], lines) -> list[Path]:
    written = []
    for rec in records:
        path = root / image_under(rec, "labels", ".txt")
        text = "".join(line + "\n" for line in lines(rec))
        atomic_write_text(path, text)
        written.append(path)
    written.append(write_data_yaml(root, classes))
    return written


def write_data_yaml(root: Path, classes: list[str]) -> Path:
    import yaml

    doc = {"train": "images", "val": "images",
           "names": dict(enumerate(classes))}
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if yaml.safe_load(text) != doc:
        # A character YAML reads as a line break (U+0085) comes back as a space when written
        # raw: escape every non-ASCII character instead, so each name reads back as it is.
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)
    path = root / "data.yaml"
    atomic_write_text(path, text)
    return path
