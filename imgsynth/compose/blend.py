"""Blending kernels: paste an object patch onto a background window of the same size.

Every kernel takes `bg` (HxWx3 uint8, the background under the patch), `fg` (HxWx3
uint8, the object's colours) and `alpha` (HxW uint8, the object's geometric alpha,
already warped) and returns the new HxWx3 uint8 window. They work on the object's
window only, never on the whole frame. The labels never depend on the blend mode:
they come from `imgsynth.core.masks.silhouette(alpha)`.
"""

from __future__ import annotations

import cv2
import numpy as np

from imgsynth.core.masks import silhouette

BLEND_MODES = ("hard", "alpha", "gaussian", "box", "poisson_normal", "poisson_mixed", "pyramid")


def hard_alpha(alpha: np.ndarray) -> np.ndarray:
    """The object's silhouette as 0/255 uint8 (the same threshold the labels use)."""
    return np.where(silhouette(alpha), np.uint8(255), np.uint8(0))


def blend_alpha(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """out = fg * a + bg * (1 - a), a = alpha / 255."""
    weight = alpha.astype(np.float32) * np.float32(1 / 255)
    return cv2.blendLinear(np.ascontiguousarray(fg), np.ascontiguousarray(bg), weight, 1 - weight)


def blend_hard(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Copy the object's pixels where it is opaque, nothing elsewhere."""
    out = bg.copy()
    cv2.copyTo(np.ascontiguousarray(fg), hard_alpha(alpha), out)
    return out


def feather_alpha(alpha: np.ndarray, radius: float, kind: str) -> np.ndarray:
    """Soften the silhouette's edge; the 50% contour stays on the silhouette's edge."""
    hard = hard_alpha(alpha)
    if radius <= 0:
        return hard
    if kind == "gaussian":
        return cv2.GaussianBlur(hard, (0, 0), sigmaX=radius / 2.0, borderType=cv2.BORDER_REPLICATE)
    if kind == "box":
        size = 2 * int(round(radius)) + 1
        return cv2.blur(hard, (size, size), borderType=cv2.BORDER_REPLICATE)
    raise ValueError(f"unknown feather kind '{kind}'")


def blend_feather(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray, radius: float,
                  kind: str) -> np.ndarray:
    return blend_alpha(bg, fg, feather_alpha(alpha, radius, kind))


def blend_poisson(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray, mixed: bool) -> np.ndarray:
    """Poisson image editing (cv2.seamlessClone, normal or mixed gradients) on the window.

    OpenCV centres the mask's bounding rect on `p`, so p is chosen to put it back where
    it is. OpenCV zeroes the mask's outer ring and writes to the mask, hence the copy.
    Pixels outside the silhouette stay the background's.
    Falls back to a hard paste when the silhouette is too thin for a Poisson solve.
    """
    mask = hard_alpha(alpha)
    mask[0, :] = mask[-1, :] = 0
    mask[:, 0] = mask[:, -1] = 0
    x, y, w, h = cv2.boundingRect(mask)
    if w < 3 or h < 3:
        return blend_hard(bg, fg, alpha)
    flags = cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE
    inside = mask.copy()
    cloned = cv2.seamlessClone(np.ascontiguousarray(fg), np.ascontiguousarray(bg), mask,
                               (x + w // 2, y + h // 2), flags)
    # OpenCV solves over the whole bounding rect; keep its result on the silhouette only.
    out = bg.copy()
    cv2.copyTo(cloned, inside, out)
    return out


def blend_pyramid(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray, levels: int) -> np.ndarray:
    """Laplacian pyramid blending (Burt & Adelson): each band mixed with a blurred mask."""
    h, w = alpha.shape
    levels = max(1, min(levels, int(np.log2(max(2, min(h, w)))) - 1))
    step = 2 ** levels
    ph, pw = -h % step, -w % step  # pad to a multiple of 2**levels so pyrUp fits pyrDown
    pad = (0, ph, 0, pw)
    a = cv2.copyMakeBorder(hard_alpha(alpha), *pad, cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
    f = cv2.copyMakeBorder(fg, *pad, cv2.BORDER_REPLICATE).astype(np.float32)
    b = cv2.copyMakeBorder(bg, *pad, cv2.BORDER_REPLICATE).astype(np.float32)
    gauss_a, lap_f, lap_b = [a], [], []
    for _ in range(levels):
        f_down, b_down = cv2.pyrDown(f), cv2.pyrDown(b)
        lap_f.append(f - cv2.pyrUp(f_down, dstsize=f.shape[1::-1]))
        lap_b.append(b - cv2.pyrUp(b_down, dstsize=b.shape[1::-1]))
        gauss_a.append(cv2.pyrDown(gauss_a[-1]))
        f, b = f_down, b_down
    m = gauss_a[levels][:, :, None]
    out = f * m + b * (1.0 - m)
    for level in range(levels - 1, -1, -1):
        m = gauss_a[level][:, :, None]
        out = cv2.pyrUp(out, dstsize=lap_f[level].shape[1::-1])
        out += lap_f[level] * m + lap_b[level] * (1.0 - m)
    return np.clip(out[:h, :w] + 0.5, 0, 255).astype(np.uint8)


def blend_patch(bg: np.ndarray, fg: np.ndarray, alpha: np.ndarray, mode: str, *,
                feather_radius: float = 2.0, pyramid_levels: int = 4) -> np.ndarray:
    """Dispatch to one blend mode by name (one of BLEND_MODES)."""
    if mode == "hard":
        return blend_hard(bg, fg, alpha)
    if mode == "alpha":
        return blend_alpha(bg, fg, alpha)
    if mode in ("gaussian", "box"):
        return blend_feather(bg, fg, alpha, feather_radius, mode)
    if mode in ("poisson_normal", "poisson_mixed"):
        return blend_poisson(bg, fg, alpha, mixed=mode == "poisson_mixed")
    if mode == "pyramid":
        return blend_pyramid(bg, fg, alpha, pyramid_levels)
    raise ValueError(f"unknown blend mode '{mode}'")


def motion_blur_patch(fg: np.ndarray, alpha: np.ndarray, length: int,
                      angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Blur the object along a line (premultiplied, so edges fade instead of darkening).

    Returns the blurred colours and the blurred alpha used for blending; the label
    silhouette is still the unblurred alpha.
    """
    length = max(1, int(length))
    if length == 1:
        return fg, alpha
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    a = alpha.astype(np.float32) / 255.0
    premult = fg.astype(np.float32) * a[:, :, None]
    a_blur = cv2.filter2D(a, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    c_blur = cv2.filter2D(premult, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    colour = c_blur / np.maximum(a_blur, 1e-3)[:, :, None]
    return (np.clip(colour + 0.5, 0, 255).astype(np.uint8),
            np.clip(a_blur * 255.0 + 0.5, 0, 255).astype(np.uint8))


def harmonize_lab(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray,
                  strength: float) -> np.ndarray:
    """Move the object's LAB mean/std toward the background around it (Reinhard transfer)."""
    inside = silhouette(alpha)
    if not inside.any() or inside.all():
        return fg
    fg_lab = cv2.cvtColor(fg, cv2.COLOR_RGB2LAB)
    bg_lab = cv2.cvtColor(bg, cv2.COLOR_RGB2LAB)
    mask = inside.astype(np.uint8)
    f_mean, f_std = (v.ravel() for v in cv2.meanStdDev(fg_lab, mask=mask))
    b_mean, b_std = (v.ravel() for v in cv2.meanStdDev(bg_lab, mask=1 - mask))
    # fg + strength * (matched - fg), matched = (fg - f_mean) * ratio + b_mean, per channel:
    ratio = (b_std + 1e-3) / (f_std + 1e-3)
    gain = 1.0 - strength + strength * ratio
    offset = strength * (b_mean - f_mean * ratio) + 0.5  # + 0.5: round on the cast below
    out = fg_lab.astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def shadow_alpha(alpha: np.ndarray, dx: int, dy: int, blur: float, opacity: float) -> np.ndarray:
    """A soft, offset copy of the silhouette (same window size) to darken the ground with."""
    h, w = alpha.shape
    shifted = np.zeros_like(alpha)
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    shifted[yd, xd] = hard_alpha(alpha)[ys, xs]
    if blur > 0:
        shifted = cv2.GaussianBlur(shifted, (0, 0), sigmaX=blur)
    return (shifted.astype(np.uint16) * int(round(opacity * 256)) >> 8).astype(np.uint8)


def darken(bg: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """bg * (1 - shade/255): a shadow is a black layer with alpha `shade`."""
    return ((bg.astype(np.uint16) * (255 - shade.astype(np.uint16))[:, :, None] + 127) // 255
            ).astype(np.uint8)
