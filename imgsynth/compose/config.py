"""Recipe configs of the compositing sources: `compose` (built as
imgsynth.compose.scene.ComposeSource) and `copy_paste` (imgsynth.compose.copy_paste).

Light on purpose (pydantic and stdlib only): validating a recipe never imports cv2.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from imgsynth.augment.config import TransformSpec
from imgsynth.core.ranges import Range, warn_old_spelling
from imgsynth.core.stage import InputPath, StageConfig

BlendMode = Literal["hard", "alpha", "gaussian", "box", "poisson_normal", "poisson_mixed", "pyramid"]
BLEND_MODES: tuple[str, ...] = BlendMode.__args__


def _coco_summary(dataset: str) -> tuple[tuple[str, ...], int] | None:
    """(category names in id order, image count) of a COCO file, read with json only.

    None when the file cannot be read; the dataset reader reports why when the run builds.
    """
    path = Path(dataset)
    if path.is_dir():
        candidates = [path / "annotations.json"] + sorted((path / "annotations").glob("*.json"))
        path = next((p for p in candidates if p.is_file()), path)
    try:
        return _read_coco_summary(str(path), path.stat().st_mtime_ns)
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


@functools.lru_cache(maxsize=4)
def _read_coco_summary(path: str, mtime_ns: int) -> tuple[tuple[str, ...], int]:
    # Cached: count() and classes() are both asked while a run is planned.
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    cats = sorted(doc.get("categories", []), key=lambda c: c["id"])
    return tuple(str(c["name"]) for c in cats), len(doc.get("images", []))


def _is_old_step(step: Any) -> bool:
    """{TransformName: {param: value}}: one key, not 'name', holding the parameters."""
    return isinstance(step, dict) and len(step) == 1 and "name" not in step \
        and isinstance(next(iter(step.values())), dict | None)


def _photometric_entries(steps: Any) -> Any:
    """The old spelling of `photometric`, [{TransformName: {param: value}}], as the augment
    stage's transform entries [{name: TransformName, param: value}]."""
    if not isinstance(steps, list) or not any(_is_old_step(step) for step in steps):
        return steps
    warn_old_spelling("'photometric: [{TransformName: {param: value}}]'",
                      "'photometric: [{name: TransformName, param: value}]' like augment's transforms")
    entries = []
    for step in steps:
        if _is_old_step(step):
            (name, params), = step.items()
            step = {"name": name, **(params or {})}
        entries.append(step)
    return entries


class ObjectLibraryConfig(BaseModel):
    """Where objects (or distractors) come from."""

    model_config = ConfigDict(extra="forbid")

    path: InputPath = Field(..., description="rgba / image_mask: a folder with one sub-folder per class "
                      "(objects/<class>/*.png); for distractors the sub-folders are optional. "
                      "coco: the COCO dataset (annotation JSON or its folder).")
    format: Literal["rgba", "image_mask", "coco"] = Field(
        "rgba", description="rgba: PNG cutouts whose alpha is the object. image_mask: any image "
        "plus a mask file next to it named <stem><mask_suffix>.png (nonzero = object). coco: "
        "instances cut out of a COCO dataset by their segmentation.")
    mask_suffix: str = Field("_mask", min_length=1,
                             description="image_mask only: suffix of the mask file's stem.")
    classes: list[str] | None = Field(
        None, description="Use only these classes (default: every class folder / category).")
    max_objects: int | None = Field(
        None, ge=1, description="Load at most this many objects (first ones in sorted file / "
        "annotation order); bounds memory for large COCO libraries.")


class ComposeConfig(StageConfig):
    """Cut-and-paste scenes: objects pasted on backgrounds, labels from a z-buffer of visible pixels."""

    implementation: ClassVar[str] = "imgsynth.compose.scene:ComposeSource"

    type: Literal["compose"] = Field("compose", description="Source name.")
    objects: list[ObjectLibraryConfig] = Field(..., min_length=1, description="Object libraries (one or more).")
    backgrounds: InputPath = Field(..., description="Folder of background images (any sizes), or one image file.")
    distractors: ObjectLibraryConfig | None = Field(
        None, description="Objects pasted (and occluding) but never labeled.")
    scenes: int = Field(100, ge=1, description="Scenes a run makes when the recipe sets no count.")
    width: int | None = Field(640, ge=8, le=16384, description="Output width; null with height null keeps each background's size.")
    height: int | None = Field(480, ge=8, le=16384, description="Output height; null with width null keeps each background's size.")
    background_fit: Literal["crop", "resize"] = Field(
        "crop", description="crop: scale the background to cover width x height, then take a random "
        "crop. resize: stretch it to width x height.")
    objects_per_image: Range(int, ge=0) = Field((1, 4), description="Range [lo, hi] (inclusive) of labeled objects per scene.")
    class_weights: dict[str, float] = Field(
        default_factory=dict, description="Relative weight of each class when picking an object "
        "(missing classes weigh 1).")
    distractors_per_image: Range(int, ge=0) = Field((0, 0), description="Range [lo, hi] (inclusive) of distractors per scene.")
    scale: Range(float, gt=0) = Field(
        (0.15, 0.45), description="Range [lo, hi] of the object's longer side, log-uniform: a fraction of the "
        "background's shorter side (scale_unit fraction) or pixels (scale_unit pixels).")
    scale_unit: Literal["fraction", "pixels"] = Field("fraction", description="Unit of scale.")
    rotation: Range(float) = Field((-20.0, 20.0), description="Range [lo, hi] of in-plane rotation in degrees (uniform).")
    flip_horizontal: float = Field(0.5, ge=0, le=1, description="Probability of a left-right flip of the object.")
    flip_vertical: float = Field(0.0, ge=0, le=1, description="Probability of an upside-down flip of the object.")
    aspect_jitter: float = Field(0.1, ge=0, le=1, description="The object's aspect ratio is multiplied by exp(u), u uniform in [-j, j].")
    photometric: list[TransformSpec] = Field(
        default_factory=list, description="Per-object albumentations pipeline, seeded per object: "
        "pixel-level transforms written as in the augment stage, {name: TransformName, param: "
        "value} (e.g. [{name: RandomBrightnessContrast, p: 0.5}]). Deprecated, still read: the "
        "old spelling [{TransformName: {param: value}}].")
    allowed_region: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 1.0, 1.0), description="x1, y1, x2, y2 as fractions of the image: object centres fall inside.")
    avoid_mask: InputPath | None = Field(
        None, description="A grayscale image (resized to the output): no object centre lands on its nonzero pixels.")
    max_occlusion: float = Field(0.6, ge=0, le=1, description="A placement is refused when it would hide more than this fraction of an earlier labeled object.")
    max_truncation: float = Field(0.0, ge=0, le=1, description="Largest fraction of an object's pixels allowed outside the image.")
    perspective: tuple[float, float] | None = Field(
        None, description="Ground-plane perspective: scale factor at the top row and at the bottom "
        "row (e.g. [0.5, 1.5]: lower in the image is larger); null: none.")
    oversize: Literal["scale_down", "skip"] = Field(
        "scale_down", description="An object larger than the background: scale it down to fit, or "
        "skip it. Either is counted in the sample's meta.")
    placement_attempts: int = Field(30, ge=1, le=1000, description="Tries to place one object before it is left out (counted).")
    blend: dict[BlendMode, float] = Field(
        default_factory=lambda: {"hard": 1.0}, description="Blend modes and their weights; each "
        "object draws one: hard, alpha (the cutout's own alpha), gaussian, box (feathered), "
        "poisson_normal, poisson_mixed (cv2.seamlessClone), pyramid (Laplacian).")
    feather_radius: float = Field(2.0, ge=0, le=50, description="Edge softness in pixels for gaussian and box blending.")
    pyramid_levels: int = Field(4, ge=1, le=8, description="Levels of the Laplacian pyramid blend.")
    motion_blur: float = Field(0.0, ge=0, le=1, description="Probability of a motion blur of the pasted object.")
    motion_blur_length: Range(int) = Field((3, 11), description="Range [lo, hi] of the motion blur kernel length in pixels.")
    harmonize: float = Field(0.0, ge=0, le=1, description="Probability of matching the object's LAB statistics to its local background.")
    harmonize_strength: float = Field(0.5, ge=0, le=1, description="0: keep the object's colours, 1: full LAB mean/std transfer.")
    shadow: float = Field(0.0, ge=0, le=1, description="Probability of a simple drop shadow under the object.")
    shadow_offset: tuple[int, int] = Field((6, 8), description="Shadow offset dx, dy in pixels.")
    shadow_blur: float = Field(4.0, ge=0, le=50, description="Shadow softness (Gaussian sigma, pixels).")
    shadow_opacity: float = Field(0.5, ge=0, le=1, description="Darkness of the shadow.")
    min_visible_fraction: float = Field(0.2, ge=0, le=1, description="Instances showing less than this fraction of their pixels leave the labels.")
    min_area: int = Field(16, ge=1, description="Instances with fewer visible pixels leave the labels.")
    on_hidden: Literal["clutter", "resample"] = Field(
        "clutter", description="An instance under min_visible_fraction/min_area: clutter keeps its "
        "pixels unlabeled; resample draws the scene again (up to max_resample times, then clutter).")
    max_resample: int = Field(10, ge=1, le=1000, description="Scene redraws allowed by on_hidden: resample.")

    @model_validator(mode="before")
    @classmethod
    def _library_shorthand(cls, data: Any) -> Any:
        # `objects: path/to/folder` is the common case; expand it to a library config.
        if isinstance(data, dict):
            for key in ("objects", "distractors"):
                item = data.get(key)
                if isinstance(item, str):
                    item = {"path": item}
                if key == "objects" and isinstance(item, dict):
                    item = [item]
                if isinstance(item, dict):
                    data = {**data, key: item}
                elif isinstance(item, list):
                    data = {**data, key: [{"path": i} if isinstance(i, str) else i for i in item]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "photometric" in data:
            data = {**data, "photometric": _photometric_entries(data["photometric"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> ComposeConfig:
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither (keep background sizes)")
        x1, y1, x2, y2 = self.allowed_region
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError("allowed_region must be x1 < x2, y1 < y2, all within [0, 1]")
        if self.perspective is not None and min(self.perspective) <= 0:
            raise ValueError("perspective factors must be > 0")
        if not self.blend or sum(self.blend.values()) <= 0 or min(self.blend.values()) < 0:
            raise ValueError("blend needs at least one mode with a positive weight")
        if any(w < 0 for w in self.class_weights.values()):
            raise ValueError("class_weights must be >= 0")
        return self

    def classes(self) -> list[str] | None:
        names: set[str] = set()
        for lib in self.objects:
            if lib.classes is not None:
                names.update(lib.classes)
            elif lib.format == "coco":
                return None
            elif Path(lib.path).is_dir():
                names.update(p.name for p in Path(lib.path).iterdir() if p.is_dir())
        return sorted(names) or None

    def count(self) -> int | None:
        return self.scenes

    def provides(self) -> frozenset[str]:
        return frozenset()  # objects only: no image class, no text


class CopyPasteConfig(StageConfig):
    """Copy-paste augmentation (Ghiasi et al. 2021) of a COCO dataset: instances of one image
    pasted into another with large-scale jitter; covered annotations shrink or vanish."""

    implementation: ClassVar[str] = "imgsynth.compose.copy_paste:CopyPasteSource"

    type: Literal["copy_paste"] = Field("copy_paste", description="Source name.")
    dataset: InputPath = Field(..., description="The COCO dataset (annotation JSON or its folder).")
    format: Literal["coco"] = Field("coco", description="Dataset format.")
    copies: int = Field(1, ge=1, description="Augmented images made per dataset image.")
    pastes: Range(int, ge=0) = Field((1, 8), description="Range [lo, hi] of instances pasted from the other image.")
    scale: Range(float, gt=0) = Field((0.1, 2.0), description="Large-scale jitter: range [lo, hi] "
                                      "of the pasted image's scale factor (uniform).")
    flip_horizontal: float = Field(0.5, ge=0, le=1, description="Probability of flipping the pasted image left-right.")
    blend: Literal["hard", "gaussian"] = Field("gaussian", description="hard, or gaussian-feathered edges.")
    feather_radius: float = Field(2.0, ge=0, le=50, description="Edge softness in pixels for gaussian.")
    min_visible_fraction: float = Field(0.05, ge=0, le=1, description="Instances (old or pasted) showing less than this fraction leave the labels.")
    min_area: int = Field(10, ge=1, description="Instances with fewer visible pixels leave the labels.")

    _opened: Any = PrivateAttr(default=None)

    def classes(self) -> list[str] | None:
        """The dataset's categories in id order, so class ids match the input's."""
        doc = _coco_summary(self.dataset)
        return list(doc[0]) if doc else None

    def count(self) -> int | None:
        doc = _coco_summary(self.dataset)
        return doc[1] * self.copies if doc else None

    def provides(self) -> frozenset[str]:
        return frozenset()  # objects only: no image class, no text

    def share(self, out_dir: Path) -> None:
        from imgsynth.io.readers.index import share_dataset

        self._opened = share_dataset(out_dir, self.dataset, self.format, self.parsed_dataset())

    def parsed_dataset(self):
        """The dataset, read once per process."""
        if self._opened is None:
            from imgsynth.io.readers import read_dataset

            self._opened = read_dataset(self.dataset, format=self.format)
        return self._opened
