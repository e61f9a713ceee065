"""Pure augmentation kernels: arrays in, arrays out, no parameter sampling.

Coordinates are continuous pixel coordinates (pixel column i spans i..i+1), the
convention of `Instance.bbox_xyxy` and `Instance.polygons`. Geometric kernels work
in float64 and map box edges with exact formulas (a flip is `W - x`), so flipping
labels back and forth never drifts. Noise kernels compute in wider precision and
saturate: uint8 results never wrap around.

Noise kernels take the sample's Generator because the noise itself is the
random parameter; every other kernel gets its parameters from the caller.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BORDER_MODES = {
    "constant": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
}
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------

# SplitMix64 (Steele, Lea and Flood 2014; java.util.SplittableRandom): word i of a stream
# is mix64(start + i * gamma). Counter-based, so numpy computes a whole image's words in
# eleven vectorized passes: 64 us for the 49,152 words of a 256x256 RGB image
# against 96 us for numpy's fastest bit generator (SFC64), whose loop calls it per word.
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SHIFT30, _SHIFT27, _SHIFT31 = np.uint64(30), np.uint64(27), np.uint64(31)
_COUNTERS = np.arange(1, 1, dtype=np.uint64)
_COUNTERS_KEPT = 1 << 21  # words (16 MB): a 2.7-megapixel RGB image's noise


def _counters(count: int) -> np.ndarray:
    """1..count as uint64; kept between calls up to _COUNTERS_KEPT words."""
    global _COUNTERS
    if count > len(_COUNTERS):
        counters = np.arange(1, count + 1, dtype=np.uint64)
        if count > _COUNTERS_KEPT:
            return counters
        counters.flags.writeable = False
        _COUNTERS = counters
    return _COUNTERS[:count]


def _odd_gamma(value: int) -> int:
    """An odd increment with enough bit transitions, as SplittableRandom's mixGamma."""
    gamma = value | 1
    if (gamma ^ (gamma >> 1)).bit_count() < 24:
        gamma ^= 0xAAAAAAAAAAAAAAAA
    return gamma


def random_words(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` independent uniform uint64 words, derived from the sample's Generator.

    Two draws from `rng` give a SplitMix64 stream its start and increment (a
    different increment per sample, so no two samples' streams are shifted copies
    of each other); SplitMix64 passes BigCrush. The words follow from
    (seed, stage, index) alone, as every other random value.
    """
    start, gamma = (int(v) for v in rng.bit_generator.random_raw(2))
    z = np.multiply(_counters(count), np.uint64(_odd_gamma(gamma)))
    z += np.uint64(start)
    t = z >> _SHIFT30
    z ^= t
    z *= _MIX1
    np.right_shift(z, _SHIFT27, out=t)
    z ^= t
    z *= _MIX2
    np.right_shift(z, _SHIFT31, out=t)
    z ^= t
    return z


def uniform_u16(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` independent uniform 16-bit integers (four per random word)."""
    return random_words(rng, (count + 3) // 4).view(np.uint16)[:count]


def standard_normal_f32(rng: np.random.Generator, shape: tuple[int, ...],
                        scale: float = 1.0) -> np.ndarray:
    """Independent N(0, scale^2) float32 values of `shape`.

    Box-Muller on 16-bit uniforms: radius sqrt(-2 ln u1) and angle 2 pi u2, with
    u = (k + 0.5) / 65536, give two independent normal values per pair. The radius
    reaches 4.85 (a normal value lies beyond that with probability 1.2e-6) and each
    value's distribution is exact up to the 1/65536 steps of u. OpenCV's vectorized log,
    sqrt and polarToCart make this ~3x faster than a float normal draw per value.
    """
    count = math.prod(shape)
    pairs = (count + 1) // 2
    radius, angle = uniform_u16(rng, 2 * pairs).astype(np.float32).reshape(2, pairs)
    radius += np.float32(0.5)
    cv2.log(radius, radius)  # ln(k + 0.5); ln u1 = ln(k + 0.5) - 16 ln 2
    radius *= np.float32(-2.0 * scale * scale)
    radius += np.float32(2.0 * scale * scale * 16 * math.log(2))
    cv2.sqrt(radius, radius)
    angle *= np.float32(2.0 * math.pi / 65536)
    out = np.empty((2, pairs), dtype=np.float32)
    cv2.polarToCart(radius, angle, out[0], out[1])
    return out.reshape(-1)[:count].reshape(shape)


def gaussian_noise_image(image: np.ndarray, sigma: float, rng: np.random.Generator,
                         *, per_channel: bool = True) -> np.ndarray:
    """Add zero-mean Gaussian noise with std `sigma` in 0..255 pixel units.

    uint8: float noise is added and the sum rounded and saturated to [0, 255] in
    one OpenCV pass (never wraps). float32 images in [0, 1] get sigma / 255 and
    are clipped to [0, 1]. per_channel=False adds the same (luminance) noise to
    all channels.
    """
    h, w = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    noise_channels = channels if per_channel else 1
    scale = sigma if image.dtype == np.uint8 else sigma / 255.0
    noise = standard_normal_f32(rng, (h, w, noise_channels), scale)
    if noise_channels != channels:
        noise = np.repeat(noise, channels, axis=2)
    if image.dtype == np.uint8:
        # addWeighted rounds and saturates like add, ~20% faster with a float operand.
        out = cv2.addWeighted(image.reshape(h, w, channels), 1.0, noise, 1.0, 0.0, dtype=cv2.CV_8U)
        return out.reshape(image.shape)
    out = image.reshape(h, w, channels) + noise
    np.clip(out, 0.0, 1.0, out=out)
    return out.astype(image.dtype, copy=False).reshape(image.shape)


def poisson_noise_image(image: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: a white pixel collects `peak` photons; counts are Poisson distributed.

    Lower peak means a noisier image. Result is rescaled to the input range and saturated.
    """
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    photons = rng.poisson(image.astype(np.float64) * (peak / scale))
    return _saturate(photons * (scale / peak), image.dtype)


def salt_pepper_image(image: np.ndarray, amount: float, salt_fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Set a fraction `amount` of pixels (all channels) to white (salt) or black (pepper)."""
    h, w = image.shape[:2]
    draw = uniform_u16(rng, 2 * h * w).reshape(2, h, w)
    hit = draw[0] < amount * 65536.0
    salt = draw[1] < salt_fraction * 65536.0
    top = 255 if image.dtype == np.uint8 else 1.0
    out = image.copy()
    out[hit & salt] = top
    out[hit & ~salt] = 0
    return out


def speckle_noise_image(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise: x * (1 + sigma * z), z standard normal per pixel and channel."""
    factor = standard_normal_f32(rng, image.shape)
    factor *= np.float32(sigma)
    factor += np.float32(1.0)
    if image.dtype == np.uint8:  # one OpenCV pass: multiply, round half to even, saturate
        return cv2.multiply(image, factor, dtype=cv2.CV_8U).reshape(image.shape)
    return _saturate(image.astype(np.float32) * factor, image.dtype)


def _saturate(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.clip(values, 0.0, 1.0).astype(dtype)


# ---------------------------------------------------------------------------
# Exact geometry: flips, rot90, transpose
# ---------------------------------------------------------------------------

# cv2 copies are ~20x faster than np.ascontiguousarray of a negatively strided view.
def hflip_image(image: np.ndarray) -> np.ndarray:
    return cv2.flip(image, 1).reshape(image.shape)


def vflip_image(image: np.ndarray) -> np.ndarray:
    return cv2.flip(image, 0).reshape(image.shape)


def transpose_image(image: np.ndarray) -> np.ndarray:
    return cv2.transpose(image).reshape(image.shape[1], image.shape[0], *image.shape[2:])


_ROTATE_CODES = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def rot90_image(image: np.ndarray, k: int) -> np.ndarray:
    """Rotate by k * 90 degrees counter-clockwise (as np.rot90 and albumentations)."""
    k %= 4
    if k == 0:
        return image.copy()
    h, w = image.shape[:2]
    size = (h, w) if k == 2 else (w, h)
    return cv2.rotate(image, _ROTATE_CODES[k]).reshape(*size, *image.shape[2:])


def masks_apply(masks: np.ndarray, image_kernel, *args) -> np.ndarray:
    """Apply an image kernel to each (H, W) mask of an (N, H, W) stack."""
    if len(masks) == 0:
        return masks
    return np.stack([image_kernel(m, *args) for m in masks])


def hflip_points(points: np.ndarray, width: int) -> np.ndarray:
    out = points.copy()
    out[:, 0] = width - points[:, 0]
    return out


def vflip_points(points: np.ndarray, height: int) -> np.ndarray:
    out = points.copy()
    out[:, 1] = height - points[:, 1]
    return out


def transpose_points(points: np.ndarray) -> np.ndarray:
    return points[:, ::-1].copy()


def rot90_points(points: np.ndarray, k: int, height: int, width: int) -> np.ndarray:
    """Points under `rot90_image(image, k)` of an image of the given size."""
    out = points.copy()
    for _ in range(k % 4):
        x, y = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0], out[:, 1] = y, width - x
        height, width = width, height
    return out


# ---------------------------------------------------------------------------
# Rotation by any angle
# ---------------------------------------------------------------------------

def rotation_matrix(angle: float, height: int, width: int,
                    expand: bool) -> tuple[np.ndarray, int, int]:
    """2x3 matrix (pixel-index coordinates, as cv2.warpAffine uses) rotating by
    `angle` degrees counter-clockwise about the image centre, and the output size.

    expand=True makes the canvas large enough to keep the whole image, plus at most one
    pixel per axis that keeps the input's pixel grid (see below); expand=False keeps the
    input size (corners are cut off).
    """
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(center, float(angle), 1.0)
    if not expand:
        return matrix, height, width
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    # 1e-6 keeps 90-degree rotations from growing by a pixel through cos(90) != 0.
    out_w = int(np.ceil(width * cos + height * sin - 1e-6))
    out_h = int(np.ceil(width * sin + height * cos - 1e-6))
    # The canvas keeps the input's pixel grid: its centre falls on a pixel centre where the
    # input's does and on a pixel corner where the input's does (the axes trade places for
    # angles nearer an odd number of quarter turns). Then a quarter turn maps pixels onto
    # pixels, and a rotation followed by its inverse is a whole-pixel shift; a half-pixel
    # centre made nearest-resampled masks drift by 1.5 px over three +30/-30 round trips.
    turned = round(angle / 90.0) % 2 == 1
    out_w += (out_w - (height if turned else width)) % 2
    out_h += (out_h - (width if turned else height)) % 2
    matrix[0, 2] += (out_w - width) / 2.0
    matrix[1, 2] += (out_h - height) / 2.0
    return matrix, out_h, out_w


def affine_image(image: np.ndarray, matrix: np.ndarray, height: int, width: int, *,
                 interpolation: str = "linear", border_mode: str = "constant",
                 fill: float = 0.0) -> np.ndarray:
    out = cv2.warpAffine(image, matrix, (width, height), flags=INTERPOLATIONS[interpolation],
                         borderMode=BORDER_MODES[border_mode], borderValue=_fill_value(fill))
    return out.reshape(height, width, *image.shape[2:])


def affine_masks(masks: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Masks move with nearest-neighbour sampling and a zero border whatever the image's
    border mode: reflected or replicated pixels are not the object."""
    if len(masks) == 0:
        return np.zeros((0, height, width), dtype=masks.dtype)
    return np.stack([cv2.warpAffine(m, matrix, (width, height), flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                     for m in masks])


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Continuous-coordinate points under a pixel-index affine matrix."""
    index = points - 0.5
    return index @ matrix[:, :2].T + matrix[:, 2] + 0.5


def _fill_value(fill: float | tuple[float, ...]) -> tuple[float, ...]:
    values = tuple(fill) if isinstance(fill, tuple | list) else (float(fill),)
    return (values * 4)[:4] if len(values) == 1 else values


# ---------------------------------------------------------------------------
# Boxes as points (any geometric transform moves points; boxes follow them)
# ---------------------------------------------------------------------------

def box_corner_points(box_xyxy: tuple[float, float, float, float]) -> np.ndarray:
    """The 4 corners: their bounding box after a rotation is the 'largest_box' method."""
    x1, y1, x2, y2 = box_xyxy
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def box_ellipse_points(box_xyxy: tuple[float, float, float, float], count: int = 72) -> np.ndarray:
    """Points on the ellipse inscribed in the box: their bounding box after a rotation is
    the 'ellipse' method (tighter for round objects). 72 points underestimate the
    exact ellipse extent by at most 0.1%."""
    x1, y1, x2, y2 = box_xyxy
    t = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def clip_polygon(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon (K, 2) to the image rectangle; (0, 2) if gone."""
    poly = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    for axis, limit, keep_below in ((0, 0.0, False), (0, width, True),
                                    (1, 0.0, False), (1, height, True)):
        if len(poly) == 0:
            break
        inside = poly[:, axis] <= limit if keep_below else poly[:, axis] >= limit
        out = []
        for i in range(len(poly)):
            cur, prev = poly[i], poly[i - 1]
            cur_in, prev_in = inside[i], inside[i - 1]
            if cur_in != prev_in:
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append(prev + t * (cur - prev))
            if cur_in:
                out.append(cur)
        poly = np.array(out, dtype=np.float64).reshape(-1, 2)
    return poly


def signed_area(points: np.ndarray) -> float:
    """Shoelace area, positive for the vertex order of `box_corner_points`; a mirroring
    transform turns the sign."""
    x, y = points[:, 0], points[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0


def polygon_area(points: np.ndarray) -> float:
    return abs(signed_area(points))
