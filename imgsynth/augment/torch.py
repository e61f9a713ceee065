"""Augmentation inside PyTorch: a Dataset wrapper, a transform callable, a batched path.

Randomness is a function of (seed, epoch, index) only, so results are identical for
any num_workers and worker order, differ between epochs (`set_epoch`), and need no
worker_init_fn. OpenCV runs one thread in each DataLoader worker (workers are the
parallelism; cv2's own threads would oversubscribe the CPU). Forked workers never hang on
the parent's OpenCV thread pool: importing this module registers the fork hook of
imgsynth.core.fork, which closes the pool before each fork (the parent keeps its threads),
so a forked worker starts with one thread; a spawned one sets it (a fresh pool is safe).

Images: HxW(xC) uint8 or float32 (0..1) numpy arrays, CxHxW uint8 or float tensors
(also torchvision's tv_tensors.Image) and PIL images (any mode; palette, CMYK and 16-bit
ones are converted as `decode_image` does); each comes back as the same kind. Targets are
torchvision-style dicts: boxes (N, 4) xyxy absolute, labels (N,) int64, and optionally
masks (N, H, W), keypoints (N, K, 2 or 3), iscrowd and area (see _target_from_instances).
Boxes given as tv_tensors.BoundingBoxes in XYWH or CXCYWH come back in their own format
with the new canvas size; masks given as tv_tensors.Mask come back as Masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgsynth.core.boxes import box_area
from imgsynth.core.fork import make_opencv_fork_safe
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed, sample_rng
from imgsynth.core.sample import Instance, Sample

make_opencv_fork_safe()  # before any DataLoader can fork a worker from this process


def _augment_config(recipe: Any):
    """AugmentConfig from a config, a stage mapping, a transform list or a recipe YAML path."""
    from imgsynth.augment.config import AugmentConfig
    from imgsynth.recipes.load import load_yaml, validate_model

    if isinstance(recipe, AugmentConfig):
        return recipe
    if isinstance(recipe, str | Path):
        stages = load_yaml(recipe).get("stages") or []
        found = [(i, s) for i, s in enumerate(stages) if isinstance(s, dict) and s.get("type") == "augment"]
        if not found:
            from imgsynth.core.errors import RecipeError

            raise RecipeError("the recipe has no stage of type 'augment'", file=str(recipe))
        i, stage = found[0]
        return validate_model(AugmentConfig, stage, prefix=f"stages.{i}", file=str(recipe))
    if isinstance(recipe, list):
        recipe = {"type": "augment", "transforms": recipe}
    return validate_model(AugmentConfig, {"type": "augment", **recipe})


def _one_cv2_thread_per_worker() -> None:
    # A forked worker already has one thread (imgsynth.core.fork), so this never calls
    # setNumThreads in a forked child; a spawned worker's pool is its own.
    if torch.utils.data.get_worker_info() is not None:
        import cv2

        if cv2.getNumThreads() != 1:
            cv2.setNumThreads(1)


class RecipeTransform:
    """`transform(image, target, index=i, epoch=e) -> (image, target)`.

    image: HxWxC uint8 numpy array or CxHxW uint8 tensor; the result has the same kind.
    """

    def __init__(self, recipe: Any, seed: int = 0):
        from imgsynth.augment.stage import AugmentStage

        self.config = _augment_config(recipe)
        self.stage = AugmentStage(self.config)
        self.seed = int(seed)

    def rng(self, index: int, epoch: int) -> np.random.Generator:
        return sample_rng(self.seed, f"augment/epoch/{int(epoch)}", int(index))

    def __call__(self, image, target: dict | None = None, *, index: int, epoch: int = 0):
        _one_cv2_thread_per_worker()
        sample = Sample(index=int(index), image=_as_array(image),
                        instances=_instances_from_target(target))
        out = self.stage.apply(sample, self.rng(index, epoch))
        result = _like(image, out.image)
        if target is None:
            return result
        return result, _target_from_instances(out.instances, target, *out.image.shape[:2])


def _as_array(image) -> np.ndarray:
    """HxWxC uint8 or float32 numpy array of any supported image kind (see the module doc)."""
    if _is_pil(image):
        from imgsynth.io.image import pil_to_array

        gray = image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
        return pil_to_array(image, "L" if gray else "RGB").reshape(image.height, image.width, -1)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise ValueError(f"a tensor image must be CxHxW, got shape {tuple(image.shape)}")
        array = image.detach().cpu().permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.ndim != 3 or array.dtype not in (np.uint8, np.float32):
        raise ValueError(f"images must be uint8 (0..255) or float32 (0..1), HxW(xC) arrays or "
                         f"CxHxW tensors; got {array.dtype} with shape {array.shape} (scale 16-bit "
                         "data to 8 bits first, or pass a PIL image, which is converted)")
    return np.ascontiguousarray(array)


def _like(original, array: np.ndarray):
    """The augmented HxWxC array as the kind of image that came in."""
    if _is_pil(original):
        from PIL import Image

        if array.dtype != np.uint8:
            raise TypeError(f"the recipe made {array.dtype} pixels (Normalize, ToFloat, ...), which a "
                            "PIL image cannot hold: pass the image as a tensor or numpy array "
                            "(e.g. torchvision.transforms.v2.functional.pil_to_tensor) to get them")
        return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if isinstance(original, torch.Tensor):
        result = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).to(original.device)
        if type(original) is not torch.Tensor:  # e.g. tv_tensors.Image
            from torchvision import tv_tensors

            result = tv_tensors.wrap(result, like=original)
        return result
    return array


def _is_pil(image) -> bool:
    return type(image).__module__.startswith("PIL.")


def _box_format(boxes) -> str:
    """xyxy, xywh or cxcywh: the format of tv_tensors.BoundingBoxes, xyxy for plain tensors."""
    fmt = getattr(boxes, "format", None)
    name = getattr(fmt, "name", "XYXY").lower()
    if name not in ("xyxy", "xywh", "cxcywh"):
        raise ValueError(f"boxes in format {name}: rotated boxes are not supported; give "
                         "axis-aligned XYXY, XYWH or CXCYWH boxes")
    return name


def _xyxy(boxes) -> torch.Tensor:
    """(N, 4) plain xyxy tensor of a tensor or tv_tensors.BoundingBoxes."""
    fmt = _box_format(boxes)
    plain = torch.as_tensor(boxes).as_subclass(torch.Tensor).reshape(-1, 4)
    if fmt == "xyxy":
        return plain.clone()
    from torchvision.ops import box_convert

    return box_convert(plain, fmt, "xyxy")


def _boxes_like(given, xyxy: torch.Tensor, height: int, width: int):
    """xyxy boxes in the form they were given: tv_tensors.BoundingBoxes keep their format
    and get the new canvas size; plain tensors stay xyxy."""
    if not hasattr(given, "format"):
        return xyxy
    from torchvision import tv_tensors
    from torchvision.ops import box_convert

    fmt = _box_format(given)
    return tv_tensors.BoundingBoxes(box_convert(xyxy, "xyxy", fmt) if fmt != "xyxy" else xyxy,
                                    format=given.format, canvas_size=(height, width))


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


# Target keys holding geometry that imgsynth would not move: refused rather than left stale.
UNMOVED_GEOMETRY = ("bbox", "bboxes", "segmentation", "polygons", "points")


def _instances_from_target(target: dict | None) -> list[Instance]:
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
    boxes = _xyxy(target.get("boxes", torch.zeros(0, 4))).double().numpy()
    labels = torch.as_tensor(target.get("labels", torch.zeros(len(boxes)))).reshape(-1).tolist()
    masks = target.get("masks")
    keypoints = target.get("keypoints")
    instances = []
    for i, box in enumerate(boxes):
        mask = torch.as_tensor(masks[i]).numpy().astype(bool) if masks is not None else None
        points = None if keypoints is None else \
            torch.as_tensor(keypoints[i]).as_subclass(torch.Tensor).double().numpy()
        instances.append(Instance(class_name=str(int(labels[i])), bbox_xyxy=tuple(box.tolist()),
                                  mask=mask, keypoints=points, attributes={"target_row": i}))
    return instances


def _target_from_instances(instances: list[Instance], target: dict, height: int, width: int) -> dict:
    """The target with every per-object entry following the kept objects: boxes, labels,
    masks, keypoints (visibility 0 once outside), iscrowd; area recomputed (mask pixels,
    else box area). Other keys are passed through unchanged."""
    rows = [inst.attributes["target_row"] for inst in instances]
    out = {k: v for k, v in target.items()
           if k not in ("boxes", "labels", "masks", "keypoints", "iscrowd", "area")}
    boxes = torch.tensor([inst.bbox_xyxy for inst in instances], dtype=torch.float32).reshape(-1, 4)
    out["boxes"] = _boxes_like(target.get("boxes"), boxes, height, width)
    out["labels"] = torch.tensor([int(inst.class_name) for inst in instances], dtype=torch.int64)
    if "masks" in target:
        masks = (torch.from_numpy(np.stack([inst.mask for inst in instances]).astype(np.uint8))
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
        out["iscrowd"] = torch.as_tensor(target["iscrowd"])[rows]
    if "area" in target:
        out["area"] = torch.tensor([float(inst.mask.sum()) if inst.mask is not None else
                                    box_area(inst.bbox_xyxy) for inst in instances], dtype=torch.float32)
    return out


class AugmentedDataset(torch.utils.data.Dataset):
    """Wrap a map-style dataset of `(image, target)` (or bare images) with a recipe's augmentation.

    Item i of epoch e is always augmented the same way, whichever worker loads it.
    Call `set_epoch(e)` before each epoch (as with DistributedSampler); workers kept
    alive with `persistent_workers=True` see it too.
    """

    def __init__(self, dataset, recipe: Any, seed: int = 0):
        self.dataset = dataset
        self.transform = RecipeTransform(recipe, seed=seed)
        # A shared-memory tensor rather than an int: persistent DataLoader workers hold a
        # copy of this object, and only shared memory carries set_epoch over to them.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        _one_cv2_thread_per_worker()  # before the wrapped dataset's own cv2 calls
        item = self.dataset[index]
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict | list):
            # a list: COCO annotations (CocoDetection), refused with the fix by the transform
            return self.transform(item[0], item[1], index=index, epoch=self.epoch)
        if isinstance(item, tuple):  # (image, class label): augment the image only
            return (self.transform(item[0], index=index, epoch=self.epoch), *item[1:])
        return self.transform(item, index=index, epoch=self.epoch)


class BatchAugment:
    """Per-sample random augmentation of a (B, C, H, W) batch on any device.

    Each sample draws its own flip/rot90/angle/brightness/contrast/noise from a
    torch.Generator seeded from (seed, batch_index). Boxes (list of (N_i, 4) xyxy
    tensors, or tv_tensors.BoundingBoxes in any axis-aligned format, returned in it) and
    masks (list of (N_i, H, W)) follow; with masks, boxes are their tight boxes. Images
    may be uint8 (0..255) or float (0..1); the dtype is kept.
    rot90 with odd k needs square images (a batch keeps one shape).
    """

    def __init__(self, *, seed: int = 0, hflip: float = 0.5, vflip: float = 0.0, rot90: float = 0.0,
                 rotate_limit: float = 0.0, brightness: float = 0.0, contrast: float = 0.0,
                 noise_sigma: tuple[float, float] = (0.0, 0.0)):
        self.seed = int(seed)
        self.hflip, self.vflip, self.rot90 = hflip, vflip, rot90
        self.rotate_limit, self.brightness, self.contrast = rotate_limit, brightness, contrast
        self.noise_sigma = tuple(noise_sigma)

    def generator(self, batch_index: int, device: torch.device) -> torch.Generator:
        seed = derived_int_seed(sample_rng(self.seed, "batch_augment", int(batch_index)))
        return torch.Generator(device=device).manual_seed(seed)

    def __call__(self, images: torch.Tensor, boxes: list[torch.Tensor] | None = None,
                 masks: list[torch.Tensor] | None = None, *, batch_index: int):
        b, _, h, w = images.shape
        dev = images.device
        gen = self.generator(batch_index, dev)

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=gen, device=dev)

        # 1. Per-sample parameters, all drawn up front in a fixed order.
        hflip = uniform(0, 1) < self.hflip
        vflip = uniform(0, 1) < self.vflip
        k90 = torch.where(uniform(0, 1) < self.rot90,
                          torch.randint(1, 4, (b,), generator=gen, device=dev), 0)
        if h != w:
            k90 = k90 - k90 % 2  # odd quarter turns would change the shape
        angle = uniform(-self.rotate_limit, self.rotate_limit)
        gain = uniform(1 - self.contrast, 1 + self.contrast)
        bias = uniform(-self.brightness, self.brightness)
        sigma = uniform(*self.noise_sigma)
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        x = images.float() / scale
        masks = [m.clone() for m in masks] if masks is not None else None
        given_boxes = boxes
        boxes = [_xyxy(bx).float() for bx in boxes] if boxes is not None else None

        # 2. Exact geometry: flips and quarter turns move pixels and labels exactly.
        x = torch.where(hflip[:, None, None, None], x.flip(-1), x)
        x = torch.where(vflip[:, None, None, None], x.flip(-2), x)
        for k in (1, 2, 3):
            sel = k90 == k
            if sel.any():
                x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
        for i in range(b):
            if masks is not None:
                m = masks[i]
                if hflip[i]:
                    m = m.flip(-1)
                if vflip[i]:
                    m = m.flip(-2)
                masks[i] = torch.rot90(m, int(k90[i]), dims=(-2, -1))
            if boxes is not None:
                boxes[i] = _exact_boxes(boxes[i], bool(hflip[i]), bool(vflip[i]), int(k90[i]), h, w)

        # 3. Rotation by any angle (grid_sample), only when asked for.
        if self.rotate_limit > 0:
            theta = _rotation_theta(angle, h, w)
            grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                                align_corners=False)
            for i in range(b):
                if masks is not None and len(masks[i]):
                    m = masks[i][:, None].float()
                    g = grid[i:i + 1].expand(len(m), -1, -1, -1)
                    masks[i] = torch.nn.functional.grid_sample(
                        m, g, mode="nearest", align_corners=False)[:, 0].to(masks[i].dtype)
                if boxes is not None:
                    boxes[i] = _rotated_boxes(boxes[i], float(angle[i]), h, w)

        # 4. Photometric: contrast about the image mean, brightness, Gaussian noise.
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * gain[:, None, None, None] + mean + bias[:, None, None, None]
        if self.noise_sigma[1] > 0:
            noise = torch.randn(x.shape, generator=gen, device=dev)
            x = x + noise * (sigma / 255.0)[:, None, None, None]
        x = x.clamp(0, 1)
        out = (x * 255).round().to(torch.uint8) if images.dtype == torch.uint8 else x.to(images.dtype)

        if masks is not None and boxes is not None:
            boxes = [_mask_boxes(m) for m in masks]
        if boxes is not None:
            boxes = [_boxes_like(given, bx, h, w) for given, bx in zip(given_boxes, boxes)]
        return out, boxes, masks


def _exact_boxes(bx: torch.Tensor, hflip: bool, vflip: bool, k90: int, h: int, w: int):
    x1, y1, x2, y2 = bx.unbind(-1)
    if hflip:
        x1, x2 = w - x2, w - x1
    if vflip:
        y1, y2 = h - y2, h - y1
    for _ in range(k90):  # counter-clockwise quarter turn: (x, y) -> (y, W - x)
        x1, y1, x2, y2 = y1, w - x2, y2, w - x1
        h, w = w, h
    return torch.stack([x1, y1, x2, y2], -1)


def _rotation_theta(angle_deg: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """affine_grid matrices (output -> input, normalized coords) rotating each image
    counter-clockwise by angle about its centre, in pixel geometry (aspect-correct)."""
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(len(a), 2, 3, device=a.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    return theta


def _rotated_boxes(bx: torch.Tensor, angle_deg: float, h: int, w: int) -> torch.Tensor:
    """Box around the rotated corners (largest_box), clipped to the image."""
    if len(bx) == 0:
        return bx
    a = np.deg2rad(angle_deg)
    cos, sin = float(np.cos(a)), float(np.sin(a))
    cx, cy = w / 2, h / 2
    corners = torch.stack([bx[:, [0, 1]], bx[:, [2, 1]], bx[:, [2, 3]], bx[:, [0, 3]]], 1)
    dx, dy = corners[..., 0] - cx, corners[..., 1] - cy
    # Counter-clockwise on screen (y down): x' = cos dx + sin dy, y' = -sin dx + cos dy.
    rx, ry = cx + cos * dx + sin * dy, cy - sin * dx + cos * dy
    out = torch.stack([rx.min(1).values, ry.min(1).values, rx.max(1).values, ry.max(1).values], -1)
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, h)
    return out


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes of (N, H, W) masks; an emptied mask gets a zero box."""
    rows = []
    for m in masks.bool().cpu().numpy():
        box = tight_bbox(m)
        rows.append(box if box is not None else (0.0, 0.0, 0.0, 0.0))
    return torch.tensor(rows, dtype=torch.float32, device=masks.device).reshape(-1, 4)

