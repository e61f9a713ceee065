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


def mask_outlines(mask: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """(outer outlines, whether the mask has holes): (K, 2) float outlines along pixel edges
    (integer corner coordinates, the convention of COCO polygons), so a rasterizer that takes
    the pixels whose centers are inside (pycocotools) gives back exactly the mask's pixels,
    one-pixel parts and lines included. A hole is not in any outline: the caller decides.

    The mask is traced at twice its size, where a boundary pixel's center lies a quarter pixel
    inside the edge; rounding to the nearest corner puts each point on the edge itself."""
    import cv2

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    x, y, w, h = cv2.boundingRect(m) if m.ndim == 2 and m.size else (0, 0, 0, 0)
    if w == 0:
        return [], False
    # only the mask's window (a pixel of margin), doubled by an exact nearest resize
    window = cv2.copyMakeBorder(m[y:y + h, x:x + w], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    twice = cv2.resize(window, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(twice, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return [], False
    parents = hierarchy[0][:, 3]
    outlines = []
    for contour, parent in zip(contours, parents):
        if parent >= 0:  # a hole of the outline `parent`
            continue
        pts = np.floor((contour.reshape(-1, 2) + 0.5) / 2 + 0.5) + (x - 1, y - 1)
        pts = pts[np.r_[True, (pts[1:] != pts[:-1]).any(axis=1)]]  # corners met twice
        if len(pts) > 1 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        outlines.append(pts)
    return outlines, bool((parents >= 0).any())


# A vertex this close to a pixel center is taken as on it: label files round coordinates
# (YOLO: 6 decimals of the image size), and an outline through pixel centers must keep them.
CENTER_SNAP = 0.01


def polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize polygons (absolute pixel coordinates, pixel i spanning i..i+1 as in COCO) into
    a bool mask: a pixel is in when its center is inside a polygon or on its outline (even-odd
    within one polygon, the union over polygons, as pycocotools decodes a COCO polygon list).
    An outline along pixel edges (`mask_outlines`) and one through the centers of the
    boundary pixels (`mask_polygons`) both give back exactly their mask."""
    canvas = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(pts) >= 3 and height and width:
            _fill_polygon(canvas, _snap_to_centers(pts))
    return canvas


def _fill_polygon(canvas: np.ndarray, pts: np.ndarray) -> None:
    """One polygon ORed into the canvas, rasterized over its bounding window only (the
    window's corner is whole pixels away, so the shifted coordinates are exact)."""
    height, width = canvas.shape
    c0 = max(int(np.ceil(pts[:, 0].min() - 0.5)), 0)
    c1 = min(int(np.floor(pts[:, 0].max() - 0.5)), width - 1)
    r0 = max(int(np.ceil(pts[:, 1].min() - 0.5)), 0)
    r1 = min(int(np.floor(pts[:, 1].max() - 0.5)), height - 1)
    if c0 > c1 or r0 > r1:
        return
    canvas[r0:r1 + 1, c0:c1 + 1] |= _polygon_mask(pts - (c0, r0), r1 - r0 + 1, c1 - c0 + 1)


def _snap_to_centers(pts: np.ndarray) -> np.ndarray:
    centers = np.floor(pts) + 0.5
    return np.where(np.abs(pts - centers) < CENTER_SNAP, centers, pts)


def _polygon_mask(pts: np.ndarray, height: int, width: int) -> np.ndarray:
    """One polygon by scanlines through the pixel-center rows. A center on the outline counts:
    crossings are taken once with each half-open rule (an edge owning its top end, then its
    bottom end) and the spans united, and centers on horizontal edges are added."""
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    diff = np.zeros((height, width + 1), dtype=np.int32)
    sloped = y0 != y1
    if sloped.any():
        ex0, ey0, ex1, ey1 = x0[sloped], y0[sloped], x1[sloped], y1[sloped]
        lo, hi = np.minimum(ey0, ey1), np.maximum(ey0, ey1)
        first = max(int(np.ceil(lo.min() - 0.5)), 0)
        last = min(int(np.floor(hi.max() - 0.5)), height - 1)
        if first <= last:
            yc = np.arange(first, last + 1) + 0.5
            # multiplied before divided: exact where a center lies on an edge between whole-
            # or half-pixel vertices (the quotient is then a representable half-integer)
            x_at = ex0[:, None] + (yc - ey0[:, None]) * (ex1 - ex0)[:, None] / (ey1 - ey0)[:, None]
            for crosses in ((lo[:, None] <= yc) & (yc < hi[:, None]),
                            (lo[:, None] < yc) & (yc <= hi[:, None])):
                xs = np.sort(np.where(crosses, x_at, np.inf), axis=0)
                _add_spans(diff, first, xs[0:len(xs) - 1:2], xs[1::2], width)
    for k in np.flatnonzero(~sloped):  # centers on a horizontal edge
        row = y0[k] - 0.5
        if row.is_integer() and 0 <= row < height:
            a, b = sorted((x0[k], x1[k]))
            _add_spans(diff, int(row), np.array([[a]]), np.array([[b]]), width)
    return np.cumsum(diff, axis=1)[:, :width] > 0  # the contiguous sum: 20x faster


def _add_spans(diff: np.ndarray, first_row: int, starts: np.ndarray, ends: np.ndarray,
               width: int) -> None:
    """Count +1 over the pixels whose centers lie in [start, end] of each row's span
    (arrays (n_spans, n_rows); inf where a row has no such span)."""
    ok = np.isfinite(ends)
    lo = np.clip(np.ceil(np.where(ok, starts, 0) - 0.5), 0, width).astype(np.int64)
    hi = np.clip(np.floor(np.where(ok, ends, -1) - 0.5) + 1, 0, width).astype(np.int64)
    ok &= hi > lo
    span, row = np.nonzero(ok)
    np.add.at(diff, (row + first_row, lo[span, row]), 1)
    np.add.at(diff, (row + first_row, hi[span, row]), -1)
