"""Label writers: `write_<format>(out_dir, records, classes, output) -> list[Path]`.

They run once at the end of a run on the records of manifest.jsonl (see
`imgsynth.io.writers.manifest`), so labels always agree with the written images. Every
file goes through `imgsynth.io.atomic` (or is a hard link, which appears whole).
`records` is sized and may be iterated several times, but not indexed: a run passes
ManifestRecords, which parses manifest.jsonl again on each pass, so a writer keeps at
most what it writes in memory, not every record.
Helpers shared by the writers live here.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path

from imgsynth.core.boxes import Box, is_empty
from imgsynth.core.errors import RecipeError
from imgsynth.core.registry import FORMATS
from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.readers.base import LabelWarning

# What each format needs, whether it is written per record or reads the sample files back:
# its FormatSpec in imgsynth.core.registry.FORMATS.

Records = Collection[dict]  # a list, or ManifestRecords


def _control_characters(name: str) -> list[str]:
    return [f"U+{ord(ch):04X}" for ch in dict.fromkeys(name) if unicodedata.category(ch) in ("Cc", "Cs")
            or ch in "\ufffe\uffff"]


def _xml_name_problem(name: str) -> str | None:
    if not name:
        return "is empty, which VOC readers take for a missing <name>"
    bad = _control_characters(name)
    if bad:
        return f"holds control characters ({', '.join(bad)}), which XML cannot hold"
    if name != name.strip():
        return "starts or ends with white space, which VOC readers strip"
    return None


def _folder_name_problem(name: str) -> str | None:
    if name in ("", ".", ".."):
        return "is not a folder name"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    bad = _control_characters(name)
    if bad:
        return f"holds control characters ({', '.join(bad)})"
    if name.startswith("."):
        return "starts with '.', which makes a hidden folder that ImageFolder readers skip"
    if len(name.encode("utf-8")) > 255:
        return "is longer than a folder name may be (255 bytes)"
    return None


# Class names a format cannot hold as they are (it would write an unreadable file, or a
# reader would get another name back), by FormatSpec.class_names. Checked on the declared
# classes before any sample.
CLASS_NAME_RULES = {"xml": _xml_name_problem, "folder": _folder_name_problem}


def check_class_names(formats: Iterable[str], classes: Iterable[str], key: str = "output.formats",
                      file: str | None = None) -> None:
    """RecipeError for the first class name that one of the formats cannot hold."""
    for fmt in formats:
        spec = FORMATS.get(fmt)
        rule = CLASS_NAME_RULES.get(spec.class_names) if spec and spec.class_names else None
        for name in classes if rule else ():
            problem = rule(str(name))
            if problem:
                raise RecipeError(f"class name {str(name)!r} {problem}, so the '{fmt}' format "
                                  "cannot hold it", key=key, file=file,
                                  fix=f"rename the class (output.classes, or its folder/category), "
                                      f"or remove '{fmt}'")


def class_ids(records: Records, classes: list[str]) -> dict[str, int]:
    """name -> 0-based id; a class in the records that `classes` lacks is a recipe error."""
    ids = {name: i for i, name in enumerate(classes)}
    for rec in records:
        for inst in rec["instances"]:
            if inst["class"] not in ids:
                raise RecipeError(
                    f"class '{inst['class']}' (sample id {rec['id']}) is not in the class list "
                    f"{classes}", key="output.classes", fix="add it to output.classes")
    return ids


def labeled_boxes(record: dict, fmt: str) -> list[tuple[dict, Box]]:
    """(instance, bbox_xyxy) for every instance whose box has an area; the others are left
    out with a LabelWarning (no format has a meaning for an empty box)."""
    kept = []
    for k, inst in enumerate(record["instances"]):
        box = tuple(inst["bbox_xyxy"])
        if is_empty(box):
            warnings.warn(f"{fmt}: sample id {record['id']} instance {k} ({inst['class']}) has an "
                          f"empty box {list(box)}; left out", LabelWarning, stacklevel=2)
            continue
        kept.append((inst, box))
    return kept


def link_or_copy(src: Path, dst: Path) -> None:
    """Put `src` at `dst` as a hard link (no extra disk), else as an atomic copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if os.path.samefile(src, dst):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        atomic_write_bytes(dst, src.read_bytes())


def image_under(record: dict, folder: str, suffix: str | None = None) -> Path:
    """The record's path inside `folder` instead of `images/` (keeping sub-folders)."""
    rel = Path(record["image"])
    if rel.parts[0] != "images":
        raise ValueError(f"record image '{rel}' is not under images/")
    path = Path(folder, *rel.parts[1:])
    return path.with_suffix(suffix) if suffix else path
