"""Training images for the DCGAN/VAE trainer, loaded once into memory as uint8.

Small generative models train on small images, so the whole set is held as one
N x H x W x C array: data order is then a pure function of (seed, step), which
is what makes resuming exact.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgsynth.core.boxes import clip_xyxy, xywh_to_xyxy
from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.rng import run_rng
from imgsynth.generate.config import TrainDataConfig
from imgsynth.io.folders import image_files
from imgsynth.io.image import decode_image

DIGITS_CLASSES = [str(d) for d in range(10)]


@dataclass
class TrainingImages:
    """uint8 images N x H x W x C with integer class labels (0 when unlabeled)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> TrainingImages:
        return TrainingImages(self.images[index], self.labels[index], self.classes,
                              [self.files[i] for i in index])


def fit_image(image: np.ndarray, resolution: int, fit: str, *, file: str = "") -> np.ndarray:
    """Make an HxWxC image resolution x resolution: center_crop, stretch, or error."""
    h, w = image.shape[:2]
    if (h, w) == (resolution, resolution):
        return image
    if fit == "error":
        raise InputError(f"image is {w}x{h}, the model needs {resolution}x{resolution}",
                         file=file, fix="set data.fit: center_crop or stretch to resize images "
                         "of other sizes, or resize the folder beforehand")
    if fit == "center_crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if max(image.shape[:2]) > resolution else cv2.INTER_CUBIC
    resized = cv2.resize(image, (resolution, resolution), interpolation=interpolation)
    return resized.reshape(resolution, resolution, image.shape[2])


def read_image(path: Path, channels: int) -> np.ndarray:
    """Any image mode -> HxWx1 gray or HxWx3 RGB uint8."""
    if channels == 1:
        return decode_image(path, mode="L")[:, :, None]
    return decode_image(path, mode="RGB")


def folder_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError("image folder not found", file=str(root),
                         fix="set data.path to an existing folder of images")
    return image_files(root)


def imagefolder_files(root: Path, classes: list[str] | None) -> tuple[list[Path], list[int], list[str]]:
    """ImageFolder layout: root/<class>/**/image. Returns files, label ids, class names."""
    if not root.is_dir():
        raise InputError("image folder not found", file=str(root),
                         fix="set data.path to a folder with one sub-folder per class")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = classes or found
    missing = [c for c in names if c not in found]
    if missing:
        raise RecipeError(f"class folder(s) {missing} not found in {root}", key="data.classes",
                          fix=f"use some of: {', '.join(found)}")
    files, labels = [], []
    for label, name in enumerate(names):
        for path in folder_files(root / name):
            files.append(path)
            labels.append(label)
    return files, labels, names


def crop_box_square(box_xyxy, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A square around a box, grown by `padding` of its long side, clipped to the image."""
    x1, y1, x2, y2 = box_xyxy
    side = max(x2 - x1, y2 - y1) * (1 + 2 * padding)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sq = clip_xyxy((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), width, height)
    return (int(round(sq[0])), int(round(sq[1])), int(round(sq[2])), int(round(sq[3])))


def coco_crops(cfg: TrainDataConfig, root: Path, annotations: Path, resolution: int,
               channels: int) -> TrainingImages:
    """One square crop per COCO object (not crowd, not smaller than min_crop_size)."""
    try:
        coco = json.loads(annotations.read_text())
    except FileNotFoundError:
        raise InputError("COCO annotations file not found", file=str(annotations),
                         fix="set data.annotations to an instances JSON") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(annotations)) from None
    category_names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    names = cfg.classes or sorted(set(category_names.values()))
    label_of = {name: i for i, name in enumerate(names)}
    by_image = defaultdict(list)
    for ann in coco.get("annotations", []):
        name = category_names.get(ann["category_id"])
        w, h = ann["bbox"][2], ann["bbox"][3]
        if ann.get("iscrowd") or name not in label_of or min(w, h) < cfg.min_crop_size:
            continue
        by_image[ann["image_id"]].append(ann)
    images, labels, files = [], [], []
    for info in sorted(coco.get("images", []), key=lambda im: im["id"]):
        anns = by_image.get(info["id"])
        if not anns:
            continue
        path = root / info["file_name"]
        image = read_image(path, channels)
        for ann in anns:
            x1, y1, x2, y2 = crop_box_square(xywh_to_xyxy(tuple(ann["bbox"])), cfg.crop_padding,
                                             image.shape[1], image.shape[0])
            crop = image[y1:y2, x1:x2]
            images.append(fit_image(crop, resolution, "stretch" if cfg.fit == "error" else cfg.fit))
            labels.append(label_of[category_names[ann["category_id"]]])
            files.append(f"{path}#ann{ann['id']}")
    return _stack(images, labels, names, files, resolution, channels)


def digits_images(resolution: int, channels: int, classes: list[str] | None) -> TrainingImages:
    """scikit-learn's bundled 8x8 digits (values 0..16), upscaled to resolution."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    names = classes or DIGITS_CLASSES
    unknown = [c for c in names if c not in DIGITS_CLASSES]
    if unknown:
        raise RecipeError(f"digits has no class {unknown}", key="data.classes",
                          fix="use class names '0' to '9'")
    label_of = {name: i for i, name in enumerate(names)}
    images, labels, files = [], [], []
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        if str(target) not in label_of:
            continue
        small = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)
        big = cv2.resize(small, (resolution, resolution), interpolation=cv2.INTER_CUBIC)
        images.append(np.repeat(big[:, :, None], channels, axis=2))
        labels.append(label_of[str(target)])
        files.append(f"sklearn-digits#{i}")
    return _stack(images, labels, names, files, resolution, channels)


def _stack(images, labels, classes, files, resolution, channels) -> TrainingImages:
    array = (np.stack(images) if images
             else np.zeros((0, resolution, resolution, channels), np.uint8))
    return TrainingImages(array, np.asarray(labels, dtype=np.int64), list(classes),
                          [str(f) for f in files])


def load_training_images(cfg: TrainDataConfig, resolution: int, channels: int,
                         seed: int) -> TrainingImages:
    """Read, convert and fit every training image; apply data.limit with a seeded choice.
    Relative paths start from the current folder, as in `imgsynth run` recipes."""
    if cfg.kind == "digits":
        data = digits_images(resolution, channels, cfg.classes)
    elif cfg.kind == "coco":
        data = coco_crops(cfg, Path(cfg.path), Path(cfg.annotations), resolution,
                          channels)
    else:
        root = Path(cfg.path)
        if cfg.kind == "imagefolder":
            paths, labels, classes = imagefolder_files(root, cfg.classes)
        else:
            paths = folder_files(root)
            labels, classes = [0] * len(paths), ["image"]
        images = [fit_image(read_image(p, channels), resolution, cfg.fit, file=str(p))
                  for p in paths]
        data = _stack(images, labels, classes, paths, resolution, channels)
    if len(data) == 0:
        raise InputError(f"no training images found for data.kind '{cfg.kind}'",
                         file=cfg.path or "digits",
                         fix="point data.path at a folder with .png/.jpg images")
    if cfg.limit is not None and cfg.limit < len(data):
        chosen = np.sort(run_rng(seed).choice(len(data), cfg.limit, replace=False))
        data = data.subset(chosen)
    return data


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of n images into (train, held-out) index arrays, both sorted."""
    order = run_rng(seed, 1).permutation(n)
    n_hold = int(round(n * fraction))
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])
