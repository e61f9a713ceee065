"""Recipe config of the `augment` stage (built as imgsynth.augment.stage.AugmentStage).

Pydantic only; albumentations is imported while validating transform names, never when
this module is imported. `TransformSpec` is how a recipe writes an albumentations or
imgsynth transform wherever it takes one (here, and compose's `photometric`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imgsynth.core.stage import StageConfig


class TransformSpec(BaseModel):
    """One transform, written `{name: TransformName, param: value, ...}` wherever a recipe takes one.

    E.g. `{name: Rotate, limit: 30, border_mode: constant, p: 0.7}`: the parameters are the
    further keys. Checked when the recipe loads (unknown names and parameters, with a
    did-you-mean)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        description="An albumentations 2.0.8 class name (e.g. HorizontalFlip, Rotate, Affine, "
        "GaussianBlur, ImageCompression, RandomBrightnessContrast) or an imgsynth transform: "
        "imgsynth.GaussianNoise, imgsynth.PoissonNoise, imgsynth.SaltPepper, "
        "imgsynth.SpeckleNoise, imgsynth.Rotate, imgsynth.HorizontalFlip, imgsynth.VerticalFlip, "
        "imgsynth.Rot90, imgsynth.Transpose, and the multi-image imgsynth.Mosaic, imgsynth.MixUp, "
        "imgsynth.CutMix, imgsynth.CopyPaste (other images of the data set: after a dataset "
        "source, or in a DataLoader). Every other key is a parameter of that transform "
        "(border_mode/interpolation may be given as names: constant, reflect, replicate; "
        "nearest, linear, cubic).")

    @model_validator(mode="after")
    def _known_transform(self) -> TransformSpec:
        from imgsynth.augment.pipeline import make_transform

        make_transform(self.name, self.params)  # raises ValueError naming the fix
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AugmentConfig(StageConfig):
    """Classical augmentation that keeps labels right: albumentations plus imgsynth's
    exact flips/rotation, fast saturating noise and multi-image transforms, compiled into
    one warp and one colour pass per sample."""

    implementation: ClassVar[str] = "imgsynth.augment.stage:AugmentStage"

    type: Literal["augment"] = Field("augment", description="Stage type: classical augmentation.")
    transforms: list[TransformSpec] = Field(
        min_length=1, description="Transforms applied in order, each with probability p.")
    fuse: bool = Field(
        True, description="Compile the transforms: consecutive geometric ones (flips, rotations, "
        "affine, perspective, crops, resizes, pads) resample the image once, with one matrix, "
        "and consecutive uint8 colour ones (brightness, contrast, gamma, HSV, ColorJitter, "
        "Normalize, ...) make one lookup-table pass; parameters are drawn as without fusion, so "
        "labels land in the same places. Sharper and faster; pixels differ slightly from the "
        "unfused chain's. false: every transform resamples on its own (the pixels of earlier "
        "versions).")
    box_method: Literal["largest_box", "ellipse"] = Field(
        "largest_box", description="How a box without mask or polygon follows a rotation: the "
        "box around its rotated corners (largest_box, never cuts the object) or around its "
        "rotated inscribed ellipse (ellipse, tighter for round objects). Instances with a mask "
        "get the tight box of the transformed mask; with polygons, of the clipped polygons.")
    min_area: float = Field(
        1.0, ge=0.0, description="Drop an instance whose box (after clipping to the image) is "
        "smaller than this many square pixels.")
    min_visibility: float = Field(
        0.0, ge=0.0, le=1.0, description="Drop an instance when less than this fraction of it "
        "is left inside the image after the transforms.")
    keypoint_flip_pairs: list[tuple[int, int]] = Field(
        [], description="Pairs of keypoint indices that trade places when the transforms "
        "mirror the image (a flip or transpose, by imgsynth or albumentations), e.g. [[1, 2], "
        "[3, 4]] for COCO's left/right eyes and ears: otherwise a mirrored left eye keeps the "
        "name 'left'. Mirroring is read per instance from the orientation of its moved box.")
    skip_empty: bool = Field(
        False, description="Leave a sample out (counted as skipped) when it had instances and "
        "all of them were dropped.")
