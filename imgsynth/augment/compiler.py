"""A recipe's transform list compiled: one warp and one colour pass per sample.

Every transform draws its parameters exactly as the unfused pipeline (pipeline.py) draws
them: the same Generator, in the same order, albumentations' own parameter code for its
transforms. What changes is how the drawn transforms are applied:

- geometric transforms (flips, quarter turns, rotations, affine, perspective, crops,
  resizes, pads) become `Warp`s; consecutive ones compose into one 3x3 matrix and one
  output size, applied once: the image with the best interpolation the chain asked for,
  masks with nearest neighbour (eight per warp), label points by the matrix;
- point-wise colour transforms on uint8 (brightness, contrast, gamma, levels, invert,
  posterize, solarize, channel shuffle and dropout, RGB shift, white balance,
  hue/saturation/value, ColorJitter) become lookup tables, composed into as few passes as
  their kinds allow; Normalize and ToFloat become the final uint8 -> float32 conversion;
- anything else (blur, noise, JPEG, elastic and other nonlinear warps, box-aware crops,
  imgsynth's noise) is a barrier: what is pending is applied, then it runs as before
  (GaussNoise in bands of rows, with its own numbers: BANDED).

Colour passes commute with warps (a pixel's new value depends on its old value only), so
a segment's colour pass runs on one side of its warp (Segment._colour_first): where the
recipe has its colour ops, or on a side with at most half the pixels when no border fill
would be coloured differently; a colour op that reads an image statistic (ColorJitter's
contrast: the mean gray) reads it from the image the unfused chain would give it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from imgsynth.augment import functional as F
from imgsynth.augment.transforms import Targets, Warp
from imgsynth.core.rng import derived_int_seed

# ---------------------------------------------------------------------------
# Colour ops (uint8 in; the last may give float32)
# ---------------------------------------------------------------------------


@dataclass
class Lut:
    """uint8 tables: (1, 256) for every channel, or (C, 256) one per channel."""

    tables: np.ndarray


@dataclass
class ContrastLut:
    """torchvision's contrast: x * factor + mean_gray * (1 - factor), the mean taken from
    the image as it is at this point of the chain."""

    factor: float

    def tables(self, mean: float) -> np.ndarray:
        if self.factor == 0:
            return np.full((1, 256), int(mean + 0.5), dtype=np.uint8)
        # albucore.multiply_add's table (tests/augment/test_compiler.py checks it)
        factor = float(self.factor)
        return _clip_levels(_LEVELS * factor + float(mean) * (1 - factor))


_LEVELS = np.arange(256, dtype=np.float32)


def _clip_levels(values: np.ndarray) -> np.ndarray:
    """256 float32 values clipped to 0..255 as a (1, 256) uint8 table (two ufuncs: np.clip's
    Python wrapper costs more than the 256 values, and tables are made per sample)."""
    return np.minimum(np.maximum(values, 0, out=values), 255, out=values).astype(np.uint8)[None]


@dataclass
class HsvLut:
    """Tables for OpenCV's H, S and V channels (None leaves a channel as it is); H in
    0..179, or with `full` in 0..255."""

    tables: list
    full: bool = False


@dataclass
class ChannelMix:
    """out[c] = sum_k matrix[c, k] * in[k] (saturation: a blend with the gray image)."""

    matrix: np.ndarray


@dataclass
class ChannelOrder:
    order: list[int]


@dataclass
class FloatAffine:
    """uint8 -> float32 (x - subtract) * multiply per channel, as cv2 scalars (F.cv2_scalar):
    Normalize, ToFloat. Ends a colour program."""

    subtract: tuple[float, ...]
    multiply: tuple[float, ...]
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Small images through the op's own float table (its values on every level, one
        cv2.LUT call: 2.7 instead of 4.7 us at 32x32x3; slower per pixel above ~48x48)."""
        channels = image.shape[2] if image.ndim == 3 else 1
        if image.size > _FLOAT_TABLE_VALUES or channels > 4:
            return F.affine_float_image(image, self.subtract, self.multiply)
        table = self._tables.get(channels)
        if table is None:
            table = self._tables[channels] = F.affine_float_image(F.ramp_image(channels), self.subtract,
                                                                  self.multiply)
        return cv2.LUT(image, table).reshape(image.shape)


_FLOAT_TABLE_VALUES = 48 * 48 * 3  # image.size: pixels times channels


@dataclass
class PixelMap:
    """A transform whose output pixel depends on that input pixel alone but not channel by
    channel (ToGray, ToSepia): its own `apply`, run where the colour pass runs, so that it
    does not split the warps around it into two resamples."""

    transform: Any
    params: dict

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.transform.apply(image, **self.params)).reshape(image.shape)


ColourOp = Lut | ContrastLut | HsvLut | ChannelMix | ChannelOrder | FloatAffine | PixelMap
ENDS_UINT8 = (FloatAffine,)
READS_STATISTICS = (ContrastLut,)


def apply_colour(image: np.ndarray, ops: list) -> np.ndarray:
    """The colour ops in order, in as few passes as they allow: consecutive tables compose
    into one, consecutive HSV tables share one HSV round trip, a channel order moves the
    tables instead of the pixels."""
    tables = None  # pending uint8 tables
    hsv = None  # pending HSV tables (an HsvLut)
    for op in ops:
        if isinstance(op, HsvLut):
            if tables is not None:
                image, tables = F.lut_image(image, tables), None
            if hsv is not None and hsv.full != op.full:
                image, hsv = F.hsv_lut_image(image, hsv.tables, hsv.full), None
            hsv = op if hsv is None else HsvLut([
                b if a is None else a if b is None else F.compose_tables(a[None], b[None])[0]
                for a, b in zip(hsv.tables, op.tables)], op.full)
            continue
        if hsv is not None:
            image, hsv = F.hsv_lut_image(image, hsv.tables, hsv.full), None
        if isinstance(op, Lut):
            tables = F.compose_tables(tables, op.tables)
        elif isinstance(op, ContrastLut):
            if tables is not None:  # the mean of the image as it is at this point
                image, tables = F.lut_image(image, tables), None
            tables = op.tables(F.gray_mean(image))
        elif isinstance(op, ChannelOrder):
            image = np.ascontiguousarray(image[:, :, op.order])
            if tables is not None and len(tables) > 1:
                tables = tables[op.order]
        elif isinstance(op, ChannelMix):
            if tables is not None:
                image, tables = F.lut_image(image, tables), None
            image = F.mix_channels_image(image, op.matrix)
        elif isinstance(op, PixelMap):
            if tables is not None:
                image, tables = F.lut_image(image, tables), None
            image = op(image)
        elif isinstance(op, FloatAffine):
            if tables is not None:
                image, tables = F.lut_image(image, tables), None
            image = op(image)
    if hsv is not None:
        image = F.hsv_lut_image(image, hsv.tables, hsv.full)
    if tables is not None:
        image = F.lut_image(image, tables)
    return image


# ---------------------------------------------------------------------------
# Geometry: a list of Warps applied as one
# ---------------------------------------------------------------------------

def compose_warps(warps: list[Warp]) -> np.ndarray:
    if not warps:
        return np.eye(3)
    matrix = warps[0].matrix
    for warp in warps[1:]:
        matrix = np.dot(warp.matrix, matrix)  # np.dot: 0.5 us on 3x3, `@` 0.9 us
    return matrix


class WarpPlan:
    """How a list of warps runs as one: the composed matrix, the output size, the
    quadrilaterals (output pixel indices) of intermediate frames a later warp reaches
    outside of, and, when one resample cannot reproduce the chain (another border than
    constant, a map through the horizon), where to split it. `border`: the warps' border
    (one per segment), `interpolation`: the best one they asked for."""

    def __init__(self, warps: list[Warp], height: int, width: int, matrix: np.ndarray,
                 clips: list, split: int | None = None, border: tuple | None = None):
        self.warps, self.in_height, self.in_width = warps, height, width
        self.matrix, self.clips, self.split, self.border = matrix, clips, split, border
        self.height, self.width = warps[-1].height, warps[-1].width
        self.interpolation = max((w.interpolation for w in warps if w.interpolation is not None),
                                 key=F.INTERPOLATION_QUALITY.index, default=cv2.INTER_NEAREST)

    def shows_border(self) -> bool:
        """Whether the output shows any border fill (from outside the input or an
        intermediate frame)."""
        if self.clips or self.split is not None:
            return True
        if self.border is None:
            return False
        back = F.map_corners(F.frame_corners(self.height, self.width), np.linalg.inv(self.matrix))
        return back is None or not F.inside_frame(back, self.in_height, self.in_width)


def plan_warps(warps: list[Warp], height: int, width: int) -> WarpPlan:
    """Where a later warp reaches outside an earlier one's output, the unfused chain shows
    that warp's border there (and masks are empty there); one warp from the original would
    show real pixels instead. Those regions are filled after the warp (constant borders),
    or the chain is split there."""
    bordered = [k for k, w in enumerate(warps) if w.border is not None]
    border = warps[bordered[0]].border if bordered else None  # one per segment
    if len(warps) == 1:
        return WarpPlan(warps, height, width, warps[0].matrix, [], border=border)
    out_h, out_w = warps[-1].height, warps[-1].width
    clips = []
    # Warps after the last one with a border (flips, crops, resizes) stay inside their input.
    for k in range(bordered[-1] if bordered else 0, 0, -1):
        frame = F.frame_corners(warps[k - 1].height, warps[k - 1].width)
        quad = F.map_corners(frame, compose_warps(warps[k:]))
        if quad is not None and F.covers(quad, out_h, out_w):
            continue
        if bordered[0] >= k:  # only flips, turns, crops, resizes before
            before = F.map_corners(frame, np.linalg.inv(compose_warps(warps[:k])))
            if before is not None and F.covers(before, height, width):
                continue  # the frame holds the whole input: the warp's own border does it
        if quad is None or border[0] != cv2.BORDER_CONSTANT:
            return WarpPlan(warps, height, width, np.eye(3), [], split=k, border=border)
        clips.append(quad)
    return WarpPlan(warps, height, width, compose_warps(warps), clips, border=border)


def apply_warps(targets: Targets, warps: list[Warp], plan: WarpPlan | None = None) -> Targets:
    """The warps as one resample of the image and the masks, and one map of the points."""
    plan = plan or plan_warps(warps, *targets.image.shape[:2])
    if plan.split is not None:
        return apply_warps(apply_warps(targets, warps[:plan.split]), warps[plan.split:])
    height, width, matrix, clips = plan.height, plan.width, plan.matrix, plan.clips
    mode, fill = plan.border if plan.border is not None else (cv2.BORDER_REPLICATE, (0.0,))
    image = F.warp_image(targets.image, matrix, height, width, interpolation=plan.interpolation,
                         border_mode=mode, fill=fill)
    if clips:
        image = F.fill_outside(image.copy() if image is targets.image else image, clips, fill)
    return Targets(image, F.warp_masks(targets.masks, matrix, height, width, clips),
                   F.warp_points(targets.points, matrix), targets.box_points)


def _with_image(targets: Targets, image: np.ndarray) -> Targets:
    return Targets(image, targets.masks, targets.points, targets.box_points)


# ---------------------------------------------------------------------------
# A segment: drawn, not yet applied
# ---------------------------------------------------------------------------

class Segment:
    """The warps and colour ops drawn since the last barrier, in recipe order.

    `order` has one letter per op: g (warp), c (colour), s (colour reading a statistic of
    the image), so that the colour pass can be placed where the unfused chain's
    statistics and border fills are the same."""

    __slots__ = ("height", "width", "channels", "dtype", "warps", "colour", "order", "border",
                 "statistic_after_warp")

    def __init__(self, targets: Targets):
        image = targets.image
        self.height, self.width = image.shape[:2]  # the image size after the pending warps
        self.channels = image.shape[2] if image.ndim == 3 else 1
        self.dtype = image.dtype  # the image's dtype after the pending colour ops
        self.warps: list[Warp] = []
        self.colour: list = []
        self.order: list[str] = []
        self.border = None  # the warps' border (one resample has one)
        self.statistic_after_warp = False

    def accepts_warp(self, warp: Warp) -> bool:
        if warp.border is not None and self.border not in (None, warp.border):
            return False  # one resample has one border
        # A statistic read between two warps could be taken from neither end.
        return not self.statistic_after_warp

    def add_warp(self, warp: Warp) -> None:
        self.warps.append(warp)
        self.order.append("g")
        self.height, self.width = warp.height, warp.width
        if self.border is None:
            self.border = warp.border

    def add_colour(self, ops: list) -> None:
        for op in ops:
            self.colour.append(op)
            if isinstance(op, READS_STATISTICS):
                self.order.append("s")
                self.statistic_after_warp = self.statistic_after_warp or bool(self.warps)
            else:
                self.order.append("c")
            if isinstance(op, ENDS_UINT8):
                self.dtype = np.dtype(np.float32)

    def apply(self, targets: Targets) -> Targets:
        if not self.colour:
            return apply_warps(targets, self.warps) if self.warps else targets
        if not self.warps:
            return _with_image(targets, apply_colour(targets.image, self.colour))
        plan = plan_warps(self.warps, targets.height, targets.width)
        if self._colour_first(targets, plan):
            targets = _with_image(targets, apply_colour(targets.image, self.colour))
            return apply_warps(targets, self.warps, plan)
        targets = apply_warps(targets, self.warps, plan)
        return _with_image(targets, apply_colour(targets.image, self.colour))

    def _colour_first(self, targets: Targets, plan: WarpPlan) -> bool:
        """Colour before the warp or after it. Where a statistic is read: as unfused.
        Otherwise where the recipe has most of the colour ops (the border fill the warp
        shows is then coloured as unfused), unless the other side has at most half the
        pixels and the warp shows no border."""
        order = "".join(self.order)
        if "s" in order:
            if "g" in order[order.index("s"):]:
                return True  # the statistic of the image before the warps, as unfused
            if "g" in order[:order.rindex("s")]:
                return False
        first_warp = order.index("g")
        as_recipe_first = first_warp * 2 > len(self.colour)  # colour ops before the first warp
        in_pixels, out_pixels = targets.height * targets.width, self.height * self.width
        smaller_other_side = (out_pixels * 2 <= in_pixels) if as_recipe_first else \
            (in_pixels * 2 <= out_pixels and self.dtype == np.uint8)  # a float pass last stays last
        if smaller_other_side and not plan.shows_border():
            return not as_recipe_first
        return as_recipe_first


# ---------------------------------------------------------------------------
# The chain's items
# ---------------------------------------------------------------------------

class OwnItem:
    """An imgsynth transform: geometric ones (with a `warp` method) fuse; the others
    (noise) are barriers and run as they are."""

    def __init__(self, transform):
        self.transform = transform
        self.name = transform.name
        self.geometric = hasattr(transform, "warp")

    def kind(self, segment: Segment) -> str:
        return "geometry" if self.geometric else "barrier"

    def draw_warp(self, rng: np.random.Generator, segment: Segment) -> Warp | None:
        if rng.random() >= self.transform.p:  # Transform.__call__'s draw
            return None
        return self.transform.warp(rng, segment.height, segment.width)

    def run(self, targets: Targets, rng: np.random.Generator, py_random) -> Targets:
        return self.transform(targets, rng)


class RunStart:
    """The start of a run of consecutive albumentations transforms: the unfused pipeline
    gives each run one Compose, seeded from the sample's Generator before the call; the
    Compose then draws its own p."""

    def __init__(self, items: list[AlbumentationsItem]):
        self.items = items

    def start(self, rng: np.random.Generator, py_random: random.Random) -> None:
        py_random.seed(derived_int_seed(rng))
        for item in self.items:  # what Compose.set_random_state does for each transform
            item.transform.random_generator = rng
            item.transform.py_random = py_random
        py_random.random()  # Compose.__call__: `self.py_random.random() < self.p`


class AlbumentationsItem:
    """One albumentations transform. Fusable ones have their parameters drawn by
    albumentations' own code (should_apply, get_params, get_params_dependent_on_data, in
    the order BasicTransform.__call__ uses) and become a Warp or colour ops; the others
    are barriers."""

    def __init__(self, name: str, params: dict[str, Any]):
        from imgsynth.augment.pipeline import AlbumentationsStep, make_transform

        self.name = name
        self.transform = make_transform(name, params)
        self.geometry = GEOMETRY.get(name) if _geometry_fusable(self.transform) else None
        self.colour = COLOUR.get(name) if _colour_fusable(self.transform) else None
        # Image-only transforms drawing from the image alone run their own `apply`; those
        # that also read masks or boxes (and the ones that move labels) go through a Compose.
        self.image_only = _is_image_only(self.transform) and \
            set(getattr(self.transform, "targets_as_params", ())) <= {"image"}
        # A draw that reads no randomness (a pad to a size, a center crop, Normalize): what
        # it gives, kept per input shape (colour ops: per channel count). Found out by
        # probing the first draw; one that reads randomness is never probed again.
        self.kept: dict = {}
        self.draws_randomness = False
        # Barrier transforms that move labels run through a Compose of their own (keypoints
        # and boxes converted as in the unfused pipeline), called with force_apply so that
        # it skips the p draw its run's Compose already made.
        self.step = None if self.image_only else AlbumentationsStep([(name, params)])
        self.banded = BANDED.get(name) if self.image_only and _banded_fits(self.transform) else None

    def kind(self, segment: Segment) -> str:
        if self.geometry is not None:
            return "geometry"
        if self.colour is not None and segment.dtype == np.uint8 and \
                self.colour.accepts(self.transform, segment.channels):
            return "colour"
        return "barrier"

    def draw(self, shape: tuple[int, ...], dtype: np.dtype, image: np.ndarray | None = None):
        """The transform's parameters for this sample, or None when its p says no."""
        if not self.transform.should_apply():
            return None
        return self._params(shape, dtype, image)

    def _params(self, shape: tuple[int, ...], dtype: np.dtype, image: np.ndarray | None = None) -> dict:
        t = self.transform
        data = {"image": image if image is not None else _placeholder(shape, dtype)}
        params = t.update_transform_params(t.get_params(), data)
        params.update(t.get_params_dependent_on_data(params, data))
        return params

    def draw_warp(self, rng, segment: Segment) -> Warp | None:
        if not self.transform.should_apply():
            return None
        return self._drawn(segment, (segment.height, segment.width, segment.channels, segment.dtype),
                           lambda params: self.geometry(self.transform, params, segment.height, segment.width))

    def draw_colour(self, segment: Segment) -> list:
        if not self.transform.should_apply():
            return []
        # per-pixel ops depend on the channel count, not on the image's height and width
        return self._drawn(segment, segment.channels,
                           lambda params: self.colour.ops(self.transform, params, segment.channels))

    def _drawn(self, segment: Segment, key, convert):
        """convert(this sample's parameters). A draw that reads no randomness depends on the
        input alone: it is probed (with random sources that refuse to be read) and what it
        gives is kept under `key` (warps with read-only matrices)."""
        shape, dtype = (segment.height, segment.width, segment.channels), segment.dtype
        if self.draws_randomness:
            return convert(self._params(shape, dtype))
        found = self.kept.get(key)
        if found is None:
            params = self._probe(shape, dtype)
            if params is None:
                self.draws_randomness = True
                return convert(self._params(shape, dtype))
            found = convert(params)
            if isinstance(found, Warp):
                found.matrix.flags.writeable = False
            if len(self.kept) >= _KEPT:
                self.kept.clear()
            self.kept[key] = found
        return found

    def _probe(self, shape: tuple[int, ...], dtype: np.dtype) -> dict | None:
        """The parameters for this shape if drawing them reads no randomness, else None
        (nothing drawn: the transform's sources are stand-ins that refuse)."""
        t = self.transform
        sources = t.random_generator, t.py_random
        t.random_generator = t.py_random = _NO_RANDOMNESS
        try:
            return self._params(shape, dtype)
        except _ReadRandomness:
            return None
        finally:
            t.random_generator, t.py_random = sources

    def run(self, targets: Targets, rng: np.random.Generator, py_random: random.Random) -> Targets:
        if self.image_only:
            image = targets.image
            if self.banded is not None and image.dtype == np.uint8 and image.ndim == 3:
                # its only draw before get_params_dependent_on_data (which the kernel makes)
                if not self.transform.should_apply():
                    return targets
                return _with_image(targets, self.banded(self.transform, np.ascontiguousarray(image)))
            params = self.draw(image.shape, image.dtype, image)
            if params is None:
                return targets
            try:
                out = np.ascontiguousarray(self.transform.apply(np.ascontiguousarray(image), **params))
            except cv2.error as exc:
                from imgsynth.augment.pipeline import opencv_refused

                raise opencv_refused(self.name, image, exc) from exc
            return _with_image(targets, out)  # its height and width (pipeline._keeping_image_size)
        return self.step(targets, rng, py_random=py_random)


class _ReadRandomness(Exception):
    """A probed draw reached for its transform's random sources."""


class _NoRandomness:
    """Stands in for a transform's random_generator and py_random while its draw is probed."""

    def __getattr__(self, name: str):
        raise _ReadRandomness(name)


_NO_RANDOMNESS = _NoRandomness()
_KEPT = 64  # input shapes a transform keeps draws for


def _placeholder(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An image of the given shape and dtype without its memory (parameters of fusable
    transforms depend on the shape only)."""
    key = (shape, np.dtype(dtype))
    found = _PLACEHOLDERS.get(key)
    if found is None:
        if len(_PLACEHOLDERS) > 256:
            _PLACEHOLDERS.clear()
        found = _PLACEHOLDERS[key] = np.broadcast_to(np.zeros((1,) * len(shape), dtype=dtype), shape)
    return found


_PLACEHOLDERS: dict = {}


def _is_image_only(transform) -> bool:
    from albumentations.core.transforms_interface import ImageOnlyTransform

    return isinstance(transform, ImageOnlyTransform)


class FusedChain:
    """The compiled transform list: called like a pipeline step, `chain(targets, rng)`."""

    def __init__(self, entries: list[tuple[str, dict[str, Any]]]):
        from albumentations.augmentations.geometric.distortion import BaseDistortion

        from imgsynth.augment.pipeline import OWN_PREFIX, make_transform

        self.items: list = []
        run: list[AlbumentationsItem] = []
        for name, params in entries + [("", {})]:
            if name.startswith(OWN_PREFIX) or not name:
                if run:
                    self.items += [RunStart(run), *run]
                    run = []
                if name:
                    self.items.append(OwnItem(make_transform(name, params)))
            else:
                run.append(AlbumentationsItem(name, params))
        self.warps_nonlinearly = any(isinstance(getattr(i, "transform", None), BaseDistortion)
                                     for i in self.items)
        self.py_random = random.Random(0)

    def __call__(self, targets: Targets, rng: np.random.Generator) -> Targets:
        segment = Segment(targets)
        py_random = self.py_random
        for item in self.items:
            if item.__class__ is RunStart:
                item.start(rng, py_random)
                continue
            kind = item.kind(segment)
            if kind == "geometry":
                warp = item.draw_warp(rng, segment)
                if warp is None:
                    continue
                if warp.height < 1 or warp.width < 1:  # unfused: a cv2 assertion
                    raise ValueError(f"{item.name} leaves no pixels: {segment.height}x{segment.width} "
                                     f"-> {warp.height}x{warp.width} (height x width)")
                if not segment.accepts_warp(warp):
                    targets = segment.apply(targets)
                    segment = Segment(targets)
                segment.add_warp(warp)
            elif kind == "colour":
                segment.add_colour(item.draw_colour(segment))
            else:
                if segment.warps or segment.colour:
                    targets = segment.apply(targets)
                targets = item.run(targets, rng, py_random)
                segment = Segment(targets)
        return segment.apply(targets)


# ---------------------------------------------------------------------------
# albumentations geometric transforms as Warps: (transform, params, h, w) -> Warp
# ---------------------------------------------------------------------------

def _border(t) -> tuple[int, tuple[float, ...]]:
    return int(t.border_mode), F.fill_tuple(t.fill)


def _hflip(t, params, h, w):
    return Warp(F.hflip_matrix(w), h, w)


def _vflip(t, params, h, w):
    return Warp(F.vflip_matrix(h), h, w)


def _transpose(t, params, h, w):
    return Warp(F.transpose_matrix(), w, h)


def _rot90(t, params, h, w):
    return Warp(*F.rot90_matrix(int(params["factor"]), h, w))


_D4 = {"e": (), "r90": ("r", 1), "r180": ("r", 2), "r270": ("r", 3), "v": ("v",), "h": ("h",),
       "t": ("t",), "hvt": ("r", 2, "t")}


def _d4(t, params, h, w):
    steps = _D4[params["group_element"]]
    matrix, height, width = np.eye(3), h, w
    if steps[:1] == ("r",):
        matrix, height, width = F.rot90_matrix(steps[1], h, w)
        steps = steps[2:]
    for step in steps:
        if step == "v":
            matrix = F.vflip_matrix(height) @ matrix
        elif step == "h":
            matrix = F.hflip_matrix(width) @ matrix
        else:
            matrix, height, width = F.transpose_matrix() @ matrix, width, height
    return Warp(matrix, height, width)


def _warp_size(out_h: int, out_w: int, h: int, w: int) -> tuple[int, int]:
    """The output size cv2.warpAffine/warpPerspective give for a dsize: an empty one (a
    fitted output of a 1-pixel-high image rounds to 0 rows) means the input's size."""
    return (h, w) if out_h <= 0 or out_w <= 0 else (out_h, out_w)


def _affine(t, params, h, w):
    out_h, out_w = _warp_size(*(int(np.round(v)) for v in params["output_shape"][:2]), h, w)
    return Warp(F.as_3x3(params["matrix"]), out_h, out_w, int(t.interpolation), _border(t))


def _rotate(t, params, h, w):
    warp = Warp(F.as_3x3(params["matrix"]), h, w, int(t.interpolation), _border(t))
    if t.crop_border:
        x0, x1, y0, y1 = params["x_min"], params["x_max"], params["y_min"], params["y_max"]
        warp = Warp(F.translation_matrix(-x0, -y0) @ warp.matrix, y1 - y0, x1 - x0,
                    warp.interpolation, warp.border)
    return warp


def _perspective(t, params, h, w):
    matrix = F.as_3x3(params["matrix"])
    max_h, max_w = params["max_height"], params["max_width"]
    if t.keep_size:
        matrix = matrix * np.array([[w / max_w], [h / max_h], [1.0]])  # diag(sx, sy, 1) @ matrix
        return Warp(matrix, h, w, int(t.interpolation), _border(t))
    return Warp(matrix, *_warp_size(max_h, max_w, h, w), int(t.interpolation), _border(t))


def _resized_crop(t, params, h, w):
    x0, y0, x1, y1 = params["crop_coords"]
    out_h, out_w = t.size
    return Warp(F.crop_resize_matrix(x0, y0, y1 - y0, x1 - x0, out_h, out_w), out_h, out_w,
                int(t.interpolation))


def _resize(t, params, h, w):
    return Warp(F.resize_matrix(h, w, t.height, t.width), t.height, t.width, int(t.interpolation))


def _random_scale(t, params, h, w):  # fgeometric.scale: int() of the scaled size
    out_h, out_w = int(h * params["scale"]), int(w * params["scale"])
    return Warp(F.resize_matrix(h, w, out_h, out_w), out_h, out_w, int(t.interpolation))


def _max_size(t, params, h, w):  # MaxSizeTransform.apply
    out_h, out_w = max(1, round(h * params["scale"])), max(1, round(w * params["scale"]))
    return Warp(F.resize_matrix(h, w, out_h, out_w), out_h, out_w, int(t.interpolation))


def _crop(t, params, h, w):
    left = top = 0
    border = None
    pad = params.get("pad_params")
    if pad is not None and (pad["pad_top"] or pad["pad_bottom"] or pad["pad_left"] or pad["pad_right"]):
        left, top, border = pad["pad_left"], pad["pad_top"], _border(t)
        h, w = h + pad["pad_top"] + pad["pad_bottom"], w + pad["pad_left"] + pad["pad_right"]
    x0, y0, x1, y1 = params["crop_coords"]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        # albumentations' own check raises its ValueError for a window outside the padded
        # image (the warp would fill the missing part silently)
        from albumentations.augmentations.crops.functional import crop

        crop(_placeholder((h, w), np.dtype(np.uint8)), x0, y0, x1, y1)
    return Warp(F.translation_matrix(left - x0, top - y0), y1 - y0, x1 - x0, None, border)


def _pad(t, params, h, w):
    top, bottom, left, right = (params[k] for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
    return Warp(F.translation_matrix(left, top), h + top + bottom, w + left + right, None, _border(t))


GEOMETRY = {
    "HorizontalFlip": _hflip, "VerticalFlip": _vflip, "Transpose": _transpose,
    "RandomRotate90": _rot90, "D4": _d4, "SquareSymmetry": _d4,
    "Affine": _affine, "ShiftScaleRotate": _affine, "SafeRotate": _affine, "Rotate": _rotate,
    "Perspective": _perspective,
    "RandomResizedCrop": _resized_crop, "RandomSizedCrop": _resized_crop,
    "Resize": _resize, "RandomScale": _random_scale,
    "LongestMaxSize": _max_size, "SmallestMaxSize": _max_size,
    "Crop": _crop, "CenterCrop": _crop, "RandomCrop": _crop, "RandomCropFromBorders": _crop,
    "Pad": _pad, "PadIfNeeded": _pad,
}


def _geometry_fusable(t) -> bool:
    """Fusable as configured: the class is known, applies its parameters as the converter
    reads them, and resamples the way one warp can (INTER_AREA averages, which a warp
    does not; albumentations' Affine subclasses must not change `apply`)."""
    name = type(t).__name__
    if name not in GEOMETRY:
        return False
    import albumentations as A

    if name in ("ShiftScaleRotate", "SafeRotate") and type(t).apply is not A.Affine.apply:
        return False
    if getattr(t, "area_for_downscale", None) is not None:
        return False
    return getattr(t, "interpolation", cv2.INTER_LINEAR) in F.INTERPOLATION_QUALITY


# ---------------------------------------------------------------------------
# albumentations colour transforms as colour ops
# ---------------------------------------------------------------------------

@dataclass
class ColourKind:
    """How a colour transform becomes ops: `ops(transform, params, channels)`, for the
    channel counts `accepts(transform, channels)` allows (uint8 images only)."""

    ops: Any
    channels: tuple[int, ...] = (1, 3)

    def accepts(self, transform, channels: int) -> bool:
        return channels in self.channels


def _ramp_ops(t, params, channels):
    """A point-wise transform's tables: the transform applied to a ramp of all 256 levels
    (its own code, so the tables hold exactly the values it computes per pixel)."""
    return [Lut(F.tables_of(np.asarray(t.apply(F.ramp_image(channels), **params))))]


def _brightness_contrast_ops(t, params, channels):
    """RandomBrightnessContrast: x * alpha + beta, saturated (albucore.multiply_add's table)."""
    # python floats, as albucore's convert_value makes them: the table is computed in float32
    return [Lut(_clip_levels(_LEVELS * float(params["alpha"]) + float(params["beta"])))]


def _color_jitter_ops(t, params, channels):
    """ColorJitter's four adjustments in its drawn order, each as albumentations computes it
    (adjust_*_torchvision); the saturation blend with the gray image as one channel mix."""
    ops = []
    for i in params["order"]:
        if i == 0 and params["brightness"] != 1:
            # albucore.multiply's table (the factor is >= 0: only the top can saturate)
            f = np.float32(params["brightness"])
            ops.append(Lut(np.minimum(_LEVELS * f, 255).astype(np.uint8)[None]))
        elif i == 1 and params["contrast"] != 1:
            ops.append(ContrastLut(params["contrast"]))
        elif i == 2 and params["saturation"] != 1 and channels == 3:
            f = params["saturation"]
            ops.append(ChannelMix(f * _EYE3 + (1 - f) * _GRAY_ROWS))
        elif i == 3 and params["hue"] != 0 and channels == 3:
            # torchvision's hue turns the colour circle by hue * 360 degrees; OpenCV's 256-step
            # hue does that twice as closely as the 180-step one albumentations uses, and faster
            steps = math.floor(256 * params["hue"]) % 256
            if steps:  # a turn under one step changes nothing
                ops.append(HsvLut([_HUE_TURNS[steps], None, None], full=True))
    return ops


_IDENTITY = np.arange(256, dtype=np.uint8)
_HUE_TURNS = (_IDENTITY[None, :] + _IDENTITY[:, None])  # row k: hue + k, modulo 256 (uint8 wraps)
_HUE_TURNS.flags.writeable = False
_LEVELS_INT16 = np.arange(256, dtype=np.int16)
_EYE3 = np.eye(3)
_GRAY_ROWS = np.tile(F.GRAY_WEIGHTS, (3, 1))


def _hsv_ops(t, params, channels):
    """HueSaturationValue (fpixel.shift_hsv): hue shifted modulo 180, saturation and value
    shifted and saturated (albucore.add_constant's tables), gray pixels (S = 0) kept gray."""
    from albucore import add_constant

    hue_shift, sat_shift, val_shift = params["hue_shift"], params["sat_shift"], params["val_shift"]
    if hue_shift == 0 and sat_shift == 0 and val_shift == 0:
        return []
    ramp = _IDENTITY.reshape(1, 256)
    hue = np.mod(_LEVELS_INT16 + hue_shift, 180).astype(np.uint8) if hue_shift else None
    sat = None
    if sat_shift:
        sat = np.asarray(add_constant(ramp, sat_shift)).reshape(256).copy()
        sat[0] = 0
    val = np.asarray(add_constant(ramp, val_shift)).reshape(256) if val_shift else None
    return [HsvLut([hue, sat, val])]


def _pixel_map_ops(t, params, channels):
    return [PixelMap(t, params)]


class _ToGrayKind(ColourKind):
    def accepts(self, transform, channels: int) -> bool:
        # per pixel and three channels out (pca reads the whole image; one channel out would
        # change the channel count the rest of the chain was drawn for)
        return channels == 3 and transform.num_output_channels == 3 and transform.method != "pca"


def _channel_shuffle_ops(t, params, channels):
    return [ChannelOrder(list(params["channels_shuffled"]))]


class _NormalizeKind(ColourKind):
    def accepts(self, transform, channels: int) -> bool:
        count = np.size(transform.mean_np)
        return transform.normalization == "standard" and count in (1, channels)


def _normalize_ops(t, params, channels):
    """albumentations' formula: (x - mean * max_pixel_value) / (std * max_pixel_value)."""
    return [FloatAffine(F.cv2_scalar(t.mean_np, channels), F.cv2_scalar(t.denominator, channels))]


def _to_float_ops(t, params, channels):
    from albumentations.core.type_definitions import MAX_VALUES_BY_DTYPE

    top = t.max_value if t.max_value is not None else MAX_VALUES_BY_DTYPE[np.dtype(np.uint8)]
    return [FloatAffine(F.cv2_scalar(0.0, channels), F.cv2_scalar(1.0 / top, channels))]


COLOUR = {
    "RandomBrightnessContrast": ColourKind(_brightness_contrast_ops),
    "RandomGamma": ColourKind(_ramp_ops),
    "InvertImg": ColourKind(_ramp_ops),
    "Posterize": ColourKind(_ramp_ops),
    "Solarize": ColourKind(_ramp_ops),
    "RandomToneCurve": ColourKind(_ramp_ops),
    "ToFloat": ColourKind(_to_float_ops),
    "Normalize": _NormalizeKind(_normalize_ops),
    "ColorJitter": ColourKind(_color_jitter_ops),
    "HueSaturationValue": ColourKind(_hsv_ops, channels=(3,)),
    "ChannelShuffle": ColourKind(_channel_shuffle_ops, channels=(3,)),
    # per-channel tables: a constant shift, a dropped channel, a black-body white balance
    "RGBShift": ColourKind(_ramp_ops, channels=(3,)),
    "ChannelDropout": ColourKind(_ramp_ops, channels=(3,)),
    "PlanckianJitter": ColourKind(_ramp_ops, channels=(3,)),
    "ToGray": _ToGrayKind(_pixel_map_ops),
    "ToSepia": ColourKind(_pixel_map_ops, channels=(3,)),
}


# ---------------------------------------------------------------------------
# Barriers run in bands of rows: the same numbers, without full-image temporaries
# ---------------------------------------------------------------------------

def _gauss_noise_banded(t, image: np.ndarray) -> np.ndarray:
    """GaussNoise (per pixel, at full resolution) as albumentations draws and adds it, one
    band of rows at a time: the same draws in the same order (sigma and mean from py_random,
    the cv2 seed from the Generator), the same cv2.randn stream (it fills row-major, so
    bands continue it exactly), the same float32 noise and the same albucore addition per
    pixel: the same bytes. Its own path makes three full-image noise arrays first (at
    640x480x3: 7.4 MB of float64 and two 3.7 MB float32 copies), fresh memory every
    sample; bands of ~0.5 MB stay in cache (3.6 ms instead of 7.0 ms at 640x480)."""
    from albumentations.augmentations.pixel.functional import add_noise
    from albumentations.core.type_definitions import MAX_VALUES_BY_DTYPE

    sigma = t.py_random.uniform(*t.std_range)  # get_params_dependent_on_data's order
    mean = t.py_random.uniform(*t.mean_range)
    cv2.setRNGSeed(t.random_generator.integers(0, 2**16))  # fpixel.generate_noise
    height, width, channels = image.shape
    means = mean * np.ones(channels, dtype=np.float32)  # fpixel.sample_gaussian
    stds = sigma * np.ones(channels, dtype=np.float32)
    max_value = MAX_VALUES_BY_DTYPE[image.dtype]
    rows = max(1, min(height, _BAND_BYTES // (width * channels * 8)))
    normal = np.empty((rows, width, channels))
    noise = np.empty((rows, width, channels), dtype=np.float32)
    out = np.empty_like(image)
    for y in range(0, height, rows):
        n = min(rows, height - y)
        cv2.randn(dst=normal[:n], mean=means, stddev=stds)
        np.copyto(noise[:n], normal[:n], casting="same_kind")  # sample_gaussian's astype,
        noise[:n] *= max_value  # then sample_noise's scale, in float32
        out[y:y + n] = add_noise(image[y:y + n], noise[:n])
    return out


_BAND_BYTES = 1 << 19


def _banded_fits(t) -> bool:
    """The configurations a banded kernel reproduces (GaussNoise: per-pixel noise at full
    resolution); others run albumentations' own code."""
    return getattr(t, "per_channel", False) and getattr(t, "noise_scale_factor", 0) == 1


BANDED = {"GaussNoise": _gauss_noise_banded}


def _colour_fusable(t) -> bool:
    """Fusable as configured: parameters that do not read the image (RandomBrightnessContrast
    with brightness_by_max: false takes the image mean while drawing)."""
    name = type(t).__name__
    if name not in COLOUR:
        return False
    return getattr(t, "brightness_by_max", True)

