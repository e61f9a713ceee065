"""Box formats, converted in this module and nowhere else.

- xyxy: absolute pixels, (x1, y1, x2, y2), x2/y2 are exclusive edges.
- xywh: absolute pixels, (x, y, width, height) (COCO).
- cxcywh_norm: center and size divided by image width/height (YOLO).
"""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]


def xyxy_to_xywh(b: Box) -> Box:
    x1, y1, x2, y2 = b
    return (x1, y1, x2 - x1, y2 - y1)


def xywh_to_xyxy(b: Box) -> Box:
    x, y, w, h = b
    return (x, y, x + w, y + h)


def xyxy_to_cxcywh_norm(b: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = clip_xyxy(b, width, height)
    return ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)


def cxcywh_norm_to_xyxy(b: Box, width: int, height: int) -> Box:
    cx, cy, w, h = b
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


def clip_xyxy(b: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = b
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def is_empty(b: Box) -> bool:
    return not (b[2] > b[0] and b[3] > b[1])


def points_bbox(points: np.ndarray) -> Box:
    """Smallest xyxy box around (K, 2) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()),
            float(pts[:, 0].max()), float(pts[:, 1].max()))
