"""manifest.jsonl: one record per written sample, the input of every label writer.

A record (docs/architecture.md): {"id", "index", "image", ["mask"], "width", "height",
"sha256", "seed_keys", "source_files", "label", "text", "instances", "meta"}; each instance:
{"class", "bbox_xyxy" (4 decimals), "area" (mask pixel count if a mask exists, else box
area), "segmentation" (COCO compressed RLE of the mask, or null), "polygons" (flat
[x, y, ...] lists, or null), "keypoints", "truncated", "occluded", "visible_fraction",
"difficult", "iscrowd"}.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.boxes import box_area
from imgsynth.core.errors import InputError
from imgsynth.core.masks import mask_area, rle_encode
from imgsynth.core.sample import Instance, Sample

DECIMALS = 4


def record_from_sample(sample: Sample, files: dict[str, str], sha256: dict[str, str]) -> dict:
    """The manifest record of a written sample. `files` maps "image" (and "mask" when an
    instance map was written) to paths relative to the output folder."""
    record = {"id": sample.index + 1, "index": sample.index, "image": files["image"]}
    if "mask" in files:
        record["mask"] = files["mask"]
    record.update({
        "width": sample.width,
        "height": sample.height,
        "sha256": dict(sorted(sha256.items())),
        "seed_keys": list(sample.seed_keys),
        "source_files": [str(f) for f in sample.source_files],
        "label": sample.label,
        "text": sample.text,
        "instances": [instance_record(inst) for inst in sample.instances],
        "meta": jsonable(sample.meta),
    })
    return record


def instance_record(inst: Instance) -> dict:
    box = [round(float(v), DECIMALS) for v in inst.bbox_xyxy]
    has_mask = inst.mask is not None
    record = {
        "class": inst.class_name,
        "bbox_xyxy": box,
        "area": mask_area(inst.mask) if has_mask else round(box_area(tuple(box)), DECIMALS),
        "segmentation": rle_encode(inst.mask) if has_mask else None,
        "polygons": None if inst.polygons is None else [
            [round(float(v), DECIMALS) for v in np.asarray(p).reshape(-1)] for p in inst.polygons],
        "keypoints": None if inst.keypoints is None else [
            [round(float(v), DECIMALS) for v in kp] for kp in np.asarray(inst.keypoints)],
        "truncated": bool(inst.truncated),
        "occluded": round(float(inst.occluded), DECIMALS),
        "visible_fraction": round(float(inst.visible_fraction), DECIMALS),
        "difficult": bool(inst.difficult),
        "iscrowd": bool(inst.iscrowd),
    }
    if inst.attributes:  # e.g. the transcription of a word box (OCR), read by the OCR writers
        record["attributes"] = jsonable(inst.attributes)
    return record


def jsonable(value: Any) -> Any:
    """Meta values as plain JSON types (numpy scalars and arrays, tuples, paths)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class ManifestRecords:
    """The records of a manifest.jsonl, parsed again on every pass instead of held in memory
    (a million compose records take several GB as Python objects). Sized and re-iterable,
    so the label writers take it where they take a list."""

    def __init__(self, path: str | Path, start: int = 0, stop: int | None = None):
        """Records start..stop-1 (counting records, not lines) or all of them."""
        self.path = Path(path)
        self.start, self.stop = start, stop
        self._count: int | None = None

    def _lines(self) -> Iterator[tuple[int, str]]:
        try:
            # newline="\n": a line ends only at \n (texts may hold U+2028, which JSON keeps raw)
            with open(self.path, encoding="utf-8", newline="\n") as fh:
                numbered = ((n, line) for n, line in enumerate(fh, start=1) if line.strip())
                yield from itertools.islice(numbered, self.start, self.stop)
        except FileNotFoundError:
            raise InputError("manifest not found", file=str(self.path),
                             fix="give an imgsynth output folder (it holds manifest.jsonl)") from None

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self._lines())
        return self._count

    def __iter__(self) -> Iterator[dict]:
        for lineno, line in self._lines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"line {lineno} is not valid JSON ({exc.msg})", file=str(self.path),
                                 fix="a killed run leaves whole lines only; re-run with --resume "
                                 "or delete the line") from None


def read_manifest(path: str | Path) -> list[dict]:
    return list(ManifestRecords(path))
