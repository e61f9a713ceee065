"""Tiny object libraries and backgrounds drawn in the test (never sample_assets' content)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from imgsynth.compose.config import ComposeConfig
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext
from imgsynth.io.image import encode_image

SHAPES = {"disk": 0, "box": 1}


def shape_alpha(h: int, w: int, kind: int) -> np.ndarray:
    alpha = np.zeros((h, w), np.uint8)
    if kind == 0:
        cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 255, -1,
                    lineType=cv2.LINE_AA)
    else:
        alpha[3:-3, 3:-3] = 255
    return alpha


def textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    wave = (20 * np.sin(xx / 4.0 + seed) + 20 * np.cos(yy / 5.0)).astype(np.int32)
    return np.clip(base[None, None, :] + wave[:, :, None], 0, 255).astype(np.uint8)


def make_rgba_objects(root: Path, per_class: int = 2) -> Path:
    for name, kind in SHAPES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            h, w = 30 + 6 * k, 40 - 4 * k
            rgba = np.dstack([textured(h, w, 10 * kind + k), shape_alpha(h, w, kind)])
            (root / name / f"{name}{k}.png").write_bytes(encode_image(rgba))
    return root


def make_image_mask_objects(root: Path) -> Path:
    for name, kind in SHAPES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = 34, 38
        (root / name / f"{name}.jpg").write_bytes(encode_image(textured(h, w, 5 + kind), "jpg"))
        (root / name / f"{name}_mask.png").write_bytes(encode_image(shape_alpha(h, w, kind)))
    return root


def make_backgrounds(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, (h, w) in enumerate([(120, 160), (150, 200)]):
        (root / f"bg{k}.png").write_bytes(encode_image(textured(h, w, 100 + k)))
    return root


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compose_assets")
    make_rgba_objects(root / "objects")
    make_image_mask_objects(root / "pairs")
    make_backgrounds(root / "backgrounds")
    return root


def build(assets: Path, **fields):
    data = {"objects": str(assets / "objects"), "backgrounds": str(assets / "backgrounds"),
            "width": 160, "height": 120, **fields}
    return ComposeConfig.model_validate(data).build(BuildContext())


def generate(source, index: int, seed: int = 0):
    return source.generate(index, sample_rng(seed, "compose", index))
