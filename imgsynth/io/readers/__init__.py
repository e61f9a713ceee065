"""Readers of labeled datasets: `read_dataset(path, format="auto") -> LabeledDataset`.

Format detection ("auto"): a .json file is COCO, a .yaml file is YOLO; a folder is COCO
when it holds annotations.json or annotations/*.json, YOLO when it holds labels/ or
data.yaml, VOC when it holds Annotations/, and ImageFolder otherwise (an `imagefolder/`
sub-folder beside manifest.jsonl, as imgsynth writes it, counts as ImageFolder). A folder that matches several
formats (an imgsynth output with several label formats) must be given `format=`.
"""

from __future__ import annotations

from pathlib import Path

from imgsynth.core.errors import InputError
from imgsynth.io.readers.base import LabeledDataset, LabelWarning

FORMATS = ("coco", "yolo", "voc", "imagefolder")

__all__ = ["FORMATS", "LabeledDataset", "LabelWarning", "detect_format", "read_dataset"]


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        raise InputError("not a dataset: give a folder, a COCO .json or a YOLO data.yaml",
                         file=str(path))
    found = []
    if (path / "annotations.json").is_file() or any((path / "annotations").glob("*.json")):
        found.append("coco")
    if (path / "labels").is_dir() or (path / "data.yaml").is_file():
        found.append("yolo")
    if (path / "Annotations").is_dir():
        found.append("voc")
    if _is_imgsynth_imagefolder(path):
        found.append("imagefolder")
    if len(found) > 1:
        raise InputError(f"the folder holds several label formats: {', '.join(found)}",
                         file=str(path), fix=f"set the format to one of: {', '.join(found)}")
    return found[0] if found else "imagefolder"


def _is_imgsynth_imagefolder(path: Path) -> bool:
    """An imgsynth output folder with its classification copy in imagefolder/."""
    return (path / "imagefolder").is_dir() and (path / "manifest.jsonl").is_file()


def read_dataset(path: str | Path, format: str = "auto", *, classes: list[str] | None = None,
                 images: str | Path | None = None) -> LabeledDataset:
    """Open a labeled dataset. `classes` fixes the class order for YOLO (instead of
    data.yaml) and VOC; `images` is the COCO image folder when it cannot be found."""
    path = Path(path)
    if not path.exists():
        raise InputError("dataset path does not exist", file=str(path),
                         fix="check the path (relative paths start at the working directory)")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "coco":
        from imgsynth.io.readers.coco import read_coco

        return read_coco(path, Path(images) if images else None)
    if fmt == "yolo":
        from imgsynth.io.readers.yolo import read_yolo

        return read_yolo(path, classes)
    if fmt == "voc":
        from imgsynth.io.readers.voc import read_voc

        return read_voc(path, classes)
    if fmt == "imagefolder":
        from imgsynth.io.readers.folder import read_imagefolder

        if _is_imgsynth_imagefolder(path):
            path = path / "imagefolder"
        return read_imagefolder(path)
    raise InputError(f"unknown dataset format '{format}'", file=str(path),
                     fix=f"use auto or one of: {', '.join(FORMATS)}")
