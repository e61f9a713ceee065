"""Labels from one instance-id z-buffer kept while pasting.

Every pasted layer (labeled object or distractor) writes its id into `ids` where its
silhouette is, so the last paste wins a pixel. An instance's mask is exactly the
pixels that still hold its id; its box is `tight_bbox(mask)`, its area the pixel
count. Nothing is estimated from the alpha after the fact.

The silhouette of an object is `imgsynth.core.masks.silhouette` of its alpha after the
geometric transform (scale, rotation, flip, aspect) and before any blur or feather,
so a label never depends on the blend mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsynth.core.masks import tight_bbox
from imgsynth.core.sample import Instance


@dataclass
class Layer:
    """One pasted silhouette. `total` counts all its pixels, `inside` those in the image."""

    layer_id: int
    class_name: str | None  # None: a distractor, never labeled
    total: int
    inside: int
    window: tuple[int, int, int, int]  # y0, y1, x0, x1 of its in-image part
    visible: int  # pixels still showing its id, updated by every later paste


@dataclass
class VisibleInstance:
    """What the labels need of one layer after all pastes."""

    layer: Layer
    mask: np.ndarray  # HxW bool, its visible pixels
    bbox_xyxy: tuple[float, float, float, float] | None
    area: int
    visible_fraction: float
    occluded_fraction: float
    truncated_fraction: float


def paste_window(x: int, y: int, h: int, w: int, height: int,
                 width: int) -> tuple[slice, slice, slice, slice] | None:
    """Where a h x w patch with its top-left at (x, y) meets a height x width image.

    Returns (image rows, image cols, patch rows, patch cols), or None when it misses.
    """
    y0, y1, x0, x1 = max(y, 0), min(y + h, height), max(x, 0), min(x + w, width)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def covered_counts(ids: np.ndarray, sil: np.ndarray, x: int, y: int, n_layers: int) -> np.ndarray:
    """Pixels of each layer id (0 = background) that `sil` placed at (x, y) would cover."""
    win = paste_window(x, y, *sil.shape, *ids.shape)
    if win is None:
        return np.zeros(n_layers + 1, np.int64)
    rows, cols, prow, pcol = win
    return np.bincount(ids[rows, cols][sil[prow, pcol]], minlength=n_layers + 1)


class ZBuffer:
    """The id map of one scene and the layers pasted into it (layer k has id k)."""

    def __init__(self, height: int, width: int):
        self.ids = np.zeros((height, width), np.uint16)
        self.layers: list[Layer] = []

    def occlusion_after(self, sil: np.ndarray, x: int, y: int) -> np.ndarray:
        """Occluded fraction of every layer if `sil` were pasted at (x, y) (index k-1: layer k)."""
        n = len(self.layers)
        if n == 0:
            return np.zeros(0)
        covered = covered_counts(self.ids, sil, x, y, n)[1:]
        inside = np.array([layer.inside for layer in self.layers], np.float64)
        visible = np.array([layer.visible for layer in self.layers], np.float64)
        total = np.array([layer.total for layer in self.layers], np.float64)
        return (inside - visible + covered) / total

    def paste(self, sil: np.ndarray, x: int, y: int, class_name: str | None) -> Layer | None:
        """Write a new layer's id where its silhouette is; None when nothing lands in the image."""
        if len(self.layers) >= np.iinfo(self.ids.dtype).max:
            raise ValueError("more than 65535 layers in one scene")
        total = int(np.count_nonzero(sil))
        win = paste_window(x, y, *sil.shape, *self.ids.shape)
        if win is None or total == 0:
            return None
        rows, cols, prow, pcol = win
        part = sil[prow, pcol]
        inside = int(np.count_nonzero(part))
        if inside == 0:
            return None
        # Keep every layer's visible count current, so occlusion checks stay window-sized.
        covered = np.bincount(self.ids[rows, cols][part], minlength=len(self.layers) + 1)
        for old in self.layers:
            old.visible -= int(covered[old.layer_id])
        layer = Layer(len(self.layers) + 1, class_name, total, inside,
                      (rows.start, rows.stop, cols.start, cols.stop), visible=inside)
        self.ids[rows, cols][part] = layer.layer_id
        self.layers.append(layer)
        return layer

    def instances(self) -> list[VisibleInstance]:
        """Visible mask, tight box and fractions of every labeled layer, in paste order."""
        h, w = self.ids.shape
        out = []
        for layer in self.layers:
            if layer.class_name is None:
                continue
            y0, y1, x0, x1 = layer.window
            local = self.ids[y0:y1, x0:x1] == layer.layer_id
            mask = np.zeros((h, w), bool)
            mask[y0:y1, x0:x1] = local
            area = int(np.count_nonzero(local))
            box = tight_bbox(local)
            if box is not None:
                box = (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0)
            out.append(VisibleInstance(
                layer, mask, box, area,
                visible_fraction=area / layer.total,
                occluded_fraction=(layer.inside - area) / layer.total,
                truncated_fraction=(layer.total - layer.inside) / layer.total))
        return out

    def labels(self, *, min_area: int, min_visible_fraction: float,
               attributes: Callable[[VisibleInstance], dict[str, Any]]) -> tuple[list[Instance], int]:
        """The labeled layers showing at least `min_area` pixels and `min_visible_fraction` of
        themselves, as Instances (mask: the visible pixels, box: their tight box), in paste
        order, each with `attributes(visible)`; and how many showed less (left unlabeled)."""
        instances, hidden = [], 0
        for vis in self.instances():
            if vis.area < min_area or vis.visible_fraction < min_visible_fraction:
                hidden += 1
                continue
            instances.append(Instance(
                class_name=vis.layer.class_name, bbox_xyxy=vis.bbox_xyxy, mask=vis.mask,
                truncated=vis.truncated_fraction > 0, occluded=vis.occluded_fraction,
                visible_fraction=vis.visible_fraction, attributes=attributes(vis)))
        return instances, hidden


def uncovered_mask(mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The part of an existing (pre-paste) instance mask that no pasted layer covers."""
    return mask & (ids == 0)
