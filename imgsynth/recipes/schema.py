"""Typed recipe models. Nothing deeper in the code re-checks the YAML."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ImageFormat = Literal["png", "jpg", "webp"]

# The most samples one run (or part) makes. The run plan is O(1) in the count, but a count
# beyond this is a typo (--count 1000000000000), not a data set.
MAX_COUNT = 1_000_000_000


class OutputConfig(BaseModel):
    """How samples are written and which label formats are built from the manifest."""

    model_config = ConfigDict(extra="forbid")

    image_format: ImageFormat = Field("png", description="Image file format: png (lossless), jpg or webp.")
    quality: int = Field(95, ge=1, le=100, description="JPEG/WebP quality (ignored for png).")
    png_deflate: Literal["auto", "rle", "lz77"] = Field(
        "auto", description="How PNG images are compressed (masks always use rle). rle: run-length "
        "matching and the Paeth filter, about 2x faster to encode than lz77 at about the same "
        "size (-13% to +1%) for photos and composed scenes; lz77: zlib's default matching, far smaller for rendered "
        "text lines. auto: what the source declares (lz77 for ocr, rle otherwise); the saved "
        "recipe.yaml records the choice.")
    formats: list[str] = Field(
        default_factory=list,
        description="Label formats built at the end of the run from manifest.jsonl: coco, yolo, "
        "yolo_seg, voc, imagefolder, csv, hf, semantic_masks, ocr_labels, gt_txt, mmocr, lmdb, "
        "icdar, webdataset.")
    classes: list[str] | None = Field(
        None, description="Class names in id order. Default: the source's classes, else the "
        "sorted names found in the manifest.")
    masks: bool = Field(True, description="Write masks/ID.png instance maps when instances have masks.")
    coco_segmentation: Literal["rle", "polygon"] = Field(
        "rle", description="COCO segmentation encoding for instances with masks.")
    preview: bool = Field(True, description="Write preview.png (a contact sheet) at the end.")
    preview_count: int = Field(16, ge=1, le=256, description="Samples on the preview contact sheet.")
    shard_size: int = Field(1000, ge=1, description="Samples per WebDataset tar shard.")

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str] | None) -> list[str] | None:
        # A repeated name would shift the ids of every class after it.
        repeated = sorted({name for name in classes or [] if classes.count(name) > 1})
        if repeated:
            raise ValueError(f"class names must be distinct; repeated: {', '.join(map(repr, repeated))}")
        return classes


class Recipe(BaseModel):
    """A whole run. `source` and `stages` are validated through the registries."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Part name, set by imgsynth for entries of `parts:`; "
                             "it keys the per-sample randomness so parts differ.")
    seed: int = Field(0, ge=0, description="Run seed; with the recipe it fixes every output byte.")
    count: int | None = Field(None, ge=1, le=MAX_COUNT, description="Samples to make (at most a "
                              "billion). Default: what the source offers (e.g. images x copies).")
    workers: int = Field(1, ge=1, le=512, description="Worker processes of the local engine.")
    engine: Literal["local", "ray"] = Field("local", description="local process pool or Ray Data.")
    max_image_pixels: int | None = Field(
        None, ge=0, description="Largest input image (width x height) a run decodes; a larger one "
        "(e.g. a decompression bomb: a small file declaring 30000x30000) is its sample's error, "
        "naming the file, found from the header before any pixel is decoded. 0: no limit. "
        "Default: IMGSYNTH_MAX_IMAGE_PIXELS, else 8192 x 8192 = 67,108,864; the saved "
        "recipe.yaml records the value used.")
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="fail: stop at the first failing sample (exit 1, --resume completes). "
        "skip: record it in errors.jsonl and go on.")
    source: Any = Field(..., description="Where samples come from: one of the registered sources (see below).")
    stages: list[Any] = Field(default_factory=list, description="Stages applied in order to every sample.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Writing options.")
    imgsynth: dict[str, Any] | None = Field(
        None, description="Recorded by imgsynth in the saved recipe (versions); ignored on load.")
