"""Multi-image transforms: a sample combined with other samples of its data set.

Mosaic (2x2), MixUp, CutMix and online copy-paste, as detection trainers use them
(ultralytics builds them in; albumentations and torchvision v2 users write them by hand).
The other images come from a `SamplePool`: in `imgsynth run` the dataset source (its
images as they are on disk, imgsynth.io.source.DatasetImages), in a DataLoader the wrapped
dataset (AugmentedDataset) or the samples a shard reader streamed last (ShardDataset).
Which of them, and every other parameter, is drawn from the sample's Generator, so results
are deterministic per (seed, epoch, index) like every other transform.

Labels stay exact: each image's masks, boxes, polygons and keypoints are moved with it
and clipped to the region of the result it keeps (boxes of box-only objects to the exact
visible rectangle, masks pixel by pixel). Class labels of whole images become weights in
`meta["label_weights"]` ({class: share}, by mixing weight or by kept area), which the
torch layer turns into soft labels and `imgsynth run` records in the manifest.

The other images enter as they are (before the transforms listed before this one);
transforms listed after it see the combined image.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import ClassVar, Protocol

import cv2
import numpy as np

from imgsynth.augment import functional as F
from imgsynth.augment.transforms import OWN_TRANSFORMS, probability, register, value_range
from imgsynth.core.boxes import clip_xyxy
from imgsynth.core.masks import mask_polygons, polygons_to_mask, tight_bbox
from imgsynth.core.sample import Instance, Sample


class SamplePool(Protocol):
    """Other samples of the data set, by position (0 .. len - 1), as they are stored."""

    def __len__(self) -> int: ...

    def sample(self, index: int) -> Sample: ...


class MultiImageTransform:
    """Applied with probability p (the first draw, as every transform); draws the other
    samples' positions from the same Generator."""

    name: ClassVar[str]
    mixes_labels: ClassVar[bool] = True  # whole-image classes become weights

    def __init__(self, p: float):
        self.p = probability(p)

    def __call__(self, sample: Sample, rng: np.random.Generator, pool: SamplePool | None) -> Sample:
        if rng.random() >= self.p:
            return sample
        if pool is None or len(pool) == 0:
            raise ValueError(f"{self.name} combines a sample with other images of its data set, and "
                             "none were given: in `imgsynth run` use source type 'dataset'; in a "
                             "DataLoader use AugmentedDataset or ShardDataset (or RecipeTransform(pool=...))")
        return self.apply(sample, rng, pool)

    def apply(self, sample: Sample, rng: np.random.Generator, pool: SamplePool) -> Sample:
        raise NotImplementedError

    def others(self, sample: Sample, rng: np.random.Generator, pool: SamplePool, count: int) -> list[Sample]:
        """`count` samples drawn from the pool (with replacement), in the sample's channels and dtype."""
        picks = rng.integers(0, len(pool), size=count).tolist()
        return [_like(pool.sample(int(i)), sample.image) for i in picks]


def _like(other: Sample, image: np.ndarray) -> Sample:
    """`other` with its image in the channel count and dtype of `image`."""
    pixels = other.image if other.image.ndim == 3 else other.image[:, :, None]
    channels = image.shape[2]
    if pixels.shape[2] != channels:
        if channels == 1:
            pixels = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_RGB2GRAY)[:, :, None]
        else:
            pixels = np.repeat(pixels[:, :, :1], channels, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :channels]
    if pixels.dtype != image.dtype:
        pixels = (pixels.astype(np.float32) / 255.0) if image.dtype == np.float32 else \
            np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    return replace(other, image=np.ascontiguousarray(pixels))


# ---------------------------------------------------------------------------
# Placing an image with its labels into a region
# ---------------------------------------------------------------------------

def placed(sample: Sample, scale_x: float, scale_y: float, left: float, top: float,
           height: int, width: int, fill: float) -> tuple[np.ndarray, list[Instance]]:
    """The sample scaled by (scale_x, scale_y) with its top-left corner at (left, top) of a
    height x width frame: its pixels (one warp, `fill` elsewhere) and its instances clipped
    to the frame exactly (those left with nothing are dropped)."""
    from imgsynth.augment.stage import instances_to_targets, targets_to_instances

    # continuous x' = s x + left  <=>  index x' = s x + (s - 1) / 2 + left
    matrix = np.array([[scale_x, 0.0, (scale_x - 1) / 2 + left], [0.0, scale_y, (scale_y - 1) / 2 + top],
                       [0.0, 0.0, 1.0]])
    image = F.warp_image(sample.image, matrix, height, width, interpolation=cv2.INTER_LINEAR,
                         border_mode=cv2.BORDER_CONSTANT, fill=fill)
    instances = [inst for inst in sample.instances if inst.mask is None or inst.mask.any()]
    targets, layouts = instances_to_targets(sample.image, instances, "largest_box")
    moved = replace(targets, image=image, masks=F.warp_masks(targets.masks, matrix, height, width),
                    points=F.warp_points(targets.points, matrix))
    return image, targets_to_instances(moved, instances, layouts, min_area=0.0, min_visibility=0.0)


def shifted(instances: list[Instance], dx: int, dy: int, height: int, width: int) -> list[Instance]:
    """Instances of a region moved to (dx, dy) of a height x width image."""
    out = []
    for inst in instances:
        mask = None
        if inst.mask is not None:
            mask = np.zeros((height, width), dtype=bool)
            h, w = inst.mask.shape
            mask[dy:dy + h, dx:dx + w] = inst.mask
        x1, y1, x2, y2 = inst.bbox_xyxy
        keypoints = None
        if inst.keypoints is not None:
            keypoints = np.array(inst.keypoints, dtype=np.float64, copy=True)
            keypoints[:, 0] += dx
            keypoints[:, 1] += dy
        out.append(replace(inst, bbox_xyxy=(x1 + dx, y1 + dy, x2 + dx, y2 + dy), mask=mask,
                           polygons=None if inst.polygons is None else [p + (dx, dy) for p in inst.polygons],
                           keypoints=keypoints))
    return out


def uncovered(instances: list[Instance], covered: np.ndarray) -> tuple[list[Instance], int]:
    """Instances with the pixels of `covered` (a bool mask) taken away: masks lose them,
    box-only objects keep the tight box of their visible rectangle part, polygons are traced
    again around what is left, keypoints there become invisible; those left with nothing
    are dropped (their count returned)."""
    height, width = covered.shape
    kept, dropped = [], 0
    for inst in instances:
        if inst.mask is not None:
            region = inst.mask
        elif inst.polygons:
            region = polygons_to_mask(inst.polygons, height, width)
        else:
            region = np.zeros((height, width), dtype=bool)
            x1, y1, x2, y2 = (int(round(v)) for v in clip_xyxy(inst.bbox_xyxy, width, height))
            region[y1:y2, x1:x2] = True
        before = int(np.count_nonzero(region))
        visible = region & ~covered
        after = int(np.count_nonzero(visible))
        if after == before:
            kept.append(inst)
            continue
        if after == 0:
            dropped += 1
            continue
        box = tight_bbox(visible)
        keypoints = inst.keypoints
        if keypoints is not None and keypoints.shape[1] > 2:
            keypoints = np.array(keypoints, dtype=np.float64, copy=True)
            cols = np.clip(keypoints[:, 0].astype(int), 0, width - 1)
            rows = np.clip(keypoints[:, 1].astype(int), 0, height - 1)
            keypoints[covered[rows, cols], 2] = 0
        kept.append(replace(
            inst, bbox_xyxy=box, mask=visible if inst.mask is not None else None,
            polygons=mask_polygons(visible) if inst.polygons else inst.polygons, keypoints=keypoints,
            occluded=1.0 - (1.0 - inst.occluded) * after / before,
            visible_fraction=inst.visible_fraction * after / before))
    return kept, dropped


def label_weights(parts: list[tuple[Sample, float]]) -> dict[str, float] | None:
    """{class: share} of the whole-image classes of the parts (sample, share); None when
    none of them has one. Shares of one class add up."""
    weights: dict[str, float] = {}
    for sample, share in parts:
        previous = sample.meta.get("label_weights") or ({sample.label: 1.0} if sample.label is not None else {})
        for label, w in previous.items():
            weights[label] = weights.get(label, 0.0) + w * share
    if not weights:
        return None
    total = sum(weights.values())
    return {label: w / total for label, w in sorted(weights.items())}


def combined(sample: Sample, image: np.ndarray, instances: list[Instance], parts: list[tuple[Sample, float]],
             record: dict, dropped: int = 0) -> Sample:
    """The result: the sample's provenance plus the others' files, the label weights and a
    record of what was combined in meta."""
    meta = dict(sample.meta)
    weights = label_weights(parts)
    label = sample.label
    if weights is not None:
        meta["label_weights"] = {k: round(v, 6) for k, v in weights.items()}
        label = max(weights, key=weights.get)
    meta.update(record)
    if dropped:
        meta["augment_dropped_instances"] = meta.get("augment_dropped_instances", 0) + dropped
    files = list(sample.source_files)
    for other, _ in parts[1:]:
        files += [f for f in other.source_files if f not in files]
    return replace(sample, image=image, instances=instances, label=label, meta=meta, source_files=files)


def _fill(fill: float, image: np.ndarray) -> float:
    return fill / 255.0 if image.dtype != np.uint8 else fill


# ---------------------------------------------------------------------------
# The transforms
# ---------------------------------------------------------------------------

@register
class Mosaic(MultiImageTransform):
    """2x2 mosaic: the sample and three others around a random centre, each scaled to fit
    the output (aspect kept) with its inner corner at the centre and cut at the quadrant's
    edges; `fill` where no image reaches. Labels are clipped to each quadrant exactly."""

    name = "imgsynth.Mosaic"

    def __init__(self, size: list[int] | None = None, center: float | list[float] = (0.25, 0.75),
                 fill: float = 114, p: float = 1.0):
        super().__init__(p)
        if size is not None and (len(size) != 2 or min(size) < 2):
            raise ValueError(f"size must be [height, width] of at least 2 pixels, got {size!r}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.center = value_range(center, "center", 0.0, 1.0)
        self.fill = float(fill)

    def apply(self, sample, rng, pool):
        height, width = self.size or sample.image.shape[:2]
        tiles = [sample, *self.others(sample, rng, pool, 3)]
        cx = int(round(rng.uniform(*self.center) * width))
        cy = int(round(rng.uniform(*self.center) * height))
        fill = _fill(self.fill, sample.image)
        canvas = np.full((height, width, sample.image.shape[2]), fill, dtype=sample.image.dtype)
        instances, parts = [], []
        # (quadrant left, top, right, bottom), and whether the tile ends at the centre in x / y
        quadrants = [((0, 0, cx, cy), True, True), ((cx, 0, width, cy), False, True),
                     ((0, cy, cx, height), True, False), ((cx, cy, width, height), False, False)]
        for tile, ((x0, y0, x1, y1), left_of, above) in zip(tiles, quadrants):
            th, tw = tile.image.shape[:2]
            scale = min(height / th, width / tw)
            left = (cx - tw * scale if left_of else cx) - x0
            top = (cy - th * scale if above else cy) - y0
            parts.append((tile, max(0, x1 - x0) * max(0, y1 - y0) / (height * width)))
            if x1 <= x0 or y1 <= y0:
                continue
            region, kept = placed(tile, scale, scale, left, top, y1 - y0, x1 - x0, fill)
            canvas[y0:y1, x0:x1] = region
            instances += shifted(kept, x0, y0, height, width)
        return combined(sample, canvas, instances, parts, {"mosaic": {"center": [cx, cy]}})


def _resized_to(other: Sample, height: int, width: int, fill: float) -> tuple[np.ndarray, list[Instance]]:
    th, tw = other.image.shape[:2]
    return placed(other, width / tw, height / th, 0.0, 0.0, height, width, fill)


@register
class MixUp(MultiImageTransform):
    """The sample blended with another (resized to its size): lambda * a + (1 - lambda) * b,
    lambda ~ Beta(alpha, alpha). Both images' objects are kept; whole-image classes get
    weights lambda and 1 - lambda."""

    name = "imgsynth.MixUp"

    def __init__(self, alpha: float = 32.0, p: float = 1.0):
        super().__init__(p)
        self.alpha = value_range(alpha, "alpha", 1e-3, 1e4)[0]

    def apply(self, sample, rng, pool):
        other = self.others(sample, rng, pool, 1)[0]
        lam = float(rng.beta(self.alpha, self.alpha))
        height, width = sample.image.shape[:2]
        image_b, instances_b = _resized_to(other, height, width, 0.0)
        image = cv2.addWeighted(sample.image, lam, image_b, 1.0 - lam, 0.0).reshape(sample.image.shape)
        return combined(sample, image, list(sample.instances) + instances_b, [(sample, lam), (other, 1.0 - lam)],
                        {"mixup": {"lambda": round(lam, 6)}})


@register
class CutMix(MultiImageTransform):
    """A rectangle of another image (resized to the sample's size) pasted into the sample:
    its area is 1 - lambda of the image, lambda ~ Beta(alpha, alpha), its centre uniform.
    The sample's objects lose the rectangle (masks pixel by pixel, boxes to their visible
    part); the other image's objects are clipped to it; class weights follow the areas."""

    name = "imgsynth.CutMix"

    def __init__(self, alpha: float = 1.0, p: float = 1.0):
        super().__init__(p)
        self.alpha = value_range(alpha, "alpha", 1e-3, 1e4)[0]

    def apply(self, sample, rng, pool):
        other = self.others(sample, rng, pool, 1)[0]
        lam = float(rng.beta(self.alpha, self.alpha))
        height, width = sample.image.shape[:2]
        cut = math.sqrt(1.0 - lam)
        cw, ch = int(width * cut), int(height * cut)
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        x0, x1 = max(0, cx - cw // 2), min(width, cx + cw - cw // 2)
        y0, y1 = max(0, cy - ch // 2), min(height, cy + ch - ch // 2)
        share = (x1 - x0) * (y1 - y0) / (height * width)
        image = sample.image.copy()
        instances, dropped = list(sample.instances), 0
        if x1 > x0 and y1 > y0:
            th, tw = other.image.shape[:2]
            sx, sy = width / tw, height / th
            region, kept = placed(other, sx, sy, -x0, -y0, y1 - y0, x1 - x0, 0.0)
            image[y0:y1, x0:x1] = region
            covered = np.zeros((height, width), dtype=bool)
            covered[y0:y1, x0:x1] = True
            instances, dropped = uncovered(instances, covered)
            instances += shifted(kept, x0, y0, height, width)
        return combined(sample, image, instances, [(sample, 1.0 - share), (other, share)],
                        {"cutmix": {"box_xyxy": [x0, y0, x1, y1]}}, dropped)


@register
class CopyPaste(MultiImageTransform):
    """Objects with masks of another image (resized to the sample's size) pasted onto the
    sample where they are: up to `max_objects` of them, chosen at random. The sample's
    objects lose the pixels the pasted ones cover (dropped when nothing is left)."""

    name = "imgsynth.CopyPaste"
    mixes_labels = False

    def __init__(self, max_objects: int = 4, p: float = 1.0):
        super().__init__(p)
        if not isinstance(max_objects, int) or max_objects < 1:
            raise ValueError(f"max_objects must be a whole number >= 1, got {max_objects!r}")
        self.max_objects = max_objects

    def apply(self, sample, rng, pool):
        other = self.others(sample, rng, pool, 1)[0]
        height, width = sample.image.shape[:2]
        image_b, instances_b = _resized_to(other, height, width, 0.0)
        candidates = [inst for inst in instances_b if inst.mask is not None and inst.mask.any()]
        count = int(rng.integers(1, self.max_objects + 1))
        chosen = sorted(rng.choice(len(candidates), size=min(count, len(candidates)), replace=False).tolist()) \
            if candidates else []
        pasted = [replace(candidates[i], attributes={**candidates[i].attributes, "copy_paste": "pasted"})
                  for i in chosen]
        image = sample.image.copy()
        covered = np.zeros((height, width), dtype=bool)
        kept = []
        for inst in reversed(pasted):  # later objects on top: each loses what those above cover
            if covered.any():
                inst = next(iter(uncovered([inst], covered)[0]), None)
            if inst is not None:
                image[inst.mask] = image_b[inst.mask]
                covered |= inst.mask
                kept.append(inst)
        pasted = kept[::-1]
        instances, dropped = uncovered(list(sample.instances), covered) if pasted else (list(sample.instances), 0)
        return combined(sample, image, instances + pasted, [(sample, 1.0)],
                        {"copy_paste": {"pasted": len(pasted)}}, dropped)


MULTI_IMAGE = {name for name, cls in OWN_TRANSFORMS.items() if issubclass(cls, MultiImageTransform)}

