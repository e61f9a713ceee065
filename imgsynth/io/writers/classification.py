"""Classification and Hugging Face formats.

- `imagefolder`: OUT/imagefolder/<label>/<file>, hard links to OUT/images (copies on
  file systems without links); torchvision's ImageFolder reads it.
- `csv`: OUT/labels.csv with `file,label` (file relative to OUT).
- `hf`: OUT/metadata.jsonl for the Hugging Face `imagefolder` builder: `file_name`
  relative to OUT, plus `label`, `text` and `objects` ({"bbox": [[x, y, w, h]...],
  "categories": [class ids]}) when the run has them. Load it with
  `load_dataset("imagefolder", data_files={"train": ["OUT/metadata.jsonl", "OUT/images/*"]})`
  so that masks/ and preview.png are not taken for images.
Samples without a label are left out of imagefolder and csv, with a LabelWarning.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

from imgsynth.core.boxes import xyxy_to_xywh
from imgsynth.core.errors import RecipeError
from imgsynth.io.atomic import atomic_write_text, atomic_writer
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers import (Records, check_class_names, class_ids, image_under, labeled_boxes,
                                 link_or_copy)


def write_imagefolder(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    written = []
    for rec in _labeled(records, "imagefolder"):
        dst = Path(out_dir) / "imagefolder" / rec["label"] / image_under(rec, ".")
        link_or_copy(Path(out_dir) / rec["image"], dst)
        written.append(dst)
    return written


def write_csv(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # csv quotes a field only for the characters of its line terminator ("\n"), but readers
    # also end a row at "\r": a row holding one is quoted whole.
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["file", "label"])
    for rec in _labeled(records, "csv"):
        row = [rec["image"], rec["label"]]
        (quoted if any("\r" in field for field in row) else writer).writerow(row)
    path = Path(out_dir) / "labels.csv"
    atomic_write_text(path, buf.getvalue())
    return [path]


def write_hf_metadata(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    has_label = any(rec.get("label") is not None for rec in records)
    has_text = any(rec.get("text") is not None for rec in records)
    has_objects = any(rec["instances"] for rec in records)
    ids = class_ids(records, classes)
    path = Path(out_dir) / "metadata.jsonl"
    with atomic_writer(path, "w") as fh:
        for rec in records:
            row = {"file_name": rec["image"]}
            if has_label:
                row["label"] = rec.get("label")
            if has_text:
                row["text"] = rec.get("text")
            if has_objects:
                kept = labeled_boxes(rec, "hf")
                row["objects"] = {"bbox": [[round(v, 4) for v in xyxy_to_xywh(box)] for _, box in kept],
                                  "categories": [ids[inst["class"]] for inst, _ in kept]}
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return [path]


def _labeled(records: Records, fmt: str) -> Iterator[dict]:
    """The records that have a label, once all of them are checked (a pass that keeps none)."""
    labeled = 0
    names = set()
    for rec in records:
        if rec.get("label") is None:
            continue
        labeled += 1
        names.add(rec["label"])
    if records and not labeled:
        raise RecipeError(f"the '{fmt}' format needs a classification label per sample and no "
                          "sample has one", key="output.formats",
                          fix=f"remove '{fmt}' or use a source that sets labels (an ImageFolder dataset)")
    if labeled < len(records):
        warnings.warn(f"{fmt}: {len(records) - labeled} sample(s) without a label are left "
                      "out", LabelWarning, stacklevel=3)
    check_class_names([fmt], sorted(names))
    return (rec for rec in records if rec.get("label") is not None)
