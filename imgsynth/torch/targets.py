"""Targets between torchvision and imgsynth: a manifest record as a torchvision-style target
(`record_target`), and a target as the Instances a stage moves and back.

Targets are dicts: boxes (N, 4) xyxy absolute, labels (N,) int64, and optionally masks
(N, H, W), keypoints (N, K, 2 or 3), iscrowd and area (see instances_to_target). Boxes given
as tv_tensors.BoundingBoxes in XYWH or CXCYWH come back in their own format with the new
canvas size; masks given as tv_tensors.Mask come back as Masks.
"""

from __future__ import annotations

import numpy as np
import torch

from imgsynth.core.boxes import box_area
from imgsynth.core.sample import Instance

# Target keys holding geometry that imgsynth would not move: refused rather than left stale.
UNMOVED_GEOMETRY = ("bbox", "bboxes", "segmentation", "polygons", "points")


def record_target(record: dict, classes: list[str]) -> dict:
    """A manifest or shard record's objects as a torchvision-style target for
    RecipeTransform: boxes (N, 4) xyxy float32, labels (ids in `classes`), masks (N, H, W)
    uint8 when every object has a mask or polygons, keypoints (N, K, 2 or 3) when every
    object has the same number of them, and class_id (an int) when the image has a class."""
    from imgsynth.core.masks import polygons_to_mask, rle_decode

    objects = record.get("instances") or []
    unknown = sorted({o["class"] for o in objects} - set(classes))
    if unknown:
        raise ValueError(f"class '{unknown[0]}' of sample id {record.get('id')} is not in the "
                         f"class list {classes}")
    h, w = record["height"], record["width"]
    target = {"boxes": torch.tensor([o["bbox_xyxy"] for o in objects], dtype=torch.float32).reshape(-1, 4),
              "labels": torch.tensor([classes.index(o["class"]) for o in objects], dtype=torch.int64)}
    if objects and all(o.get("segmentation") or o.get("polygons") for o in objects):
        target["masks"] = torch.from_numpy(np.stack([
            rle_decode(o["segmentation"]) if o.get("segmentation") else
            polygons_to_mask([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in o["polygons"]], h, w)
            for o in objects]).astype(np.uint8))
    points = [o.get("keypoints") for o in objects]
    if objects and all(p is not None for p in points) and len({len(p) for p in points}) == 1:
        target["keypoints"] = torch.tensor(points, dtype=torch.float32)
    if record.get("label") is not None:  # an image-level class (classification sets)
        if record["label"] not in classes:
            raise ValueError(f"label '{record['label']}' of sample id {record.get('id')} is not in "
                             f"the class list {classes}")
        target["class_id"] = classes.index(record["label"])
    return target


def box_format(boxes) -> str:
    """xyxy, xywh or cxcywh: the format of tv_tensors.BoundingBoxes, xyxy for plain tensors."""
    fmt = getattr(boxes, "format", None)
    name = getattr(fmt, "name", "XYXY").lower()
    if name not in ("xyxy", "xywh", "cxcywh"):
        raise ValueError(f"boxes in format {name}: rotated boxes are not supported; give "
                         "axis-aligned XYXY, XYWH or CXCYWH boxes")
    return name


def boxes_to_xyxy(boxes) -> torch.Tensor:
    """(N, 4) plain xyxy tensor of a tensor or tv_tensors.BoundingBoxes."""
    fmt = box_format(boxes)
    plain = torch.as_tensor(boxes).as_subclass(torch.Tensor).reshape(-1, 4)
    if fmt == "xyxy":
        return plain.clone()
    from torchvision.ops import box_convert

    return box_convert(plain, fmt, "xyxy")


def xyxy_to_boxes_like(given, xyxy: torch.Tensor, height: int, width: int):
    """xyxy boxes in the form they were given: tv_tensors.BoundingBoxes keep their format
    and get the new canvas size; plain tensors stay xyxy."""
    if not hasattr(given, "format"):
        return xyxy
    from torchvision import tv_tensors
    from torchvision.ops import box_convert

    fmt = box_format(given)
    return tv_tensors.BoundingBoxes(box_convert(xyxy, "xyxy", fmt) if fmt != "xyxy" else xyxy,
                                    format=given.format, canvas_size=(height, width))


def target_to_instances(target: dict | None) -> list[Instance]:
    """One Instance per target row (its row in attributes['target_row']; the label id as
    class_name), for a stage to move."""
    if target is None:
        return []
    if not isinstance(target, dict):
        raise TypeError(f"the target must be a dict of tensors (boxes, labels, masks, keypoints), got "
                        f"{type(target).__name__}; for torchvision's CocoDetection (a list of COCO "
                        "annotations) wrap the dataset with torchvision.datasets."
                        "wrap_dataset_for_transforms_v2(dataset, target_keys={'boxes', 'labels', 'masks'})")
    unmoved = [k for k in UNMOVED_GEOMETRY if k in target]
    if unmoved:
        raise ValueError(f"target key '{unmoved[0]}' holds geometry that would not follow the "
                         "augmentation; give it as 'boxes' (xyxy, or tv_tensors.BoundingBoxes), "
                         "'masks' (N, H, W) or 'keypoints' (N, K, 2 or 3)")
    boxes = boxes_to_xyxy(target.get("boxes", torch.zeros(0, 4))).double().numpy()
    labels = torch.as_tensor(target.get("labels", torch.zeros(len(boxes)))).reshape(-1).tolist()
    masks = target.get("masks")
    if masks is not None:
        masks = torch.as_tensor(masks).as_subclass(torch.Tensor).detach().cpu().numpy()
        masks = masks if masks.dtype == bool else masks != 0  # one pass for all masks
    keypoints = target.get("keypoints")
    crowd = torch.as_tensor(target["iscrowd"]).reshape(-1).tolist() if "iscrowd" in target else None
    instances = []
    for i, box in enumerate(boxes):
        mask = masks[i] if masks is not None else None
        points = None if keypoints is None else \
            torch.as_tensor(keypoints[i]).as_subclass(torch.Tensor).double().numpy()
        instances.append(Instance(class_name=str(int(labels[i])), bbox_xyxy=tuple(box.tolist()),
                                  mask=mask, keypoints=points, iscrowd=bool(crowd[i]) if crowd is not None else False,
                                  attributes={"target_row": i}))
    return instances


def instances_to_target(instances: list[Instance], target: dict, height: int, width: int) -> dict:
    """The target with every per-object entry following the kept objects: boxes, labels,
    masks, keypoints (visibility 0 once outside), iscrowd; area recomputed (mask pixels,
    else box area). Other keys are passed through unchanged."""
    out = {k: v for k, v in target.items()
           if k not in ("boxes", "labels", "masks", "keypoints", "iscrowd", "area")}
    for key, field in (("masks", "mask"), ("keypoints", "keypoints")):
        if key in target and any(getattr(inst, field) is None for inst in instances):
            raise ValueError(f"the target has '{key}' but objects brought in from another item (a "
                             f"multi-image transform) have none: give every item of the dataset the "
                             f"same target keys")
    boxes = torch.tensor([inst.bbox_xyxy for inst in instances], dtype=torch.float32).reshape(-1, 4)
    out["boxes"] = xyxy_to_boxes_like(target.get("boxes"), boxes, height, width)
    out["labels"] = torch.tensor([int(inst.class_name) for inst in instances], dtype=torch.int64)
    if "masks" in target:
        # bool masks viewed as 0/1 bytes after the one copy np.stack makes
        masks = (torch.from_numpy(np.stack([inst.mask for inst in instances]).view(np.uint8))
                 if instances else torch.zeros((0, height, width), dtype=torch.uint8))
        if type(target["masks"]).__name__ == "Mask":  # tv_tensors.Mask
            from torchvision import tv_tensors

            masks = tv_tensors.Mask(masks)
        out["masks"] = masks
    if "keypoints" in target:
        given = torch.as_tensor(target["keypoints"])
        moved = [torch.from_numpy(inst.keypoints) for inst in instances]
        out["keypoints"] = (torch.stack(moved) if moved else given[:0].as_subclass(torch.Tensor).double()
                            ).to(given.dtype if given.is_floating_point() else torch.float32)
    if "iscrowd" in target:
        given = torch.as_tensor(target["iscrowd"])
        out["iscrowd"] = torch.tensor([inst.iscrowd for inst in instances], dtype=given.dtype)
    if "area" in target:
        out["area"] = torch.tensor([float(inst.mask.sum()) if inst.mask is not None else
                                    box_area(inst.bbox_xyxy) for inst in instances], dtype=torch.float32)
    return out
