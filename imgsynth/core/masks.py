"""The one place that turns a mask into its box, area, RLE and polygons, and a cutout's
alpha into the mask its labels are read from (its silhouette)."""

from __future__ import annotations

import numpy as np

from imgsynth.core.boxes import Box

# Where an alpha channel counts as the object: the pixels its labels cover. Compositing and
# scene text paste the same rule, so a label never depends on a blend mode, blur or opacity.
ALPHA_THRESHOLD = 128


def silhouette(alpha: np.ndarray) -> np.ndarray:
    """The bool mask of a cutout or drawn word: alpha >= ALPHA_THRESHOLD (taken after its
    geometric transform, before any blur, feather or opacity)."""
    return alpha >= ALPHA_THRESHOLD


def tight_bbox(mask: np.ndarray) -> Box | None:
    """Tight xyxy box (exclusive right/bottom edges) of a bool mask; None if empty."""
    flat = _bytes(mask)
    if flat is not None:  # OpenCV's scan of nonzero bytes: ~1.7x numpy's two any() passes
        import cv2

        x, y, w, h = cv2.boundingRect(flat)
        return None if w == 0 else (float(x), float(y), float(x + w), float(y + h))
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def mask_area(mask: np.ndarray) -> int:
    flat = _bytes(mask)
    if flat is not None:
        import cv2

        return int(cv2.countNonZero(flat))
    return int(np.count_nonzero(mask))


def _bytes(mask: np.ndarray) -> np.ndarray | None:
    """A 2-D bool or uint8 mask as uint8 (a view), for OpenCV's scans; None for others."""
    if mask.ndim != 2 or 0 in mask.shape:
        return None
    if mask.dtype == bool:
        return mask.view(np.uint8)
    return mask if mask.dtype == np.uint8 else None


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


def rle_runs(rle) -> tuple[int, int, np.ndarray]:
    """(height, width, run lengths as int64) of a COCO RLE, uncompressed or compressed.

    Checked before anything the size of the mask is allocated: 'size' is two whole numbers,
    'counts' a list of whole numbers or a compressed string, no run is negative and the
    runs cover exactly height x width pixels. Raises ValueError saying what is wrong (a
    reader adds the file and the annotation)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE is a dict with 'size' [height, width] and 'counts'")
    size = rle["size"]
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(_whole(v) and v >= 0 for v in size)):
        raise ValueError(f"RLE 'size' must be [height, width], two whole numbers >= 0; got {_short(size)}")
    height, width = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("latin-1")
    if isinstance(counts, str):
        runs = _string_to_counts(counts)
    elif isinstance(counts, list):
        if not all(map(_whole, counts)):
            raise ValueError("RLE 'counts' must be whole numbers (run lengths)")
        runs = counts
    else:
        raise ValueError("RLE 'counts' must be a list of run lengths or a compressed string; "
                         f"got {type(counts).__name__}")
    if runs and min(runs) < 0:
        k = next(k for k, run in enumerate(runs) if run < 0)
        raise ValueError(f"RLE run {k} is negative ({runs[k]})")
    total = sum(runs)  # Python integers: no overflow, whatever the file says
    if total != height * width:
        raise ValueError(f"RLE counts cover {total:,} pixels but its size [{height}, {width}] "
                         f"holds {height * width:,}")
    return height, width, np.asarray(runs, dtype=np.int64)


def rle_decode(rle: dict) -> np.ndarray:
    """The HxW bool mask of a COCO RLE (checked first by rle_runs)."""
    h, w, runs = rle_runs(rle)
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()


def rle_sample(rle: dict, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The mask of a COCO RLE at the given rows x columns only, (len(rows), len(cols)) bool,
    without decoding the whole mask (a preview of a huge image)."""
    h, _, runs = rle_runs(rle)
    ends = np.cumsum(runs)
    pixel = np.asarray(cols, np.int64)[None, :] * h + np.asarray(rows, np.int64)[:, None]  # column-major
    return np.searchsorted(ends, pixel, side="right") % 2 == 1  # odd runs are the object


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    """pycocotools' compressed counts: 5 bits per character from '0' (48), the 6th bit
    says another character follows; from the third run on, each is stored as a difference."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            if p == len(s):
                raise ValueError("the compressed RLE string is truncated (it ends inside a run)")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"not a COCO compressed RLE string: character {s[p]!r} at {p}")
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
