"""Pascal VOC XML: OUT/Annotations/<stem>.xml for every image (images stay in OUT/images).

Boxes use VOC's convention of 1-based pixel indices with the last pixel included:
xmin = round(x1) + 1, xmax = round(x2) (halves round up) (same for y), so an integer xyxy box reads back
exactly (the reader does x1 = xmin - 1, x2 = xmax) and a fractional one moves by at most
half a pixel. A box smaller than one pixel after rounding is left out with a LabelWarning.
Flags: truncated and difficult from the instance; occluded = 1 when more than 5 % of the
object is hidden (the VOC annotation guidelines' threshold).
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers import Records, class_ids, image_under, labeled_boxes

OCCLUDED_FRACTION = 0.05


def write_voc(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    class_ids(records, classes)  # every class must be declared, as for the other formats
    written = []
    for rec in records:
        path = Path(out_dir) / image_under(rec, "Annotations", ".xml")
        atomic_write_bytes(path, voc_xml(rec))
        written.append(path)
    return written


def voc_xml(rec: dict) -> bytes:
    image = Path(rec["image"])
    root = ET.Element("annotation")
    _sub(root, "folder", str(image.parent))
    _sub(root, "filename", image.name)
    _sub(_sub(root, "source"), "database", "imgsynth")
    size = _sub(root, "size")
    _sub(size, "width", rec["width"])
    _sub(size, "height", rec["height"])
    _sub(size, "depth", 3)
    _sub(root, "segmented", int(any(i.get("segmentation") for i in rec["instances"])))
    for inst, box in labeled_boxes(rec, "voc"):
        xmin, ymin = _round_half_up(box[0]) + 1, _round_half_up(box[1]) + 1
        xmax, ymax = _round_half_up(box[2]), _round_half_up(box[3])
        if xmax < xmin or ymax < ymin:
            warnings.warn(f"voc: sample id {rec['id']} {inst['class']} box {list(box)} is smaller "
                          "than one pixel; left out", LabelWarning, stacklevel=2)
            continue
        obj = _sub(root, "object")
        _sub(obj, "name", inst["class"])
        _sub(obj, "pose", "Unspecified")
        _sub(obj, "truncated", int(bool(inst.get("truncated"))))
        _sub(obj, "occluded", int(float(inst.get("occluded") or 0) > OCCLUDED_FRACTION))
        _sub(obj, "difficult", int(bool(inst.get("difficult"))))
        bndbox = _sub(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)):
            _sub(bndbox, tag, value)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)  # Python's round() would send 2.5 to 2 but 3.5 to 4


def _sub(parent: ET.Element, tag: str, text=None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node
