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
    if not cv2_transposes(image):
        return np.ascontiguousarray(np.swapaxes(image, 0, 1))
    return cv2.transpose(image).reshape(image.shape[1], image.shape[0], *image.shape[2:])


def cv2_transposes(image: np.ndarray) -> bool:
    """Whether cv2.transpose/rotate have a kernel for the image's pixel size (bytes per pixel
    1, 2, 3, 4, 6, 8, 12, 16, 24 or 32: not 5 uint8 or 5 float32 channels)."""
    return image.itemsize * (image.shape[2] if image.ndim == 3 else 1) in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


# cv2.rotate's codes for k counter-clockwise quarter turns
ROTATE_CODES = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def rot90_image(image: np.ndarray, k: int) -> np.ndarray:
    """Rotate by k * 90 degrees counter-clockwise (as np.rot90 and albumentations)."""
    k %= 4
    if k == 0:
        return image.copy()
    if not cv2_transposes(image):
        return np.ascontiguousarray(np.rot90(image, k))
    h, w = image.shape[:2]
    size = (h, w) if k == 2 else (w, h)
    return cv2.rotate(image, ROTATE_CODES[k]).reshape(*size, *image.shape[2:])


def as_pixels_of(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A pixel transform's output as height x width x channels of the image it was given:
    albumentations returns 2-D gray images, and its ToGray/ToRGB squeeze an image one
    pixel high or wide (1x5 RGB came back as 5x3)."""
    if image.ndim == 3 and out.shape[:2] != image.shape[:2] or out.ndim < image.ndim:
        return out.reshape(*image.shape[:2], -1)
    return out


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
    out_w = math.ceil(width * cos + height * sin - 1e-6)
    out_h = math.ceil(width * sin + height * cos - 1e-6)
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
    _prefetch(image)
    out = cv2.warpAffine(image, matrix, (width, height), flags=INTERPOLATIONS[interpolation],
                         borderMode=BORDER_MODES[border_mode], borderValue=_fill_value(fill))
    return out.reshape(height, width, *image.shape[2:])


def affine_masks(masks: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Masks move with nearest-neighbour sampling and a zero border whatever the image's
    border mode: reflected or replicated pixels are not the object."""
    if len(masks) == 0:
        return np.zeros((0, height, width), dtype=masks.dtype)
    _prefetch(masks)
    return np.stack([cv2.warpAffine(m, matrix, (width, height), flags=cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                     for m in masks])


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Continuous-coordinate points under a pixel-index affine matrix."""
    index = points - 0.5
    return index @ matrix[:, :2].T + matrix[:, 2] + 0.5


def fill_tuple(fill: float | tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """A fill value (a number, or one per channel) as a tuple of floats."""
    return tuple(float(v) for v in fill) if isinstance(fill, tuple | list | np.ndarray) else (float(fill),)


def _fill_value(fill: float | tuple[float, ...]) -> tuple[float, ...]:
    values = fill_tuple(fill)
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
    if len(x) == 0:
        return 0.0
    cross = float(np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:]))
    return (cross + float(x[-1] * y[0] - y[-1] * x[0])) / 2.0


def polygon_area(points: np.ndarray) -> float:
    return abs(signed_area(points))


# ---------------------------------------------------------------------------
# One resample for a chain of geometric transforms: 3x3 matrices
# ---------------------------------------------------------------------------
# A matrix maps input pixel indices to output pixel indices (pixel i centred at i, as
# cv2.warpAffine/warpPerspective and cv2.resize use them); label points are continuous
# (pixel i spans i..i+1) and shift by 0.5 on the way in and out.

# Interpolations from worst to best; a chain resamples once with the best one it asked for.
INTERPOLATION_QUALITY = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
_EXACT_TOLERANCE = 1e-9
_PREFETCH_BYTES = 32 * 1024  # smaller images are read within the warp's first rows


def translation_matrix(dx: float, dy: float) -> np.ndarray:
    matrix = _EYE3.copy()  # 0.3 us; np.array of nested lists 0.9 us (made per sample)
    matrix[0, 2], matrix[1, 2] = dx, dy
    return matrix


_EYE3 = np.eye(3)


def resize_matrix(height: int, width: int, out_height: int, out_width: int) -> np.ndarray:
    """cv2.resize's map: pixel edges stay on pixel edges (x' = (x + 0.5) * sx - 0.5)."""
    return crop_resize_matrix(0, 0, height, width, out_height, out_width)


def crop_resize_matrix(x0: float, y0: float, height: int, width: int, out_height: int,
                       out_width: int) -> np.ndarray:
    """The window of height x width at (x0, y0) resized to out_height x out_width (as
    cv2.resize maps it): resize_matrix @ translation_matrix(-x0, -y0) in one step."""
    sx, sy = out_width / width, out_height / height
    return np.array([[sx, 0.0, 0.5 * sx - 0.5 - x0 * sx], [0.0, sy, 0.5 * sy - 0.5 - y0 * sy],
                     [0.0, 0.0, 1.0]])


def hflip_matrix(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def vflip_matrix(height: int) -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, height - 1.0], [0.0, 0.0, 1.0]])


def transpose_matrix() -> np.ndarray:
    return np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def rot90_matrix(k: int, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """`rot90_image(image, k)` as a matrix, and the output size."""
    k %= 4
    if k == 0:
        return _EYE3.copy(), height, width
    if k == 1:  # one counter-clockwise quarter turn: (x, y) -> (y, W - 1 - x)
        flat = (0.0, 1.0, 0.0, -1.0, 0.0, width - 1.0)
    elif k == 2:  # (x, y) -> (W - 1 - x, H - 1 - y)
        flat = (-1.0, 0.0, width - 1.0, 0.0, -1.0, height - 1.0)
    else:  # one clockwise: (x, y) -> (H - 1 - y, x)
        flat = (0.0, -1.0, height - 1.0, 1.0, 0.0, 0.0)
    matrix = np.array(flat + (0.0, 0.0, 1.0)).reshape(3, 3)
    return (matrix, height, width) if k == 2 else (matrix, width, height)


def as_3x3(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape == (3, 3):
        return matrix
    out = np.empty((3, 3))
    out[:2] = matrix[:2]
    out[2] = (0.0, 0.0, 1.0)
    return out


def is_affine(matrix: np.ndarray) -> bool:
    return abs(matrix[2, 0]) < 1e-12 and abs(matrix[2, 1]) < 1e-12 and abs(matrix[2, 2] - 1.0) < 1e-12


def exact_map(matrix: np.ndarray) -> tuple[int, int, int, int, int, int] | None:
    """(a, b, c, d, tx, ty) when the matrix moves whole pixels onto whole pixels (flips,
    quarter turns, transposes, integer crops and pads): its 2x2 part a signed permutation,
    its shift whole numbers. Such a map needs no interpolation at all."""
    (a, b, tx), (c, d, ty), (g, h, i) = matrix.tolist()  # plain floats: this runs per sample
    if abs(g) > 1e-12 or abs(h) > 1e-12 or abs(i - 1.0) > 1e-12:
        return None
    rounded = ra, rb, rc, rd, rx, ry = round(a), round(b), round(c), round(d), round(tx), round(ty)
    if abs(ra) + abs(rb) != 1 or abs(rc) + abs(rd) != 1 or abs(ra) == abs(rc):
        return None  # not a signed permutation
    tol = _EXACT_TOLERANCE
    if abs(a - ra) > tol or abs(b - rb) > tol or abs(c - rc) > tol or abs(d - rd) > tol or \
            abs(tx - rx) > tol or abs(ty - ry) > tol:
        return None
    return rounded


def warp_image(image: np.ndarray, matrix: np.ndarray, height: int, width: int, *,
               interpolation: int = cv2.INTER_LINEAR, border_mode: int = cv2.BORDER_CONSTANT,
               fill: float | tuple[float, ...] = 0.0) -> np.ndarray:
    """`image` resampled once under a 3x3 matrix into a height x width output.

    Whole-pixel maps (exact_map) are copies (cv2.flip/rotate/transpose of a window, with a
    constant border around it where the map reaches outside the image) or, for other
    borders, a nearest-neighbour warp: no interpolation blur. Otherwise cv2.warpAffine
    (affine matrices) or cv2.warpPerspective, with the given interpolation and border."""
    exact = exact_map(matrix)
    if exact is not None:
        copied = _exact_copy(image, exact, height, width, border_mode, fill)
        if copied is not None:
            return copied
        interpolation = cv2.INTER_NEAREST
    elif interpolation != cv2.INTER_NEAREST:  # cv2.resize's nearest is not centred: warp it
        resized = _axis_aligned_resize(image, matrix, height, width, interpolation)
        if resized is not None:
            return resized
    value = _fill_value(fill)
    out = []
    for chunk in _channel_chunks(image):
        _prefetch(chunk)
        if is_affine(matrix):
            warped = cv2.warpAffine(chunk, matrix[:2], (width, height), flags=interpolation,
                                    borderMode=border_mode, borderValue=value)
        else:
            warped = cv2.warpPerspective(chunk, matrix, (width, height), flags=interpolation,
                                         borderMode=border_mode, borderValue=value)
        out.append(warped.reshape(height, width, -1))
    result = out[0] if len(out) == 1 else np.concatenate(out, axis=2)
    return result.reshape(height, width, *image.shape[2:])


def _prefetch(array: np.ndarray) -> None:
    """Read an array once, in order. A rotating warp reads its input along slanted lines,
    which defeats the CPU's prefetcher: on an image not in cache it waits for every line
    (640x480 RGB: 2.0 ms). A sequential read first brings the image in at full speed
    (0.04 ms; the warp then takes 0.75 ms)."""
    if array.nbytes > _PREFETCH_BYTES:
        cv2.sumElems(array.reshape(array.shape[0], -1) if array.ndim > 3 or
                     (array.ndim == 3 and array.shape[2] > 4) else array)


def _channel_chunks(image: np.ndarray) -> list[np.ndarray]:
    """cv2's warps take at most 4 channels."""
    if image.ndim < 3 or image.shape[2] <= 4:
        return [image]
    return [image[:, :, i:i + 4] for i in range(0, image.shape[2], 4)]


def _exact_copy(image: np.ndarray, exact: tuple[int, ...], height: int, width: int,
                border_mode: int = cv2.BORDER_CONSTANT, fill=0.0) -> np.ndarray | None:
    """The output of a whole-pixel map as a copy: the input window it shows, flipped or
    turned into its place (cv2 writing into the output), and a constant border where it
    shows no input (a pad, a crop past the edge). The same pixels as the nearest-neighbour
    warp, 1.7x (32x32) to 6x (640x480) faster. None when another border would show, or a
    per-channel fill on more than 4 channels (cv2's warps fill each 4-channel chunk alike)."""
    a, b, c, d, tx, ty = exact
    h, w = image.shape[:2]
    # Output x' reads input x (b == 0) or y, output y' the other axis: x' = s * src + t.
    (sx, nx), (sy, ny) = ((a, w), (d, h)) if b == 0 else ((b, h), (c, w))
    (ox0, ox1), (ix0, ix1) = _shown_range(sx, tx, nx, width)
    (oy0, oy1), (iy0, iy1) = _shown_range(sy, ty, ny, height)
    pixel = None
    if (ox0, oy0, ox1, oy1) != (0, 0, width, height):  # a border shows
        pixel = _border_pixel(image, fill) if border_mode == cv2.BORDER_CONSTANT else None
        if pixel is None:
            return None
    out = np.empty((height, width, *image.shape[2:]), dtype=image.dtype)
    if pixel is not None:  # the border strips (numpy's call costs more than a tiny strip)
        if oy0:
            out[:oy0] = pixel
        if oy1 < height:
            out[oy1:] = pixel
        if ox0:
            out[oy0:oy1, :ox0] = pixel
        if ox1 < width:
            out[oy0:oy1, ox1:] = pixel
    if ox1 > ox0 and oy1 > oy0:
        window = image[iy0:iy1, ix0:ix1] if b == 0 else image[ix0:ix1, iy0:iy1]
        _turned_into(window, a, b, c, d, out[oy0:oy1, ox0:ox1])
    return out


def _shown_range(s: int, t: int, n: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """For an output axis of `size` pixels reading an input axis of `n` under out = s * in
    + t (s = +-1): the output range [o0, o1) that shows input, and the input range it shows."""
    lo, hi = (t, t + n) if s > 0 else (t - n + 1, t + 1)
    o0, o1 = max(lo, 0), min(hi, size)
    if o1 <= o0:
        return (0, 0), (0, 0)
    return (o0, o1), ((o0 - t, o1 - t) if s > 0 else (t - o1 + 1, t - o0 + 1))


def _turned_into(window: np.ndarray, a: int, b: int, c: int, d: int, dst: np.ndarray) -> None:
    """`dst` = the window under the whole-pixel map's 2x2 part (flips, quarter turns,
    transposes), written in place by cv2 where it has a kernel."""
    if b != 0 and not cv2_transposes(window):
        np.copyto(dst, np.swapaxes(window, 0, 1)[:: -1 if c < 0 else 1, :: -1 if b < 0 else 1])
        return
    if b != 0:  # the axes trade places: x' = b * y, y' = c * x
        flip_cols, flip_rows = b < 0, c < 0
        if flip_cols and not flip_rows:
            out = cv2.rotate(window, cv2.ROTATE_90_CLOCKWISE, dst=dst)
        elif flip_rows and not flip_cols:
            out = cv2.rotate(window, cv2.ROTATE_90_COUNTERCLOCKWISE, dst=dst)
        else:  # transpose, or transpose then half turn (which commute)
            out = cv2.transpose(cv2.flip(window, -1) if flip_rows else window, dst=dst)
    else:
        code = _FLIP_CODES.get((a < 0, d < 0))
        if code is None:
            np.copyto(dst, window)
            return
        out = cv2.flip(window, code, dst=dst)
    if out is not dst:  # cv2 made its own array (a view it could not write through)
        np.copyto(dst, out.reshape(dst.shape))


_FLIP_CODES = {(True, False): 1, (False, True): 0, (True, True): -1}  # (x flips, y flips): cv2.flip's code


def _border_pixel(image: np.ndarray, fill) -> np.ndarray | None:
    """The pixel a constant border shows in cv2's warps of `image` (the fill rounded and
    saturated to its dtype, by cv2 itself); None for a per-channel fill on more than 4
    channels."""
    channels = image.shape[2] if image.ndim == 3 else 1
    key = (fill if isinstance(fill, tuple | float | int) else fill_tuple(fill), image.dtype, image.shape[2:])
    pixel = _BORDER_PIXELS.get(key)
    if pixel is None:
        values = fill_tuple(fill)
        if channels > 4 and len(set(values)) > 1:
            return None
        probe = np.zeros((1, 1, min(channels, 4)), dtype=image.dtype)
        shown = cv2.warpAffine(probe, np.array([[1.0, 0.0, 9.0], [0.0, 1.0, 9.0]]), (1, 1),
                               flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=_fill_value(values))
        pixel = np.resize(shown.reshape(-1), channels) if image.ndim == 3 else shown.reshape(-1)[0]
        if len(_BORDER_PIXELS) > 256:
            _BORDER_PIXELS.clear()
        _BORDER_PIXELS[key] = pixel
    return pixel


_BORDER_PIXELS: dict = {}


def _axis_aligned_resize(image: np.ndarray, matrix: np.ndarray, height: int, width: int,
                         interpolation: int) -> np.ndarray | None:
    """A scale (with flips) of a whole-pixel window inside the image -- a crop and resize --
    as cv2.resize of that window: the same map as the warp, ~1.5x faster on a cold image.
    None for any other matrix."""
    (sx, b, tx), (c, sy, ty), (g, h, i) = matrix.tolist()
    if b != 0 or c != 0 or g != 0 or h != 0 or i != 1 or sx == 0 or sy == 0:
        return None
    # The output frame's pixel edges (-0.5 .. size - 0.5) back in the input.
    edges = []
    for a, b in (((-0.5 - tx) / sx + 0.5, (width - 0.5 - tx) / sx + 0.5),
                 ((-0.5 - ty) / sy + 0.5, (height - 0.5 - ty) / sy + 0.5)):
        for v in ((a, b) if a <= b else (b, a)):
            r = round(v)
            if abs(v - r) > 1e-6:
                return None
            edges.append(r)
    x0, x1, y0, y1 = edges
    h, w = image.shape[:2]
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 <= x0 or y1 <= y0:
        return None
    out = cv2.resize(image[y0:y1, x0:x1], (width, height), interpolation=interpolation)
    if sx < 0 or sy < 0:
        out = cv2.flip(out, -1 if sx < 0 and sy < 0 else 1 if sx < 0 else 0)
    return out.reshape(height, width, *image.shape[2:])


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) 0/1 masks as ceil(N / 8) uint8 planes, bit k of plane p for mask 8p + k:
    a nearest-neighbour warp moves bits exactly, so one warp per plane moves 8 masks."""
    count, h, w = masks.shape
    planes = np.zeros(((count + 7) // 8, h, w), dtype=np.uint8)
    scratch = np.empty((h, w), dtype=np.uint8)
    for k in range(count):
        byte_table(masks[k], _BIT_SET[k % 8], out=scratch)
        cv2.bitwise_or(planes[k // 8], scratch, dst=planes[k // 8])
    return planes


def unpack_masks(planes: np.ndarray, count: int) -> np.ndarray:
    """pack_masks' inverse: (count, H, W) uint8 masks of 0 and 1."""
    out = np.empty((count, *planes.shape[1:]), dtype=np.uint8)
    for k in range(count):
        byte_table(planes[k // 8], _BIT_GET[k % 8], out=out[k])
    return out


# _BIT_SET[k][v]: bit k set when v is nonzero; _BIT_GET[k][v]: bit k of v (0 or 1).
_BIT_SET = np.array([[0] + [1 << k] * 255 for k in range(8)], dtype=np.uint8)
_BIT_GET = np.array([[(v >> k) & 1 for v in range(256)] for k in range(8)], dtype=np.uint8)


def warp_masks(masks: np.ndarray, matrix: np.ndarray, height: int, width: int,
               outside: list[np.ndarray] = ()) -> np.ndarray:
    """(N, H, W) uint8 masks under a 3x3 matrix: nearest neighbour, zero border (pixels
    brought in from outside are not the object), eight masks per warp (pack_masks); zero
    outside the `outside` quadrilaterals too (fill_outside)."""
    if len(masks) == 0:
        return np.zeros((0, height, width), dtype=np.uint8)
    planes = pack_masks(masks)
    warped = np.stack([warp_image(p, matrix, height, width, interpolation=cv2.INTER_NEAREST)
                       for p in planes])
    for plane in warped if len(outside) else ():
        fill_outside(plane, outside, 0)
    return unpack_masks(warped, len(masks))


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Continuous-coordinate points under a pixel-index 3x3 matrix (projective)."""
    if len(points) == 0:
        return points.copy()
    index = np.hstack([points - 0.5, np.ones((len(points), 1))]) @ matrix.T
    w = index[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, np.copysign(1e-12, w), w)
    return index[:, :2] / w + 0.5


# Frames and quadrilaterals are 4 (x, y) tuples in pixel-index coordinates, computed in
# plain Python: numpy's per-call cost dominates on 4 points (a chain plans them per sample).
Quad = list[tuple[float, float]]


def frame_corners(height: int, width: int) -> Quad:
    """The image frame's corners (pixel edges at -0.5 and size - 0.5), clockwise on screen."""
    return [(-0.5, -0.5), (width - 0.5, -0.5), (width - 0.5, height - 0.5), (-0.5, height - 0.5)]


def map_corners(corners: Quad, matrix: np.ndarray) -> Quad | None:
    """Points under a 3x3 matrix; None when one lands at or beyond the horizon (the mapped
    frame is then no bounded quadrilateral)."""
    (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
    out = []
    for x, y in corners:
        w = g * x + h * y + i
        if w <= 1e-9:
            return None
        out.append(((a * x + b * y + c) / w, (d * x + e * y + f) / w))
    return out


def covers(quad: Quad, height: int, width: int, tolerance: float = 1e-6) -> bool:
    """Whether a convex quadrilateral contains the whole height x width frame."""
    edges = [(quad[k], quad[(k + 1) % 4]) for k in range(4)]
    area = sum(ax * by - bx * ay for (ax, ay), (bx, by) in edges)
    sign = 1.0 if area >= 0 else -1.0
    for px, py in frame_corners(height, width):
        for (ax, ay), (bx, by) in edges:
            ex, ey = bx - ax, by - ay
            if sign * (ex * (py - ay) - ey * (px - ax)) < -tolerance * (abs(ex) + abs(ey)):
                return False
    return True


def inside_frame(quad: Quad, height: int, width: int, tolerance: float = 1e-6) -> bool:
    """Whether a quadrilateral lies inside the height x width frame."""
    return all(-0.5 - tolerance <= x <= width - 0.5 + tolerance and
               -0.5 - tolerance <= y <= height - 0.5 + tolerance for x, y in quad)


def fill_outside(image: np.ndarray, quads: list[Quad], value) -> np.ndarray:
    """`image` (changed in place) with the pixels outside any of the convex quadrilaterals
    set to `value`. Each is one cv2.fillPoly of the frame and the quadrilateral (even-odd:
    the frame minus the quadrilateral), which also paints the pixels its edges pass
    through: the quadrilateral is grown by half a pixel first, so that pixels whose centres
    lie inside stay as they are and those outside are set (grown by a whole pixel, a crop
    then a pad kept the row and column the crop had cut away next to its window)."""
    height, width = image.shape[:2]
    frame = np.array([[-2, -2], [width + 1, -2], [width + 1, height + 1], [-2, height + 1]], np.int32) << _SHIFT
    channels = image.shape[2] if image.ndim == 3 else 1
    values = fill_tuple(value) * channels if len(fill_tuple(value)) == 1 else fill_tuple(value)
    for quad in quads:
        contours = [frame, np.round(np.array(_grown(quad, 0.5)) * (1 << _SHIFT)).astype(np.int32)]
        for i in range(0, channels, 4):  # cv2 draws on at most 4 channels
            part = image if channels <= 4 else np.ascontiguousarray(image[:, :, i:i + 4])
            cv2.fillPoly(part, contours, values[i:i + 4] if channels > 1 else values[:1],
                         lineType=cv2.LINE_8, shift=_SHIFT)
            if part is not image:
                image[:, :, i:i + 4] = part
    return image


_SHIFT = 8  # fractional bits of fillPoly's coordinates


def _grown(quad: Quad, margin: float) -> Quad:
    """A convex quadrilateral with every edge moved `margin` outward."""
    cx, cy = sum(x for x, _ in quad) / 4, sum(y for _, y in quad) / 4
    normals = []
    for k in range(4):
        (ax, ay), (bx, by) = quad[k], quad[(k + 1) % 4]
        length = math.hypot(bx - ax, by - ay) or 1.0
        nx, ny = (by - ay) / length, -(bx - ax) / length
        if nx * (cx - ax) + ny * (cy - ay) > 0:
            nx, ny = -nx, -ny  # outward
        normals.append((nx, ny))
    out = []
    for k in range(4):  # vertex k joins edges k - 1 and k
        (px, py), (qx, qy) = normals[k - 1], normals[k]
        scale = margin / max(1.0 + px * qx + py * qy, 1e-3)
        out.append((quad[k][0] + (px + qx) * scale, quad[k][1] + (py + qy) * scale))
    return out


# ---------------------------------------------------------------------------
# Colour: lookup tables (uint8 point-wise transforms compose into one table)
# ---------------------------------------------------------------------------

def ramp_image(channels: int) -> np.ndarray:
    """A 1 x 256 image whose pixel v is (v, v, ...): a point-wise transform applied to it
    gives its lookup table, one row per channel."""
    return np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), channels, axis=2)


def tables_of(ramp_out: np.ndarray) -> np.ndarray:
    """Tables from a point-wise transform's output on ramp_image: (1, 256) when every
    channel got the same one (then one table pass serves all channels), else (C, 256)."""
    out = np.ascontiguousarray(np.asarray(ramp_out).reshape(256, -1).T)
    return out[:1] if (out == out[0]).all() else out


def compose_tables(first: np.ndarray | None, then: np.ndarray) -> np.ndarray:
    """Tables of `then` after `first` (None: no tables yet). (1, 256) tables apply to
    every channel; a mix of (1, 256) and (C, 256) gives (C, 256)."""
    if first is None:
        return then
    return np.take_along_axis(then, first.astype(np.intp), axis=1)


def lut_image(image: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Each channel through its uint8 table ((1, 256): one for all): at memory speed for a
    shared table (stringzilla, albumentations' own LUT kernel), per plane otherwise (4x
    cv2.LUT with three tables)."""
    if len(tables) == 1:
        return byte_table(image, tables[0])
    if len(tables) <= 4:
        planes = cv2.split(image)
        return cv2.merge([byte_table(p, t, out=p) for p, t in zip(planes, tables)]).reshape(image.shape)
    lut = np.ascontiguousarray(tables.T).reshape(256, 1, len(tables))
    return cv2.LUT(image, lut).reshape(image.shape)


def byte_table(image: np.ndarray, table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """image mapped through one 256-entry uint8 table (into `out` when given, which may be
    the image itself)."""
    if out is None:
        out = np.array(image, order="C", copy=True)
    elif out is not image:
        np.copyto(out, image)
    if _translate is None or not out.flags.c_contiguous:
        return cv2.LUT(out, table, dst=out).reshape(out.shape)
    _translate(memoryview(out), memoryview(np.ascontiguousarray(table)), inplace=True)
    return out


try:  # albucore's dependency (albumentations -> albucore -> stringzilla): SIMD byte tables
    from stringzilla import translate as _translate
except ImportError:  # pragma: no cover - cv2.LUT serves, 10x slower on large images
    _translate = None


def hsv_lut_image(image: np.ndarray, tables: list[np.ndarray | None], full: bool = False) -> np.ndarray:
    """RGB uint8 to OpenCV's HSV, each channel through its table (None: left as it is),
    back to RGB. H in 0..179 (2-degree steps), or with `full` in 0..255 (1.4-degree steps;
    OpenCV converts back 1.5x faster)."""
    to_hsv, to_rgb = (cv2.COLOR_RGB2HSV_FULL, cv2.COLOR_HSV2RGB_FULL) if full else \
        (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)
    planes = cv2.split(cv2.cvtColor(image, to_hsv))
    for plane, table in zip(planes, tables):
        if table is not None:
            byte_table(plane, table, out=plane)
    return cv2.cvtColor(cv2.merge(planes), to_rgb)


def affine_float_image(image: np.ndarray, subtract: tuple[float, ...], multiply: tuple[float, ...]) -> np.ndarray:
    """(image - subtract) * multiply as float32 per channel (cv2 scalars: one value per
    channel, 4 values; Normalize's formula in the float32 arithmetic of its lookup table,
    2x faster than a float table on 3 channels)."""
    out = image.astype(np.float32)
    if out.ndim == 3 and out.shape[2] > 4:
        channels = out.shape[2]
        out -= np.asarray(subtract[:channels], dtype=np.float32)
        out *= np.asarray(multiply[:channels], dtype=np.float32)
        return out
    cv2.subtract(out, subtract, dst=out)
    cv2.multiply(out, multiply, dst=out)
    return out


def cv2_scalar(values, channels: int) -> tuple[float, ...]:
    """One value per channel (a single value for all) as a tuple cv2 takes as a Scalar
    (at least 4 values)."""
    flat = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    if len(flat) == 1:
        flat *= channels
    return tuple(flat) + (0.0,) * max(0, 4 - len(flat))


def mix_channels_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out[c] = sum_k matrix[c, k] * in[k], rounded and saturated (one OpenCV pass)."""
    return cv2.transform(image, np.asarray(matrix, dtype=np.float32)).reshape(image.shape)


# cv2.COLOR_RGB2GRAY's weights.
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def gray_mean(image: np.ndarray) -> float:
    """Mean of the image's gray version (RGB2GRAY's weights; 1 channel: the image itself),
    the statistic albumentations' contrast takes: from the channel means in one pass,
    without cv2's per-pixel rounding of gray (< 0.5 level apart)."""
    means = cv2.mean(image)
    if image.ndim == 2 or image.shape[2] == 1:
        return float(means[0])
    return 0.299 * means[0] + 0.587 * means[1] + 0.114 * means[2]  # GRAY_WEIGHTS
