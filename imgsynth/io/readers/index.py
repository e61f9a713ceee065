"""A parsed dataset saved for worker processes: one JSON line per image, read on demand.

The run's driver parses and checks a dataset once (a bad label stops the run before
anything is written), then writes this index into the output's `.imgsynth/shared/datasets/`;
worker processes open it instead of parsing the label files again. A COCO-sized
dataset then costs each worker one seek and one small JSON parse per image, instead of
its own full parse (tens of seconds) and the parsed labels in memory (gigabytes).

Files: `<key>.jsonl` (line 1: format, root, classes, issues; then one entry per image)
and `<key>.offsets.npy` (byte offset of each entry), written after the entries, so a
worker finds both or neither. The driver rewrites them at the start of every run,
resume included, so they always describe the label files as they are now.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgsynth.core.stage import SHARED_DIR
from imgsynth.io.atomic import atomic_writer
from imgsynth.io.readers.base import ImageEntry, InstanceLabel, LabeledDataset


def index_path(out_dir: Path, dataset_path: str | Path, fmt: str) -> Path:
    key = hashlib.sha256(f"{Path(dataset_path).resolve()}|{fmt}".encode()).hexdigest()[:16]
    return Path(out_dir) / SHARED_DIR / "datasets" / f"{key}.jsonl"


def share_dataset(out_dir: Path, dataset_path: str | Path, fmt: str,
                  dataset: LabeledDataset) -> LabeledDataset:
    """For StageConfig.share: the driver's parse, for the run's workers. Returns the
    dataset read back from the index, for the driver to keep instead of its parse."""
    where = index_path(out_dir, dataset_path, fmt)
    write_index(dataset, where)
    return open_index(where)


def shared_or_parsed(ctx, dataset_path: str | Path, fmt: str, parse) -> LabeledDataset:
    """In a run's worker (ctx.in_worker), the dataset its driver shared; otherwise, or where
    the driver's folder cannot be seen (a Ray node without it), `parse()`."""
    if ctx.in_worker and ctx.out_dir is not None:
        opened = open_index(index_path(ctx.out_dir, dataset_path, fmt))
        if opened is not None:
            return opened
    return parse()


def write_index(dataset: LabeledDataset, dest: Path) -> None:
    offsets = np.zeros(len(dataset), dtype=np.int64)
    with atomic_writer(dest, "wb") as fh:
        head = {"format": dataset.format, "root": str(dataset.root), "classes": dataset.classes,
                "issues": dict(dataset.issues)}
        fh.write((json.dumps(head) + "\n").encode("utf-8"))
        for i, entry in enumerate(dataset.entries):
            offsets[i] = fh.tell()
            fh.write((json.dumps(_entry_dict(entry)) + "\n").encode("utf-8"))
    with atomic_writer(_offsets_path(dest), "wb") as fh:
        np.save(fh, offsets)


def open_index(dest: Path) -> LabeledDataset | None:
    """The dataset an index describes, its entries read on demand; None if there is none."""
    offsets_path = _offsets_path(dest)
    if not (dest.is_file() and offsets_path.is_file()):
        return None
    with open(dest, "rb") as fh:
        head = json.loads(fh.readline())
    entries = IndexedEntries(dest, np.load(offsets_path))
    return LabeledDataset(head["format"], Path(head["root"]), head["classes"], entries,
                          Counter(head["issues"]))


class IndexedEntries(Sequence):
    """The entries of an index file, parsed one at a time when asked for."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path = path
        self.offsets = offsets
        self._file = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> ImageEntry:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for the process
        self._file.seek(int(self.offsets[i]))
        return _entry_from_dict(json.loads(self._file.readline()))

    def __getstate__(self):  # a worker reopens the file
        return {"path": self.path, "offsets": self.offsets, "_file": None}


def _offsets_path(dest: Path) -> Path:
    return dest.with_name(dest.stem + ".offsets.npy")


def _entry_dict(entry: ImageEntry) -> dict:
    return {
        "image": str(entry.image),
        "label_file": None if entry.label_file is None else str(entry.label_file),
        "label": entry.label,
        "size": None if entry.size is None else [int(v) for v in entry.size],
        "normalized": entry.normalized,
        "instances": [{
            "class_name": lab.class_name,
            "bbox_xyxy": [float(v) for v in lab.bbox_xyxy],
            "polygons": None if lab.polygons is None else [np.asarray(p).tolist() for p in lab.polygons],
            "rle": lab.rle,
            "truncated": bool(lab.truncated),
            "occluded": float(lab.occluded),
            "difficult": bool(lab.difficult),
            "iscrowd": bool(lab.iscrowd),
            "bbox_from_mask": bool(lab.bbox_from_mask),
        } for lab in entry.instances],
    }


def _entry_from_dict(d: dict) -> ImageEntry:
    instances = [InstanceLabel(
        class_name=lab["class_name"],
        bbox_xyxy=tuple(lab["bbox_xyxy"]),
        polygons=None if lab["polygons"] is None else
        [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in lab["polygons"]],
        rle=lab["rle"], truncated=lab["truncated"], occluded=lab["occluded"],
        difficult=lab["difficult"], iscrowd=lab["iscrowd"], bbox_from_mask=lab["bbox_from_mask"],
    ) for lab in d["instances"]]
    return ImageEntry(image=Path(d["image"]),
                      label_file=None if d["label_file"] is None else Path(d["label_file"]),
                      instances=instances, label=d["label"],
                      size=None if d["size"] is None else tuple(d["size"]),
                      normalized=d["normalized"])
