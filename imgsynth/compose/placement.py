"""Where and how an object goes: its geometric transform and its position.

Kernels (`object_matrix`, `warp_object`, `center_range`, `perspective_factor`) are
pure; `ObjectPose` / `sample_pose` only draw parameters from the sample's Generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


@dataclass
class ObjectPose:
    """The geometric parameters of one pasted object."""

    longer_side: float  # pixels, before rotation
    angle_deg: float
    flip_h: bool
    flip_v: bool
    aspect: float  # multiplies width / height


def sample_pose(rng: np.random.Generator, *, scale: tuple[float, float], unit: str,
                background_short_side: int, rotation: tuple[float, float], flip_h: float,
                flip_v: float, aspect_jitter: float) -> ObjectPose:
    side = loguniform(rng, *scale) * (background_short_side if unit == "fraction" else 1.0)
    return ObjectPose(
        longer_side=side,
        angle_deg=float(rng.uniform(*rotation)),
        flip_h=bool(rng.random() < flip_h),
        flip_v=bool(rng.random() < flip_v),
        aspect=float(math.exp(rng.uniform(-aspect_jitter, aspect_jitter))))


def pose_scales(pose: ObjectPose, h: int, w: int, factor: float = 1.0) -> tuple[float, float]:
    """x and y scale that give the object's longer side `pose.longer_side * factor` pixels."""
    base = pose.longer_side * factor / max(h, w)
    root = math.sqrt(pose.aspect)
    return base * root, base / root


def object_matrix(h: int, w: int, scale_x: float, scale_y: float, angle_deg: float,
                  flip_h: bool, flip_v: bool, margin: int) -> tuple[np.ndarray, int, int]:
    """2x3 affine matrix taking an h x w object into a patch that holds all of it.

    The object is scaled, flipped and rotated (counter-clockwise, about its centre) and
    centred in a patch with `margin` empty pixels on every side (room for feathering,
    blur and shadows). Returns (matrix, patch width, patch height).
    """
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, sin], [-sin, cos]])
    lin = rot @ np.diag([-scale_x if flip_h else scale_x, -scale_y if flip_v else scale_y])
    half = np.abs(lin) @ np.array([w / 2.0, h / 2.0])
    out_w = int(math.ceil(2 * half[0] - 1e-6)) + 2 * margin
    out_h = int(math.ceil(2 * half[1] - 1e-6)) + 2 * margin
    src_centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    dst_centre = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    matrix = np.hstack([lin, (dst_centre - lin @ src_centre)[:, None]])
    return matrix, max(out_w, 1), max(out_h, 1)


def warp_object(rgba_premult: np.ndarray, scale_x: float, scale_y: float, angle_deg: float,
                flip_h: bool, flip_v: bool, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Transform a premultiplied RGBA cutout; returns (RGB, alpha) of the patch.

    Colours are premultiplied while interpolating so the transparent surround does not
    bleed a dark rim into the edge. Strong shrinking goes through INTER_AREA first
    (warpAffine alone would alias).
    """
    h, w = rgba_premult.shape[:2]
    src = rgba_premult
    if min(scale_x, scale_y) < 0.5:
        nw, nh = max(1, round(w * scale_x)), max(1, round(h * scale_y))
        src = cv2.resize(rgba_premult, (nw, nh), interpolation=cv2.INTER_AREA)
        scale_x, scale_y = scale_x * w / nw, scale_y * h / nh
        h, w = nh, nw
    matrix, out_w, out_h = object_matrix(h, w, scale_x, scale_y, angle_deg, flip_h, flip_v, margin)
    patch = cv2.warpAffine(src, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return unpremultiply(patch)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    a = rgba[:, :, 3:4].astype(np.uint16)
    out = rgba.copy()
    out[:, :, :3] = (rgba[:, :, :3].astype(np.uint16) * a + 127) // 255
    return out


def unpremultiply(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = cv2.extractChannel(rgba, 3)
    # cv2.divide rounds, saturates and gives 0 where alpha is 0.
    rgb = cv2.divide(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), cv2.merge([alpha, alpha, alpha]), scale=255)
    return rgb, alpha


def center_range(lo_frac: float, hi_frac: float, image_size: int, extent: int,
                 max_truncation: float) -> tuple[float, float] | None:
    """Allowed interval of an object's centre along one axis.

    The centre lies in the allowed region [lo_frac, hi_frac] x image_size, and no more
    than `max_truncation` of the object's extent may leave the image on that axis (the
    exact pixel fraction is checked after the draw).
    """
    lo = max(lo_frac * image_size, extent * (0.5 - max_truncation))
    hi = min(hi_frac * image_size, image_size - extent * (0.5 - max_truncation))
    return (lo, hi) if lo <= hi else None


def perspective_factor(cy: float, height: int, top: float, bottom: float) -> float:
    """Ground-plane scale factor: `top` at the first row, `bottom` at the last, linear between."""
    t = min(max(cy / max(height - 1, 1), 0.0), 1.0)
    return top + (bottom - top) * t
