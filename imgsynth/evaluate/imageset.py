"""Image sets to evaluate: a folder of images, or an imgsynth output folder.

An imgsynth output folder (manifest.jsonl) brings labels (class balance, TSTR) and
boxes (box histograms). A plain folder whose images sit in one level of sub-folders
(ImageFolder layout) gets the sub-folder names as labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from imgsynth.core.errors import InputError
from imgsynth.io.folders import image_files
from imgsynth.io.image import IMAGE_SUFFIXES

MANIFEST = "manifest.jsonl"


@dataclass
class ImageSet:
    root: Path
    files: list[Path]
    labels: list[str] | None = None  # one per file, or None when unlabeled
    # one list per file: (class, bbox_xyxy, width, height) of each instance
    boxes: list[list[tuple[str, list[float], int, int]]] | None = None
    layout: str = "folder"  # "folder", "imagefolder" or "manifest"
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Hash of relative paths, sizes and mtimes: changes when any file changes."""
        digest = hashlib.sha256()
        for path in self.files:
            st = path.stat()
            digest.update(f"{path.relative_to(self.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def open_image_set(path: str | Path, role: str = "images") -> ImageSet:
    """List a folder's images in sorted order (or a manifest's, in index order)."""
    root = Path(path)
    if not root.exists():
        raise InputError(f"{role} folder does not exist", file=str(root),
                         fix="pass an existing folder of images")
    if not root.is_dir():
        raise InputError(f"{role} must be a folder of images", file=str(root),
                         fix="pass the folder that holds the images (or a stats .npz for --real)")
    if (root / MANIFEST).is_file():
        image_set = read_manifest_set(root)
    else:
        files = [p for p in image_files(root)
                 if not any(part.startswith(".") for part in p.relative_to(root).parts)]
        image_set = ImageSet(root, files)
        parents = {p.parent for p in files}
        if files and all(p.parent.parent == root for p in files) and len(parents) > 1:
            image_set.labels = [p.parent.name for p in files]
            image_set.layout = "imagefolder"
    if not image_set.files:
        raise InputError(f"{role} folder holds no images ({', '.join(IMAGE_SUFFIXES)})",
                         file=str(root), fix="point to the folder that contains the image files")
    return image_set


def read_manifest_set(root: Path) -> ImageSet:
    """The images of an imgsynth output, with labels and boxes; a record that is not what
    imgsynth writes, or whose image path leads outside the folder, names its line."""
    from imgsynth.io.readers.base import join_inside, read_label_text

    manifest = root / MANIFEST
    files, labels, boxes = [], [], []
    for line_no, line in enumerate(read_label_text(manifest).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image = record["image"]
            instances = record.get("instances") or []
            if not isinstance(image, str) or not isinstance(instances, list) \
                    or not all(isinstance(inst, dict) for inst in instances):
                raise TypeError("'image' must be a path and 'instances' a list of objects")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"line {line_no} is not a manifest record ({exc})",
                             file=str(manifest), fix="re-run imgsynth to rewrite it") from None
        files.append(join_inside(root, image, manifest, f"line {line_no}"))
        labels.append(record.get("label"))
        boxes.append([(inst.get("class"), inst["bbox_xyxy"], record.get("width"), record.get("height"))
                      for inst in instances if inst.get("bbox_xyxy")])
    image_set = ImageSet(root, files, layout="manifest")
    if files and all(label is not None for label in labels):
        image_set.labels = [str(label) for label in labels]
    if any(boxes):
        image_set.boxes = boxes
    return image_set
