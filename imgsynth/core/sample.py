"""The record that flows through every stage and every writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Instance:
    """One labeled object in an image.

    `bbox_xyxy` is in absolute pixels, float, x2/y2 exclusive edges
    (a one-pixel object at column 3 spans 3.0..4.0). `mask` is an HxW bool array of
    the object's visible pixels, when known; when present, it is the truth and
    `bbox_xyxy` equals `tight_bbox(mask)`.
    """

    class_name: str
    bbox_xyxy: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    polygons: list[np.ndarray] | None = None  # each (K, 2) float xy, absolute pixels
    keypoints: np.ndarray | None = None  # (K, 3) x, y, visibility
    truncated: bool = False
    occluded: float = 0.0  # fraction of the object hidden by other objects
    visible_fraction: float = 1.0
    difficult: bool = False
    iscrowd: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """An image with its targets and provenance.

    image: HxWxC numpy array, uint8 (or float32 in [0, 1] inside a stage); C is 3 (RGB)
    or 1 (gray). Writers receive uint8.
    """

    index: int
    image: np.ndarray
    instances: list[Instance] = field(default_factory=list)
    label: str | None = None  # classification label
    text: str | None = None  # OCR transcription, NFC
    source_files: list[str] = field(default_factory=list)
    seed_keys: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest
    passthrough: bool = False  # an original copied unchanged: stages leave it alone

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def class_names(self) -> list[str]:
        return [inst.class_name for inst in self.instances]
