"""Shared fixtures: tiny data sets made in the test, never downloaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from imgsynth.core.masks import rle_encode, tight_bbox
from imgsynth.io.image import encode_image

CLASSES = ["disk", "square"]


def make_coco_dataset(root: Path, n_images: int = 6, size: tuple[int, int] = (96, 128),
                      seed: int = 0) -> Path:
    """A small COCO set of disks and squares with exact RLE masks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    h, w = size
    images, annotations = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n_images):
        img = (rng.integers(0, 60, (h, w, 3))).astype(np.uint8)
        for k in range(1 + i % 3):
            cls = k % 2
            cx, cy, r = int(rng.integers(20, w - 20)), int(rng.integers(20, h - 20)), int(rng.integers(6, 16))
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r) if cls == 0 else (
                (abs(xx - cx) <= r) & (abs(yy - cy) <= r))
            img[mask] = rng.integers(120, 255, 3)
            x1, y1, x2, y2 = tight_bbox(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(mask.sum()),
                                "segmentation": rle_encode(mask), "iscrowd": 0})
        name = f"img{i:03d}.png"
        (root / "images" / name).write_bytes(encode_image(img, "png"))
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": j + 1, "name": c} for j, c in enumerate(CLASSES)]}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


@pytest.fixture
def coco_dataset(tmp_path: Path) -> Path:
    return make_coco_dataset(tmp_path / "data")


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, keyed by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
