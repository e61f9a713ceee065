"""imgsynth's own transforms: thin classes that sample parameters and call kernels.

They work on `Targets` (image, instance masks, label points) like the
albumentations steps of a pipeline, so both kinds mix freely in one recipe. Their
recipe names carry the `imgsynth.` prefix so they never clash with albumentations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from imgsynth.augment import functional as F

OWN_TRANSFORMS: dict[str, type[Transform]] = {}


@dataclass
class Warp:
    """One geometric transform as drawn for one sample: what a compiled chain composes.

    matrix: 3x3, input pixel indices to output pixel indices (pixel i centred at i).
    interpolation: the cv2 flag it resamples with; None when it moves whole pixels only
    (flips, quarter turns, crops, pads). border: (cv2 border mode, fill) when it shows
    pixels from outside its input; None when it never does.
    """

    matrix: np.ndarray
    height: int
    width: int
    interpolation: int | None = None
    border: tuple[int, tuple[float, ...]] | None = None


@dataclass
class Targets:
    """What a geometric transform must move together.

    masks: (N, H, W) uint8 instance masks. points: (P, 2) float64 continuous
    coordinates: polygon vertices, keypoints and the points that stand for boxes.
    box_points: for each instance, the rows of `points` that stand for its box
    (transforms move points but never add or remove them, so these stay valid).
    """

    image: np.ndarray
    masks: np.ndarray
    points: np.ndarray
    box_points: tuple[slice, ...] = ()

    def boxes(self) -> np.ndarray:
        """(N, 4) xyxy boxes around each instance's box points, clipped to the image;
        for transforms that choose their parameters from the boxes (bbox-safe crops)."""
        boxes = np.array([[*self.points[s].min(axis=0), *self.points[s].max(axis=0)]
                          for s in self.box_points], dtype=np.float64).reshape(-1, 4)
        return np.clip(boxes, 0.0, [self.width, self.height, self.width, self.height])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def register(cls: type[Transform]) -> type[Transform]:
    OWN_TRANSFORMS[cls.name] = cls
    return cls


def value_range(value: float | list | tuple, what: str, low: float, high: float) -> tuple[float, float]:
    """A number or a [min, max] pair, checked against [low, high]."""
    pair = tuple(value) if isinstance(value, list | tuple) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int | float) for v in pair):
        raise ValueError(f"{what} must be a number or a [min, max] pair, got {value!r}")
    lo, hi = float(pair[0]), float(pair[1])
    if lo > hi or lo < low or hi > high:
        raise ValueError(f"{what} must lie in [{low}, {high}] with min <= max, got {value!r}")
    return lo, hi


def probability(p: float) -> float:
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


class Transform:
    """Applied with probability p; the p draw always comes first from the sample's Generator."""

    name: ClassVar[str]

    def __init__(self, p: float):
        self.p = probability(p)

    def __call__(self, targets: Targets, rng: np.random.Generator) -> Targets:
        if rng.random() >= self.p:
            return targets
        return self.apply(targets, rng)

    def apply(self, targets: Targets, rng: np.random.Generator) -> Targets:
        raise NotImplementedError


@register
class GaussianNoise(Transform):
    """Additive Gaussian noise; sigma in 0..255 pixel units, per channel or luminance only."""

    name = "imgsynth.GaussianNoise"

    def __init__(self, sigma: float | list[float] = (3.0, 12.0), per_channel: bool = True,
                 p: float = 1.0):
        super().__init__(p)
        self.sigma = value_range(sigma, "sigma", 0.0, 255.0)
        self.per_channel = bool(per_channel)

    def apply(self, targets, rng):
        sigma = rng.uniform(*self.sigma)
        image = F.gaussian_noise_image(targets.image, sigma, rng, per_channel=self.per_channel)
        return replace(targets, image=image)


@register
class PoissonNoise(Transform):
    """Shot noise; `peak` is the photon count of a white pixel (lower: noisier)."""

    name = "imgsynth.PoissonNoise"

    def __init__(self, peak: float | list[float] = (20.0, 200.0), p: float = 1.0):
        super().__init__(p)
        self.peak = value_range(peak, "peak", 1e-3, 1e9)

    def apply(self, targets, rng):
        peak = rng.uniform(*self.peak)
        return replace(targets, image=F.poisson_noise_image(targets.image, peak, rng))


@register
class SaltPepper(Transform):
    """A fraction `amount` of pixels set to white or black (`salt_fraction` of them white)."""

    name = "imgsynth.SaltPepper"

    def __init__(self, amount: float | list[float] = (0.001, 0.02), salt_fraction: float = 0.5,
                 p: float = 1.0):
        super().__init__(p)
        self.amount = value_range(amount, "amount", 0.0, 1.0)
        self.salt_fraction = value_range(salt_fraction, "salt_fraction", 0.0, 1.0)[0]

    def apply(self, targets, rng):
        amount = rng.uniform(*self.amount)
        image = F.salt_pepper_image(targets.image, amount, self.salt_fraction, rng)
        return replace(targets, image=image)


@register
class SpeckleNoise(Transform):
    """Multiplicative noise x * (1 + sigma * z); sigma relative to the pixel value."""

    name = "imgsynth.SpeckleNoise"

    def __init__(self, sigma: float | list[float] = (0.05, 0.2), p: float = 1.0):
        super().__init__(p)
        self.sigma = value_range(sigma, "sigma", 0.0, 10.0)

    def apply(self, targets, rng):
        sigma = rng.uniform(*self.sigma)
        return replace(targets, image=F.speckle_noise_image(targets.image, sigma, rng))


@register
class Rotate(Transform):
    """Rotation by an angle drawn from `limit` (degrees, counter-clockwise).

    expand=True grows the canvas to keep the whole image; False keeps the size and
    crops the corners. Labels move exactly with the pixels.
    """

    name = "imgsynth.Rotate"

    def __init__(self, limit: float | list[float] = (-30.0, 30.0), expand: bool = False,
                 border_mode: str = "constant", fill: float | list[float] = 0,
                 interpolation: str = "linear", p: float = 1.0):
        super().__init__(p)
        if isinstance(limit, int | float):
            limit = (-abs(limit), abs(limit))
        self.limit = value_range(limit, "limit", -360.0, 360.0)
        self.expand = bool(expand)
        if border_mode not in F.BORDER_MODES:
            raise ValueError(f"border_mode must be one of {sorted(F.BORDER_MODES)}, got {border_mode!r}")
        if interpolation not in F.INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(F.INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        self.border_mode = border_mode
        self.fill = tuple(fill) if isinstance(fill, list | tuple) else float(fill)
        self.interpolation = interpolation
        self._interpolation = F.INTERPOLATIONS[interpolation]
        self._border = (F.BORDER_MODES[border_mode], F.fill_tuple(self.fill))

    def warp(self, rng: np.random.Generator, height: int, width: int) -> Warp:
        """The rotation `apply` draws, as a Warp (for a compiled chain)."""
        angle = rng.uniform(*self.limit)
        matrix, out_h, out_w = F.rotation_matrix(angle, height, width, self.expand)
        return Warp(F.as_3x3(matrix), out_h, out_w, self._interpolation, self._border)

    def apply(self, targets, rng):
        angle = rng.uniform(*self.limit)
        matrix, height, width = F.rotation_matrix(angle, targets.height, targets.width, self.expand)
        image = F.affine_image(targets.image, matrix, height, width, interpolation=self.interpolation,
                               border_mode=self.border_mode, fill=self.fill)
        return replace(targets, image=image,
                       masks=F.affine_masks(targets.masks, matrix, height, width),
                       points=F.affine_points(targets.points, matrix))


@register
class HorizontalFlip(Transform):
    """Mirror left-right; boxes and points map exactly (x -> W - x)."""

    name = "imgsynth.HorizontalFlip"

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def warp(self, rng, height, width):
        return Warp(F.hflip_matrix(width), height, width)

    def apply(self, targets, rng):
        return replace(targets, image=F.hflip_image(targets.image),
                       masks=F.masks_apply(targets.masks, F.hflip_image),
                       points=F.hflip_points(targets.points, targets.width))


@register
class VerticalFlip(Transform):
    """Mirror top-bottom; boxes and points map exactly (y -> H - y)."""

    name = "imgsynth.VerticalFlip"

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def warp(self, rng, height, width):
        return Warp(F.vflip_matrix(height), height, width)

    def apply(self, targets, rng):
        return replace(targets, image=F.vflip_image(targets.image),
                       masks=F.masks_apply(targets.masks, F.vflip_image),
                       points=F.vflip_points(targets.points, targets.height))


@register
class Transpose(Transform):
    """Swap rows and columns (mirror about the main diagonal)."""

    name = "imgsynth.Transpose"

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def warp(self, rng, height, width):
        return Warp(F.transpose_matrix(), width, height)

    def apply(self, targets, rng):
        return replace(targets, image=F.transpose_image(targets.image),
                       masks=F.masks_apply(targets.masks, F.transpose_image),
                       points=F.transpose_points(targets.points))


@register
class Rot90(Transform):
    """Rotate by k * 90 degrees counter-clockwise, k drawn from 0..3 (as albumentations)."""

    name = "imgsynth.Rot90"

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def warp(self, rng, height, width):
        return Warp(*F.rot90_matrix(int(rng.integers(0, 4)), height, width))

    def apply(self, targets, rng):
        k = int(rng.integers(0, 4))
        return replace(targets, image=F.rot90_image(targets.image, k),
                       masks=F.masks_apply(targets.masks, F.rot90_image, k),
                       points=F.rot90_points(targets.points, k, targets.height, targets.width))
