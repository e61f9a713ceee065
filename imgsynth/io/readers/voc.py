"""Pascal VOC XML (`Annotations/*.xml` beside `JPEGImages/`, or imgsynth's `images/`).

Box convention: VOC stores 1-based pixel indices with the last pixel included, so an
object covering columns 0..9 (0-based) is xmin=1, xmax=10. imgsynth's xyxy has exclusive
right/bottom edges, so x1 = xmin - 1, x2 = xmax (same for y); fractional values are kept.
`truncated`, `difficult` and `occluded` are 0/1 flags; occluded=1 is read as
`Instance.occluded = 1.0` (VOC does not say how much is hidden).
Classes: `classes=` if given (each name once), else the sorted object names found.
The image is looked up as `<filename>` in JPEGImages/, images/, then the `<folder>` the
file names, under the dataset folder; a `<filename>` or `<folder>` leading outside its
folder is refused (`join_inside`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from imgsynth.core.errors import InputError
from imgsynth.io.image import IMAGE_SUFFIXES
from imgsynth.io.readers.base import (
    ImageEntry, InstanceLabel, LabeledDataset, checked_box, join_inside, parse_number, unique_names,
)


def read_voc(path: Path, classes: list[str] | None = None) -> LabeledDataset:
    ann_dir = path / "Annotations"
    if not ann_dir.is_dir():
        raise InputError("no 'Annotations' folder (VOC layout: Annotations/ and JPEGImages/)",
                         file=str(path), fix="point the dataset path at the VOC year folder")
    if classes is not None:
        unique_names(list(classes), path, "the given class names")
    issues: Counter = Counter()
    entries = []
    for xml_path in sorted(ann_dir.glob("*.xml")):
        root = _parse(xml_path)
        size = _size(root, xml_path)
        instances = []
        for k, obj in enumerate(root.findall("object")):
            lab = _object(obj, k, size, issues, xml_path)
            if lab is not None:
                instances.append(lab)
        entries.append(ImageEntry(image=_image_path(path, root, xml_path), label_file=xml_path,
                                  instances=instances, size=size))
    found = sorted({lab.class_name for e in entries for lab in e.instances})
    if classes is not None:
        unknown = [n for n in found if n not in classes]
        if unknown:
            raise InputError(f"object names {unknown} are not in the given classes",
                             file=str(ann_dir), fix="add them to the class list")
    return LabeledDataset("voc", path, list(classes) if classes else found, entries, issues)


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise InputError(f"invalid XML at line {line} column {col}", file=str(path),
                         fix="repair or re-export the annotation") from None


def _text(node: ET.Element, tag: str, default: str | None = None) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _size(root: ET.Element, path: Path) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    width = int(parse_number(_text(size, "width", "0"), path, "size/width"))
    height = int(parse_number(_text(size, "height", "0"), path, "size/height"))
    return (width, height) if width > 0 and height > 0 else None  # some tools write 0


def _image_path(dataset: Path, root: ET.Element, xml_path: Path) -> Path:
    filename = _text(root, "filename") or xml_path.stem
    folders = []
    for name in ["JPEGImages", "images"] + ([_text(root, "folder")] if _text(root, "folder") else []):
        folder = join_inside(dataset, name, xml_path, "<folder>")  # checked when looked in
        folders.append(folder)
        if join_inside(folder, filename, xml_path, "<filename>").is_file():
            return folder / filename
        for suffix in IMAGE_SUFFIXES:  # <filename> missing its extension, or a different one
            candidate = folder / (Path(filename).stem + suffix)
            if candidate.is_file():
                return candidate
    raise InputError(f"annotation has no image: '{filename}' not found in "
                     f"{', '.join(str(f) for f in folders)}", file=str(xml_path),
                     fix="restore the image or remove the annotation")


def _flag(obj: ET.Element, tag: str, path: Path, where: str) -> bool:
    return parse_number(_text(obj, tag, "0"), path, f"{where} <{tag}>") != 0


def _object(obj: ET.Element, k: int, size, issues: Counter, path: Path) -> InstanceLabel | None:
    name = _text(obj, "name")
    where = f"object #{k} ({name})"
    if not name:
        raise InputError(f"object #{k} has no <name>", file=str(path), fix="add the class name")
    box_node = obj.find("bndbox")
    if box_node is None:
        raise InputError(f"{where} has no <bndbox>", file=str(path), fix="add the box or remove the object")
    coords = [parse_number(_text(box_node, tag), path, f"{where} <{tag}>")
              for tag in ("xmin", "ymin", "xmax", "ymax")]
    box = checked_box((coords[0] - 1, coords[1] - 1, coords[2], coords[3]), size, issues,
                      f"{path}: {where}")
    if box is None:
        return None
    return InstanceLabel(class_name=name, bbox_xyxy=box,
                         truncated=_flag(obj, "truncated", path, where),
                         difficult=_flag(obj, "difficult", path, where),
                         occluded=float(_flag(obj, "occluded", path, where)))
