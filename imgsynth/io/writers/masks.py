"""Semantic segmentation maps: OUT/semantic/<stem>.png, uint8, 0 = background,
class id + 1 elsewhere (class ids in the order of the class list, so at most 255 classes).

Painted from each instance's RLE mask (or its polygons when it has no mask), in instance
order, so a later instance wins where two overlap (composited instances hold only their
visible pixels and do not overlap). Box-only instances have no pixels to paint: they are
left out with one LabelWarning per run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from imgsynth.core.errors import RecipeError
from imgsynth.core.masks import polygons_to_mask, rle_decode
from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.image import encode_image
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers import Records, class_ids, image_under


def write_semantic_masks(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    if len(classes) > 255:
        raise RecipeError(f"{len(classes)} classes do not fit a uint8 map (at most 255)",
                          key="output.formats", fix="remove semantic_masks or merge classes")
    ids = class_ids(records, classes)
    written = []
    box_only = 0
    for rec in records:
        semantic, skipped = semantic_map(rec, ids)
        box_only += skipped
        path = Path(out_dir) / image_under(rec, "semantic", ".png")
        atomic_write_bytes(path, encode_image(semantic, "png", png_deflate="rle"))
        written.append(path)
    if box_only:
        warnings.warn(f"semantic_masks: {box_only} box-only instance(s) have no mask and are not "
                      "painted", LabelWarning, stacklevel=2)
    return written


def semantic_map(rec: dict, ids: dict[str, int]) -> tuple[np.ndarray, int]:
    """(HxW uint8 map, number of instances without pixels)."""
    semantic = np.zeros((rec["height"], rec["width"]), dtype=np.uint8)
    skipped = 0
    for inst in rec["instances"]:
        if inst.get("segmentation"):
            mask = rle_decode(inst["segmentation"])
        elif inst.get("polygons"):
            mask = polygons_to_mask([np.asarray(p).reshape(-1, 2) for p in inst["polygons"]],
                                    rec["height"], rec["width"])
        else:
            skipped += 1
            continue
        semantic[mask] = ids[inst["class"]] + 1
    return semantic, skipped
