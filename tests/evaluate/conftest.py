"""Small image sets made in the test from scikit-learn's digits (shipped with sklearn)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgsynth.io.image import encode_image


def digits_rgb(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (N, size, size, 3) uint8 and their labels."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    big = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_NEAREST) for g in gray])
    return np.repeat(big[..., None], 3, axis=-1), digits.target


def write_image_folder(root: Path, images: np.ndarray, labels=None) -> Path:
    """ImageFolder layout (root/<label>/NNNNN.png) when labels are given, else flat."""
    for i, image in enumerate(images):
        sub = root / str(labels[i]) if labels is not None else root
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:05d}.png").write_bytes(encode_image(image))
    return root


def write_manifest_folder(root: Path, images: np.ndarray, labels, boxes) -> Path:
    """An imgsynth output folder: images/ + manifest.jsonl with labels and boxes."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.jsonl", "w") as fh:
        for i, image in enumerate(images):
            name = f"images/{i + 1:08d}.png"
            (root / name).write_bytes(encode_image(image))
            h, w = image.shape[:2]
            fh.write(json.dumps({"id": f"{i + 1:08d}", "index": i, "image": name, "width": w,
                                 "height": h, "label": str(labels[i]),
                                 "instances": [{"class": "digit", "bbox_xyxy": list(b)} for b in boxes[i]]}) + "\n")
    return root


@pytest.fixture(scope="session")
def digits():
    return digits_rgb()


@pytest.fixture(scope="session")
def builtin():
    from imgsynth.evaluate.features import get_extractor

    return get_extractor("builtin", preset="clean")
