"""Object libraries: cutouts loaded once per worker, cropped and premultiplied.

Three layouts: RGBA cutouts in class folders (`objects/<class>/*.png`), image + mask
pairs in class folders (`<stem>.jpg` + `<stem>_mask.png`), and instances cut out of a
COCO dataset by their segmentation. A cutout whose silhouette (imgsynth.core.masks) is
empty is left out and reported; a class left with no cutout is an error that names its
folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsynth.compose.config import ObjectLibraryConfig
from imgsynth.compose.placement import premultiply
from imgsynth.core.errors import InputError
from imgsynth.core.masks import silhouette
from imgsynth.io.folders import image_files
from imgsynth.io.image import decode_image

log = logging.getLogger(__name__)


@dataclass
class Cutout:
    """One object: premultiplied RGBA cropped to its alpha, its class and its file."""

    class_name: str
    rgba: np.ndarray
    file: str


@dataclass
class ObjectLibrary:
    by_class: dict[str, list[Cutout]] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    @property
    def classes(self) -> list[str]:
        return sorted(self.by_class)

    def all(self) -> list[Cutout]:
        return [c for name in self.classes for c in self.by_class[name]]

    def add(self, cutout: Cutout | None, file: str, reason: str) -> None:
        if cutout is None:
            self.left_out.append((file, reason))
        else:
            self.by_class.setdefault(cutout.class_name, []).append(cutout)


def cutout_from_rgba(rgba: np.ndarray, class_name: str, file: str) -> Cutout | None:
    """Crop to the nonzero alpha; None when the silhouette would be empty."""
    alpha = rgba[:, :, 3]
    if not silhouette(alpha).any():
        return None
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    crop = rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Cutout(class_name, premultiply(np.ascontiguousarray(crop)), file)


def rgba_from_image_mask(image: np.ndarray, mask: np.ndarray, file: str) -> np.ndarray:
    if image.shape[:2] != mask.shape[:2]:
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                         f"{image.shape[1]}x{image.shape[0]}", file=file,
                         fix="save the mask at the image's size")
    # A 0/1 mask and a 0/255 mask mean the same; soft 0..255 masks keep their softness.
    alpha = np.where(mask > 0, 255, 0).astype(np.uint8) if mask.max() <= 1 else mask
    return np.dstack([image, alpha])


def _class_folders(root: Path, wanted: list[str] | None, key: str) -> list[Path]:
    if not root.exists():
        raise InputError("object folder not found", file=str(root), key=key,
                         fix="point it at a folder with one sub-folder per class")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if wanted is not None:
        missing = sorted(set(wanted) - {p.name for p in folders})
        if missing:
            raise InputError(f"no folder for class(es) {', '.join(missing)}", file=str(root),
                             key=key, fix="create objects/<class>/ folders or fix the class list")
        folders = [p for p in folders if p.name in wanted]
    if not folders:
        raise InputError("no class folders found", file=str(root), key=key,
                         fix="put cutouts in <folder>/<class>/*.png")
    return folders


def _images_in(folder: Path, mask_suffix: str | None) -> list[Path]:
    files = image_files(folder, recursive=False)
    if mask_suffix:
        files = [p for p in files if not p.stem.endswith(mask_suffix)]
    return files


def load_folder_library(cfg: ObjectLibraryConfig, key: str, *, unlabeled: bool = False) -> ObjectLibrary:
    """RGBA cutouts or image+mask pairs in class folders (or, for distractors, anywhere below)."""
    root = Path(cfg.path)
    pairs = cfg.format == "image_mask"
    suffix = cfg.mask_suffix if pairs else None
    if unlabeled:
        if not root.exists():
            raise InputError("distractor folder not found", file=str(root), key=key)
        groups = [("distractor", [p for p in image_files(root)
                                  if not (suffix and p.stem.endswith(suffix))])]
    else:
        groups = [(f.name, _images_in(f, suffix)) for f in _class_folders(root, cfg.classes, key)]
    library = ObjectLibrary()
    loaded = 0
    for class_name, files in groups:
        if not files and not unlabeled:
            raise InputError(f"class '{class_name}' has no images", file=str(root / class_name),
                             key=key, fix="add cutouts to the folder or remove it")
        for path in files:
            if cfg.max_objects is not None and loaded >= cfg.max_objects:
                break
            if pairs:
                mask_path = path.with_name(path.stem + cfg.mask_suffix + ".png")
                if not mask_path.exists():
                    raise InputError(f"no mask file for this image (expected {mask_path.name})",
                                     file=str(path), key=key,
                                     fix=f"add {mask_path.name} or change mask_suffix")
                rgba = rgba_from_image_mask(decode_image(path), decode_image(mask_path, mode="L"),
                                            str(mask_path))
            else:
                rgba = decode_image(path, mode="RGBA")
            library.add(cutout_from_rgba(rgba, class_name, str(path)), str(path),
                        "empty alpha" if not pairs else "empty mask")
            loaded += 1
    _check_not_empty(library, [g[0] for g in groups], root, key, unlabeled)
    return library


def load_coco_library(cfg: ObjectLibraryConfig, key: str, *, unlabeled: bool = False) -> ObjectLibrary:
    """Instances of a COCO dataset, cut out of their images by their segmentation."""
    from imgsynth.io.readers import read_dataset

    dataset = read_dataset(cfg.path, format="coco")
    library = ObjectLibrary()
    for i in range(len(dataset)):
        if cfg.max_objects is not None and sum(map(len, library.by_class.values())) >= cfg.max_objects:
            break
        sample = dataset.load(i)
        where = sample.source_files[0] if sample.source_files else f"{cfg.path}#{i}"
        for k, inst in enumerate(sample.instances):
            if cfg.classes is not None and inst.class_name not in cfg.classes:
                continue
            ref = f"{where} (annotation {k})"
            if inst.mask is None or not inst.mask.any():
                library.left_out.append((ref, "empty segmentation"))
                continue
            rgba = np.dstack([sample.image[:, :, :3], inst.mask.astype(np.uint8) * 255])
            name = "distractor" if unlabeled else inst.class_name
            library.add(cutout_from_rgba(rgba, name, ref), ref, "empty segmentation")
    _check_not_empty(library, cfg.classes or [], Path(cfg.path), key, unlabeled)
    return library


def _check_not_empty(library: ObjectLibrary, expected: list[str], root: Path, key: str,
                     unlabeled: bool) -> None:
    if library.left_out:
        shown = "; ".join(f"{f}: {r}" for f, r in library.left_out[:5])
        more = f" and {len(library.left_out) - 5} more" if len(library.left_out) > 5 else ""
        log.warning("left out %d object(s): %s%s", len(library.left_out), shown, more)
    empty = [c for c in expected if not library.by_class.get(c)]
    if empty or not library.by_class:
        reasons = "; ".join(f"{f}: {r}" for f, r in library.left_out[:5]) or "no objects found"
        what = "distractors" if unlabeled else f"class(es) {', '.join(empty) or '(all)'}"
        raise InputError(f"no usable objects for {what} ({reasons})", file=str(root), key=key,
                         fix="give every class at least one cutout with a visible alpha/mask")


def load_library(cfg: ObjectLibraryConfig, key: str, *, unlabeled: bool = False) -> ObjectLibrary:
    if cfg.format == "coco":
        return load_coco_library(cfg, key, unlabeled=unlabeled)
    return load_folder_library(cfg, key, unlabeled=unlabeled)
