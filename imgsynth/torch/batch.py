"""BatchAugment: per-sample random augmentation of a whole (B, C, H, W) batch on any device
(e.g. in a collate_fn or on the GPU after the DataLoader).

Kernels are named `<op>_<target>` (as in torchvision.transforms.v2.functional): images are
a (B, C, H, W) float batch with a per-sample parameter, masks (N, H, W) and boxes (N, 4)
xyxy tensors are one sample's objects.
"""

from __future__ import annotations

import numpy as np
import torch

from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed, sample_rng
from imgsynth.torch.targets import boxes_to_xyxy, xyxy_to_boxes_like


class BatchAugment:
    """Per-sample random augmentation of a (B, C, H, W) batch on any device.

    Each sample draws its own flip/rot90/angle/brightness/contrast/noise from a
    torch.Generator seeded from (seed, batch_index). With a rotation, a sample's flips,
    quarter turns and rotation are one matrix and the batch is resampled once (one
    grid_sample); without, flips and turns are exact copies. Boxes (list of (N_i, 4) xyxy
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
        boxes = [boxes_to_xyxy(bx).float() for bx in boxes] if boxes is not None else None

        if self.rotate_limit > 0:
            # 2. Flips, quarter turns and the rotation as one matrix per sample: one
            #    grid_sample for the whole batch, the same grid for each sample's masks.
            matrices = geometry_matrices(hflip, vflip, k90, angle, h, w)
            grids = affine_grids(matrices, x.shape, dev)
            x = warp_images(x, grids)
            for i in range(b):
                if masks is not None and len(masks[i]):
                    masks[i] = warp_masks(masks[i], grids[i])
                if boxes is not None:
                    boxes[i] = warp_boxes(boxes[i], matrices[i], h, w)
        else:
            # 2. Flips and quarter turns only: exact copies, no resampling at all.
            x = rot90_images(vflip_images(hflip_images(x, hflip), vflip), k90)
            for i in range(b):
                k = int(k90[i])
                if masks is not None:
                    m = masks[i]
                    if hflip[i]:
                        m = hflip_masks(m)
                    if vflip[i]:
                        m = vflip_masks(m)
                    masks[i] = rot90_masks(m, k)
                if boxes is not None:
                    bx = boxes[i]
                    if hflip[i]:
                        bx = hflip_boxes(bx, w)
                    if vflip[i]:
                        bx = vflip_boxes(bx, h)
                    boxes[i] = rot90_boxes(bx, k, h, w)

        # 4. Photometric: contrast about the image mean, brightness, Gaussian noise.
        x = brightness_contrast_images(x, gain, bias)
        if self.noise_sigma[1] > 0:
            x = gaussian_noise_images(x, sigma, gen)
        x = x.clamp(0, 1)
        out = (x * 255).round().to(torch.uint8) if images.dtype == torch.uint8 else x.to(images.dtype)

        if masks is not None and boxes is not None:
            boxes = [masks_to_boxes(m) for m in masks]
        if boxes is not None:
            boxes = [xyxy_to_boxes_like(given, bx, h, w) for given, bx in zip(given_boxes, boxes)]
        return out, boxes, masks


# ---------------------------------------------------------------------------
# Flips and quarter turns (exact)
# ---------------------------------------------------------------------------

def hflip_images(images: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """The batch with the images where `selected` (B,) is true mirrored left-right."""
    return torch.where(selected[:, None, None, None], images.flip(-1), images)


def vflip_images(images: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """The batch with the images where `selected` (B,) is true mirrored top-bottom."""
    return torch.where(selected[:, None, None, None], images.flip(-2), images)


def rot90_images(images: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each image turned k[i] quarter turns counter-clockwise, in place (one shape: odd k
    only for square images)."""
    for turns in (1, 2, 3):
        sel = k == turns
        if sel.any():
            images[sel] = torch.rot90(images[sel], turns, dims=(-2, -1))
    return images


def hflip_masks(masks: torch.Tensor) -> torch.Tensor:
    return masks.flip(-1)


def vflip_masks(masks: torch.Tensor) -> torch.Tensor:
    return masks.flip(-2)


def rot90_masks(masks: torch.Tensor, k: int) -> torch.Tensor:
    return torch.rot90(masks, k, dims=(-2, -1))


def hflip_boxes(boxes_xyxy: torch.Tensor, width: int) -> torch.Tensor:
    x1, y1, x2, y2 = boxes_xyxy.unbind(-1)
    return torch.stack([width - x2, y1, width - x1, y2], -1)


def vflip_boxes(boxes_xyxy: torch.Tensor, height: int) -> torch.Tensor:
    x1, y1, x2, y2 = boxes_xyxy.unbind(-1)
    return torch.stack([x1, height - y2, x2, height - y1], -1)


def rot90_boxes(boxes_xyxy: torch.Tensor, k: int, height: int, width: int) -> torch.Tensor:
    """Boxes under `rot90_masks(masks, k)` of an image of the given size."""
    x1, y1, x2, y2 = boxes_xyxy.unbind(-1)
    for _ in range(k):  # counter-clockwise quarter turn: (x, y) -> (y, W - x)
        x1, y1, x2, y2 = y1, width - x2, y2, width - x1
        height, width = width, height
    return torch.stack([x1, y1, x2, y2], -1)


# ---------------------------------------------------------------------------
# Any geometry: one matrix per sample, one grid_sample per batch
# ---------------------------------------------------------------------------

def geometry_matrices(hflip: torch.Tensor, vflip: torch.Tensor, k90: torch.Tensor, angle_deg: torch.Tensor,
                      height: int, width: int) -> torch.Tensor:
    """(B, 3, 3) float64 matrices, input pixel index -> output pixel index: each sample's
    horizontal flip, vertical flip, quarter turns (counter-clockwise) and rotation by any
    angle (counter-clockwise about the image centre), in that order, composed (the
    per-sample kernels of imgsynth.augment.functional)."""
    from imgsynth.augment import functional as F

    out = []
    for hf, vf, k, a in zip(hflip.tolist(), vflip.tolist(), k90.tolist(), angle_deg.tolist()):
        matrix = np.eye(3)
        if hf:
            matrix = F.hflip_matrix(width) @ matrix
        if vf:
            matrix = F.vflip_matrix(height) @ matrix
        turn, _, _ = F.rot90_matrix(int(k), height, width)
        rotation, _, _ = F.rotation_matrix(a, height, width, expand=False)
        out.append(F.as_3x3(rotation) @ turn @ matrix)
    return torch.from_numpy(np.stack(out))


def affine_grids(matrices: torch.Tensor, shape: torch.Size, device: torch.device | str = "cpu") -> torch.Tensor:
    """affine_grid sampling grids (B, H, W, 2) on `device` for pixel-index matrices (input ->
    output, same size in and out), in grid_sample's normalized coordinates (align_corners=False)."""
    h, w = shape[-2:]
    to_normal = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
                             dtype=torch.float64)
    theta = to_normal @ torch.linalg.inv(matrices) @ torch.linalg.inv(to_normal)  # output -> input
    return torch.nn.functional.affine_grid(theta[:, :2].float().to(device), list(shape), align_corners=False)


def warp_images(images: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Bilinear, zeros outside."""
    return torch.nn.functional.grid_sample(images, grids, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)


def warp_masks(masks: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """One sample's (N, H, W) masks through its (H, W, 2) grid, nearest (labels stay labels)."""
    m = masks[:, None].float()
    g = grid[None].expand(len(m), -1, -1, -1)
    return torch.nn.functional.grid_sample(m, g, mode="nearest", align_corners=False)[:, 0].to(masks.dtype)


def warp_boxes(boxes_xyxy: torch.Tensor, matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Box around the moved corners (largest_box), clipped to the image; the matrix works
    on pixel indices, boxes on continuous coordinates (pixel i spans i..i+1)."""
    if len(boxes_xyxy) == 0:
        return boxes_xyxy
    bx = boxes_xyxy.double().cpu()
    corners = torch.stack([bx[:, [0, 1]], bx[:, [2, 1]], bx[:, [2, 3]], bx[:, [0, 3]]], 1) - 0.5
    moved = corners @ matrix[:2, :2].T + matrix[:2, 2] + 0.5
    out = torch.cat([moved.min(1).values, moved.max(1).values], -1)
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, height)
    return out.to(boxes_xyxy.dtype).to(boxes_xyxy.device)


# ---------------------------------------------------------------------------
# Photometric
# ---------------------------------------------------------------------------

def brightness_contrast_images(images: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Contrast gain[i] about each image's mean, then brightness bias[i] added."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * gain[:, None, None, None] + mean + bias[:, None, None, None]


def gaussian_noise_images(images: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of sigma[i] (in 0..255 levels) added to each image."""
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    return images + noise * (sigma / 255.0)[:, None, None, None]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes of (N, H, W) masks; an emptied mask gets a zero box."""
    rows = []
    for m in masks.bool().cpu().numpy():
        box = tight_bbox(m)
        rows.append(box if box is not None else (0.0, 0.0, 0.0, 0.0))
    return torch.tensor(rows, dtype=torch.float32, device=masks.device).reshape(-1, 4)
