"""A recipe's transform list -> a pipeline of steps over `Targets`.

Names without a prefix are albumentations 2.0.8 classes; `imgsynth.*` names are
ours (imgsynth.augment.transforms). Consecutive albumentations transforms run as
one `A.Compose`, so an all-albumentations recipe costs what the raw albumentations
pipeline costs. Every step draws its randomness from the sample's Generator:
albumentations' Compose is handed that Generator (and a python Random seeded
from it) before each call, never its own or global state.
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import sys
import threading
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from imgsynth.augment import functional as F
from imgsynth.augment import multi  # noqa: F401 - registers the multi-image transforms
from imgsynth.augment.transforms import OWN_TRANSFORMS, Targets
from imgsynth.core.errors import did_you_mean
from imgsynth.core.rng import derived_int_seed

OWN_PREFIX = "imgsynth."
# albumentations transforms that choose their parameters from the boxes in the data.
BOX_AWARE = frozenset({"BBoxSafeRandomCrop", "RandomSizedBBoxSafeCrop", "AtLeastOneBBoxRandomCrop"})
# What AlbumentationsStep passes to a Compose (bboxes only to BOX_AWARE transforms).
FED_DATA = frozenset({"image", "masks", "keypoints", "bboxes"})
# albumentations takes cv2 integer constants; recipes may name them instead.
NAMED_CONSTANTS = {
    "border_mode": F.BORDER_MODES,
    "interpolation": F.INTERPOLATIONS,
    "mask_interpolation": F.INTERPOLATIONS,
}


def import_albumentations():
    """albumentations without its two import-time costs, which every worker would pay:

    - a version check against PyPI (a network request; imgsynth runs offline), unless
      the user set NO_ALBUMENTATIONS_UPDATE themselves;
    - `albumentations.pytorch` (ToTensorV2, which recipes have no use for) imports torch:
      ~1.2 s and ~500 MB per process. albumentations skips that module when its import
      fails, so it is blocked for the moment of the import and importable again after.
    """
    with _ALBUMENTATIONS_IMPORT:  # another thread may be halfway through this import
        if "albumentations" not in sys.modules:
            os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
            blocked = "albumentations.pytorch" not in sys.modules
            if blocked:
                sys.modules["albumentations.pytorch"] = None  # an import of it raises ImportError
            try:
                import albumentations  # noqa: F401 - registered in sys.modules
            finally:
                if blocked:
                    del sys.modules["albumentations.pytorch"]
        return sys.modules["albumentations"]


_ALBUMENTATIONS_IMPORT = threading.Lock()


def albumentations_names() -> list[str]:
    """albumentations' image transforms (its 3D volume transforms left out)."""
    A = import_albumentations()
    from albumentations.core.transforms_interface import BasicTransform, Transform3D

    return sorted(name for name in dir(A) if inspect.isclass(getattr(A, name))
                  and issubclass(getattr(A, name), BasicTransform)
                  and not issubclass(getattr(A, name), Transform3D)
                  and getattr(A, name).__module__.startswith("albumentations.augmentations"))


def transform_class(name: str) -> type:
    """The class a recipe name stands for; ValueError with a did-you-mean otherwise."""
    if name.startswith(OWN_PREFIX):
        if name in OWN_TRANSFORMS:
            return OWN_TRANSFORMS[name]
        raise ValueError(f"unknown imgsynth transform '{name}'.{did_you_mean(name, OWN_TRANSFORMS)}"
                         f" imgsynth transforms: {', '.join(sorted(OWN_TRANSFORMS))}")
    names = albumentations_names()
    if name not in names and _is_3d(name):
        raise ValueError(f"{name} is an albumentations 3D (volume) transform; imgsynth augments "
                         f"images: use its 2D counterpart{did_you_mean(name.removesuffix('3D'), names)}")
    if name not in names:
        hint = did_you_mean(name, names + list(OWN_TRANSFORMS))
        raise ValueError(f"unknown transform '{name}'.{hint} Use an albumentations 2.0.8 class name "
                         f"(e.g. Rotate, GaussianBlur, ImageCompression) or one of: "
                         f"{', '.join(sorted(OWN_TRANSFORMS))}")
    return getattr(import_albumentations(), name)


def parameter_names(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [n for n, p in signature.parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _is_3d(name: str) -> bool:
    from albumentations.core.transforms_interface import Transform3D

    cls = getattr(import_albumentations(), name, None)
    return inspect.isclass(cls) and issubclass(cls, Transform3D)


def make_transform(name: str, params: dict[str, Any]):
    """Instantiate a transform from its recipe entry, with messages that name the fix."""
    cls = transform_class(name)
    allowed = parameter_names(cls)
    for key in params:
        if key not in allowed:
            raise ValueError(f"unknown parameter '{key}' for {name}.{did_you_mean(key, allowed)} "
                             f"Parameters of {name}: {', '.join(allowed)}")
    if not name.startswith(OWN_PREFIX):
        params = _albumentations_params(name, cls, params)
        cls = _keeping_image_size(cls)
    try:
        transform = cls(**params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid parameters for {name}: {_short(exc)}") from None
    needs = [key for key in getattr(transform, "targets_as_params", []) if key not in FED_DATA]
    if needs:
        raise ValueError(
            f"{name} needs {needs} passed beside each image (reference images, extra elements, or "
            f"a mask or box chosen by the caller), which a recipe does not provide. Remove it, "
            "or apply it with albumentations in your own code")
    if getattr(transform, "border_mode", None) in _mirroring_borders():
        raise ValueError(
            f"{name} with a reflecting/wrapping border_mode: albumentations then mirrors objects "
            "into the border, copying masks but labelling the copies only as boxes, so labels "
            "would disagree. Use border_mode: constant or replicate, or imgsynth.Rotate with "
            "border_mode: reflect (mirrored copies stay unlabeled, labels of the real objects exact)")
    return transform


@functools.cache
def _keeping_image_size(cls: type) -> type:
    """A pixel transform (albumentations' ImageOnlyTransform) whose output keeps its input's
    height and width (F.as_pixels_of): ToGray and ToRGB squeeze an image one pixel high or
    wide, so that the transforms after them in a Compose saw a 1x5 RGB image as 5x3 gray.
    The same class name (compiled chains look transforms up by it)."""
    from albumentations.core.transforms_interface import ImageOnlyTransform

    if not issubclass(cls, ImageOnlyTransform):
        return cls

    def apply(self, img, *args, **params):
        return F.as_pixels_of(cls.apply(self, img, *args, **params), img)

    def __reduce_ex__(self, protocol):  # pickled by its albumentations class (DataLoader workers)
        return _new_keeping_image_size, (cls,), self.__getstate__()

    return type(cls.__name__, (cls,), {"apply": apply, "__reduce_ex__": __reduce_ex__,
                                      "__module__": cls.__module__, "__qualname__": cls.__qualname__})


def _new_keeping_image_size(cls: type):
    sized = _keeping_image_size(cls)
    return sized.__new__(sized)


def _albumentations_params(name: str, cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """cv2 constants by name; distortions move label points by their inverse map."""
    from albumentations.augmentations.geometric.distortion import BaseDistortion

    params = {key: _named_constant(key, value) for key, value in params.items()}
    if issubclass(cls, BaseDistortion):
        # albumentations' default, "mask", paints each point on a canvas and looks for it after
        # the warp: points on one pixel or pushed out of the image are lost, and the label
        # points of boxes and polygons could no longer be matched to their objects.
        if params.get("keypoint_remapping_method", "direct") != "direct":
            raise ValueError(f"{name} with keypoint_remapping_method: mask loses label points that "
                             "share a pixel or leave the image, so labels could not be matched; "
                             "remove it (imgsynth uses 'direct')")
        params["keypoint_remapping_method"] = "direct"
    return params


def _mirroring_borders() -> tuple[int, ...]:
    import cv2

    return (cv2.BORDER_REFLECT, cv2.BORDER_REFLECT_101, cv2.BORDER_WRAP)


def _named_constant(key: str, value: Any) -> Any:
    table = NAMED_CONSTANTS.get(key)
    if table is None or not isinstance(value, str):
        return value
    if value not in table:
        raise ValueError(f"{key} must be one of {sorted(table)} (or a cv2 constant), got '{value}'."
                         f"{did_you_mean(value, table)}")
    return table[value]


def _short(exc: Exception) -> str:
    """albumentations reports pydantic errors over many lines; keep the informative ones."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and "errors.pydantic.dev" not in line
             and "validation error" not in line]
    return "; ".join(lines) or type(exc).__name__


class AlbumentationsStep:
    """Consecutive albumentations transforms as one Compose; label points travel as keypoints.

    albumentations keypoints use pixel-index coordinates (pixel i centred at i), ours are
    continuous (pixel i spans i..i+1): shift by 0.5 on the way in and out. Box-aware
    crops (BOX_AWARE) are also handed the instances' current boxes to choose the crop
    from; the boxes that come out are still rebuilt from masks and points.
    """

    def __init__(self, entries: list[tuple[str, dict[str, Any]]]):
        A = import_albumentations()
        from albumentations.core.transforms_interface import DualTransform

        # Two Composes with their own transform objects: Compose attaches its label
        # processors to the transforms it holds. Pixel-only runs move no labels.
        self.names = [n for n, _ in entries]
        self.image_only = A.Compose([make_transform(n, p) for n, p in entries])
        self.moves_labels = any(isinstance(t, DualTransform) for t in self.image_only.transforms)
        self.needs_boxes = any(name in BOX_AWARE for name, _ in entries)
        from albumentations.augmentations.geometric.distortion import BaseDistortion

        self.warps_nonlinearly = any(isinstance(t, BaseDistortion) for t in self.image_only.transforms)
        self.labeled = A.Compose(
            [make_transform(n, p) for n, p in entries],
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
            bbox_params=A.BboxParams(format="pascal_voc") if self.needs_boxes else None,
        ) if self.moves_labels else self.image_only
        self.py_random = random.Random(0)

    def __call__(self, targets: Targets, rng: np.random.Generator,
                 py_random: random.Random | None = None) -> Targets:
        """`py_random`: a compiled chain's, which already drew the run's seed and its
        Compose's p (imgsynth.augment.compiler.RunStart); the Compose then draws nothing
        of its own (force_apply skips its p draw, not its transforms')."""
        compose = self.labeled if len(targets.points) or self.needs_boxes else self.image_only
        drawn = py_random is not None
        if not drawn:
            py_random = self.py_random
            py_random.seed(derived_int_seed(rng))
        compose.set_random_state(rng, py_random)
        data: dict[str, Any] = {"image": targets.image}
        if len(targets.masks):
            data["masks"] = targets.masks
        if compose is self.labeled and self.moves_labels:
            data["keypoints"] = targets.points - 0.5
        if self.needs_boxes:
            boxes = targets.boxes()
            data["bboxes"] = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        try:
            out = compose(force_apply=drawn, **data)
        except cv2.error as exc:
            raise opencv_refused(" + ".join(self.names), targets.image, exc) from exc
        image = out["image"]
        if image.ndim == 2 and targets.image.ndim == 3:
            image = image[:, :, None]
        masks = np.asarray(out["masks"], dtype=np.uint8) if len(targets.masks) else \
            np.zeros((0, *image.shape[:2]), dtype=np.uint8)
        points = targets.points
        if len(points) and self.moves_labels:
            points = np.asarray(out["keypoints"], dtype=np.float64)[:, :2] + 0.5
            if len(points) != len(targets.points):
                raise RuntimeError(f"albumentations returned {len(points)} label points for "
                                   f"{len(targets.points)}: labels cannot be matched")
        return replace(targets, image=image, masks=masks, points=points)


def opencv_refused(names: str, image: np.ndarray, exc: cv2.error) -> ValueError:
    """OpenCV's assertion about an input (an empty output size, a pixel type it has no kernel
    for) as a message naming the transforms and the image size. Raised `from exc`: an
    allocation that failed inside is still found as the machine's (core.errors)."""
    height, width = image.shape[:2]
    return ValueError(f"{names} cannot transform a {height}x{width} image (height x width): "
                      f"OpenCV's {exc.func} refused it ({exc.err})")


def build_steps(entries: list[tuple[str, dict[str, Any]]], fuse: bool = False) -> list:
    """fuse: one compiled chain (imgsynth.augment.compiler: one warp and one colour pass
    per segment). Otherwise own transforms stand alone and runs of albumentations
    transforms share one Compose."""
    if fuse:
        from imgsynth.augment.compiler import FusedChain

        return [FusedChain(entries)]
    steps: list = []
    run: list[tuple[str, dict[str, Any]]] = []
    for name, params in entries:
        if name.startswith(OWN_PREFIX):
            if run:
                steps.append(AlbumentationsStep(run))
                run = []
            steps.append(make_transform(name, params))
        else:
            run.append((name, params))
    if run:
        steps.append(AlbumentationsStep(run))
    return steps


def run_steps(steps: list, targets: Targets, rng: np.random.Generator) -> Targets:
    for step in steps:
        targets = step(targets, rng)
    return targets
