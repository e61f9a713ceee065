"""The one place that turns a mask into its box, area, RLE and polygons."""

from __future__ import annotations

import numpy as np

from imgsynth.core.boxes import Box


def tight_bbox(mask: np.ndarray) -> Box | None:
    """Tight xyxy box (exclusive right/bottom edges) of a bool mask; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def mask_area(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO uncompressed RLE counts: column-major runs, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat[0]:
        runs = [0] + runs
    return runs


def rle_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE: {'size': [h, w], 'counts': str} (same bytes as pycocotools)."""
    h, w = mask.shape[:2]
    return {"size": [int(h), int(w)], "counts": _counts_to_string(rle_counts(mask))}


def rle_decode(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        counts = _string_to_counts(counts.decode() if isinstance(counts, bytes) else counts)
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    if flat.size != h * w:
        raise ValueError(f"RLE counts cover {flat.size} pixels, expected {h}x{w}")
    return flat.reshape((w, h)).T.copy()


def _counts_to_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _string_to_counts(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def mask_polygons(mask: np.ndarray, min_points: int = 3) -> list[np.ndarray]:
    """Outer contours of a mask as (K, 2) float arrays of pixel-corner coordinates."""
    import cv2

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64)
        if len(pts) >= min_points:
            polys.append(pts + 0.5)  # pixel centers -> polygon through pixel centers
    return polys


def polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize polygons (absolute pixel coordinates) into a bool mask."""
    import cv2

    canvas = np.zeros((height, width), dtype=np.uint8)
    pts = [np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2) - 0.5).astype(np.int32)
           for p in polygons if len(p) >= 3]
    if pts:
        cv2.fillPoly(canvas, pts, 1)
    return canvas.astype(bool)
