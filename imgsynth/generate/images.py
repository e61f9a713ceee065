"""Between networks and images: uint8 images to float tensors and back, sampling a network
in eval mode, and the image grids a training run writes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.image import encode_image


def images_to_tensor(images_nhwc: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) uint8 on `device`."""
    return torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous().to(device)


def images_to_uint8(x01: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [0, 1] -> (B, H, W, C) uint8."""
    x = (x01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate_images(sampler: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                    batch_size: int = 256) -> np.ndarray:
    """Sampler output as uint8, in eval mode (batch norm uses its running statistics)."""
    was_training = sampler.training
    sampler.eval()
    out = [images_to_uint8(sampler.generate(z[i:i + batch_size],
                                            None if labels is None else labels[i:i + batch_size]))
           for i in range(0, len(z), batch_size)]
    sampler.train(was_training)
    return np.concatenate(out)


def tile_grid(images: np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """(B, H, W, C) uint8 -> one image, nrow images per row, `pad` black pixels between."""
    b, h, w, c = images.shape
    rows = math.ceil(b / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = image
    return grid


def save_grid(path: Path, images: np.ndarray, nrow: int) -> None:
    atomic_write_bytes(path, encode_image(tile_grid(images, nrow), "png"))
