"""The `augment` stage: a Sample through a transform pipeline, labels kept right.

The transform list runs as compiled chains (imgsynth.augment.compiler; `fuse: false`: the
unfused pipeline) with multi-image transforms (imgsynth.augment.multi) between them, which
draw other samples from the stage's `pool`.

Instance labels travel as `Targets`: masks as an (N, H, W) stack, polygons,
keypoints and boxes as points. After the pipeline each instance gets its box
back from the most exact thing it has: the tight box of its transformed mask,
else of its clipped polygons, else of its transformed box points (corners:
'largest_box', inscribed ellipse: 'ellipse'). Instances that left the image or
fall under min_area / min_visibility are dropped; clipped ones are marked
truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from imgsynth.augment import functional as F
from imgsynth.augment.pipeline import build_steps, make_transform, run_steps
from imgsynth.augment.transforms import Targets
from imgsynth.core.boxes import box_area, clip_xyxy, is_empty, points_bbox
from imgsynth.core.masks import mask_area, mask_polygons, polygons_to_mask, tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.errors import RecipeError
from imgsynth.core.stage import BuildContext, SkipSample


_NO_POINTS = np.zeros((0, 2), dtype=np.float64)
_NO_POINTS.flags.writeable = False


@dataclass
class InstanceLayout:
    """Where one instance's labels sit inside Targets."""

    mask_row: int | None
    box_points: slice
    mask_box: tuple[float, float, float, float] | None = None  # tight box of the mask before
    polygons: list[slice] = field(default_factory=list)
    keypoints: slice | None = None
    helper_mask: bool = False  # a box-only/polygon instance carried as a mask (nonlinear warps)


class AugmentStage:
    """The stage an AugmentConfig builds. `ctx` is optional: the stage needs nothing of the
    run, and the torch layer builds it outside one (and sets `pool` for multi-image
    transforms itself)."""

    def __init__(self, config, ctx: BuildContext | None = None):
        from imgsynth.augment.multi import MULTI_IMAGE

        self.config = config
        # Runs of transforms that work on one image (steps), and multi-image transforms
        # (imgsynth.augment.multi) between them; always ending with steps, which apply
        # min_area / min_visibility.
        self.parts: list = []
        run: list = []
        for t in config.transforms:
            if t.name in MULTI_IMAGE:
                if run:
                    self.parts.append(build_steps(run, fuse=config.fuse))
                    run = []
                self.parts.append(make_transform(t.name, t.params))
            else:
                run.append((t.name, t.params))
        self.parts.append(build_steps(run, fuse=config.fuse))
        self.steps = [step for part in self.parts if isinstance(part, list) for step in part]
        self.multi_image = [t.name for t in config.transforms if t.name in MULTI_IMAGE]
        self.pool = getattr(ctx, "samples", None)
        if ctx is not None and self.multi_image and self.pool is None:
            raise RecipeError(f"{self.multi_image[0]} combines each sample with other images of its data "
                              "set, which this recipe's source does not offer", key="stages",
                              fix="use it after a source of type 'dataset', or in a DataLoader "
                              "(imgsynth.torch AugmentedDataset / ShardDataset)")

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.passthrough:
            return sample
        had = len(sample.instances)
        for k, part in enumerate(self.parts):
            if isinstance(part, list):
                sample = self._transform(sample, part, rng, final=k == len(self.parts) - 1)
            else:
                sample = part(sample, rng, self.pool)
        if self.config.skip_empty and had and not sample.instances:
            raise SkipSample("augment_no_instances_left",
                             f"all {had} instances left the image or fell under min_area/min_visibility")
        return sample

    def _transform(self, sample: Sample, steps: list, rng: np.random.Generator, final: bool) -> Sample:
        """The steps on the sample's image and labels; min_area / min_visibility apply to
        the last steps of the list (before a multi-image transform only empties go)."""
        if not sample.instances:  # the image alone (classification, OCR lines)
            h, w = sample.image.shape[:2]
            targets = run_steps(steps, Targets(sample.image, np.zeros((0, h, w), np.uint8), _NO_POINTS), rng)
            return replace(sample, image=targets.image)
        instances = [inst for inst in sample.instances if _has_extent(inst)]
        helpers = [False] * len(instances)
        # Nonlinear warps (elastic, grid, optical, piecewise affine, thin-plate spline) bend
        # edges, so a box's corners or a polygon's vertices no longer bound the object.
        if any(getattr(step, "warps_nonlinearly", False) for step in steps):
            instances, helpers = _with_helper_masks(instances, *sample.image.shape[:2])
        targets, layouts = instances_to_targets(sample.image, instances, self.config.box_method)
        for layout, helper in zip(layouts, helpers, strict=True):
            layout.helper_mask = helper
        targets = run_steps(steps, targets, rng)
        kept = targets_to_instances(targets, instances, layouts,
                                    min_area=self.config.min_area if final else 0.0,
                                    min_visibility=self.config.min_visibility if final else 0.0,
                                    flip_pairs=self.config.keypoint_flip_pairs)
        dropped = len(sample.instances) - len(kept)
        meta = sample.meta
        if dropped:
            meta = dict(meta)
            meta["augment_dropped_instances"] = meta.get("augment_dropped_instances", 0) + dropped
        return replace(sample, image=targets.image, instances=kept, meta=meta)


def _with_helper_masks(instances: list[Instance], height: int,
                       width: int) -> tuple[list[Instance], list[bool]]:
    """Instances without a mask get one (their polygons, else the pixels their box covers,
    at least one), which the warp moves exactly with the image: their box and polygons are
    then taken from it instead of from moved corners and vertices."""
    out, helpers = [], []
    for inst in instances:
        if inst.mask is not None:
            out.append(inst)
            helpers.append(False)
            continue
        if inst.polygons:
            mask = polygons_to_mask(inst.polygons, height, width)
        else:
            mask = np.zeros((height, width), dtype=bool)
            x1, y1, x2, y2 = clip_xyxy(inst.bbox_xyxy, width, height)
            c1, r1 = min(round(x1), width - 1), min(round(y1), height - 1)
            mask[r1:max(r1 + 1, round(y2)), c1:max(c1 + 1, round(x2))] = True
        out.append(replace(inst, mask=mask))
        helpers.append(True)
    return out, helpers


def _has_extent(inst: Instance) -> bool:
    """An instance with no pixels and an empty box cannot be transformed; it is dropped
    (and counted in meta) rather than written with a made-up box."""
    if inst.mask is not None:
        return bool(inst.mask.any())
    return not is_empty(inst.bbox_xyxy)


def instances_to_targets(image: np.ndarray, instances: list[Instance],
                         box_method: str) -> tuple[Targets, list[InstanceLayout]]:
    masks, points, layouts = [], [], []
    count = 0

    def add(pts: np.ndarray) -> slice:
        nonlocal count
        points.append(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
        count += len(points[-1])
        return slice(count - len(points[-1]), count)

    for inst in instances:
        mask_row = None
        if inst.mask is not None:
            mask_row = len(masks)
            # bool -> 0/1 bytes without a copy (np.stack copies once)
            masks.append(inst.mask.view(np.uint8) if inst.mask.dtype == bool else inst.mask.astype(np.uint8))
            box = tight_bbox(inst.mask)
        else:
            box = inst.bbox_xyxy
        if box_method == "ellipse" and inst.mask is None and not inst.polygons:
            box_points = add(F.box_ellipse_points(box))
        else:
            box_points = add(F.box_corner_points(box))
        layout = InstanceLayout(mask_row, box_points, box if mask_row is not None else None)
        layout.polygons = [add(p) for p in inst.polygons or []]
        if inst.keypoints is not None:
            layout.keypoints = add(np.asarray(inst.keypoints)[:, :2])
        layouts.append(layout)
    h, w = image.shape[:2]
    targets = Targets(
        image=image,
        masks=np.stack(masks) if masks else np.zeros((0, h, w), dtype=np.uint8),
        points=np.concatenate(points) if points else np.zeros((0, 2), dtype=np.float64),
        box_points=tuple(layout.box_points for layout in layouts))
    return targets, layouts


def targets_to_instances(targets: Targets, instances: list[Instance], layouts: list[InstanceLayout],
                         *, min_area: float, min_visibility: float,
                         flip_pairs: list[tuple[int, int]] = ()) -> list[Instance]:
    h, w = targets.height, targets.width
    kept = []
    for inst, layout in zip(instances, layouts, strict=True):
        box_points = targets.points[layout.box_points]
        moved = points_bbox(box_points)
        clipped = clip_xyxy(moved, w, h)
        polygons = None
        if layout.polygons:
            moved_polygons = [targets.points[s] for s in layout.polygons]
            polygons = [p for p in (F.clip_polygon(q, w, h) for q in moved_polygons)
                        if len(p) >= 3 and F.polygon_area(p) > 0]
        if layout.mask_row is not None:
            mask = _as_bool(targets.masks[layout.mask_row])
            box = tight_bbox(mask)
            visibility = _mask_visibility(inst.mask, mask, F.box_corner_points(layout.mask_box),
                                          box_points)
            truncated = _touches_border(mask)
            if layout.helper_mask:
                polygons = mask_polygons(mask) if inst.polygons is not None else None
                mask = None
        elif polygons is not None:
            mask = None
            box = points_bbox(np.concatenate(polygons)) if polygons else None
            before = sum(F.polygon_area(q) for q in moved_polygons)
            visibility = sum(F.polygon_area(q) for q in polygons) / before if before > 0 else 0.0
            truncated = visibility < 1.0 - 1e-9
        else:
            mask = None
            box = None if is_empty(clipped) else clipped
            visibility = box_area(clipped) / box_area(moved) if box_area(moved) > 0 else 0.0
            truncated = visibility < 1.0 - 1e-9
        if box is None or is_empty(box) or box_area(box) < min_area or visibility < min_visibility:
            continue
        kept.append(replace(
            inst, bbox_xyxy=tuple(float(v) for v in box), mask=mask,
            polygons=polygons if inst.polygons is not None else None,
            keypoints=_moved_keypoints(inst.keypoints, targets, layout, flip_pairs),
            truncated=inst.truncated or truncated,
            visible_fraction=inst.visible_fraction * min(1.0, visibility)))
    return kept


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """A moved mask as bool: 0/1 bytes (what warps give) are viewed, not copied (a copy per
    object per sample is megabytes of fresh memory at 640x480); other values compared to 0."""
    if mask.dtype == np.uint8 and mask.max() <= 1:
        return mask.view(bool)
    return mask != 0


def _mask_visibility(mask_before: np.ndarray, mask_after: np.ndarray, corners_before: np.ndarray,
                     corners_after: np.ndarray) -> float:
    """Pixels left / pixels expected, where the expected count scales with the area of the
    transformed box corners (exact for affine transforms: the determinant)."""
    scale = F.polygon_area(corners_after) / F.polygon_area(corners_before)
    expected = mask_area(mask_before) * scale
    return min(1.0, mask_area(mask_after) / expected) if expected > 0 else 0.0


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _moved_keypoints(keypoints: np.ndarray | None, targets: Targets, layout: InstanceLayout,
                     flip_pairs: list[tuple[int, int]] = ()) -> np.ndarray | None:
    """Keypoints move with the image; one that left the image keeps its position with
    visibility 0 (COCO: not labeled). When the image was mirrored (the instance's box
    points turned orientation), the rows of each flip pair trade places, so that a
    'left' keypoint is again the one on the object's left."""
    if keypoints is None or layout.keypoints is None:
        return keypoints
    out = np.array(keypoints, dtype=np.float64, copy=True)
    xy = targets.points[layout.keypoints]
    out[:, :2] = xy
    outside = (xy[:, 0] < 0) | (xy[:, 0] > targets.width) | (xy[:, 1] < 0) | (xy[:, 1] > targets.height)
    if out.shape[1] > 2:
        out[outside, 2] = 0
    if flip_pairs and F.signed_area(targets.points[layout.box_points]) < 0:
        for a, b in flip_pairs:
            if max(a, b) >= len(out):
                raise ValueError(f"keypoint_flip_pairs names keypoint {max(a, b)}, but the instance "
                                 f"has {len(out)} keypoints")
            out[[a, b]] = out[[b, a]]
    return out
