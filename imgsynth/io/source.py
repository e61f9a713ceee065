"""The `dataset` source: samples from a labeled dataset on disk (COCO, YOLO, VOC, ImageFolder).

Sample index -> (image, copy): with P = copies (+1 when include_originals) copies per
image and N images, index i is image (i // P) % N, copy (i % P) + P * (i // (N * P)).
So the default count N * P visits every image P times, and a larger --count goes on
with further rounds of copies. With include_originals, copy 0 of the first round is the
image unchanged (`Sample.passthrough`, stages leave it alone).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from imgsynth.core.stage import BuildContext, StageConfig


class DatasetSourceConfig(StageConfig):
    """Read a labeled dataset (boxes, masks, class labels) and make copies of each image."""

    implementation: ClassVar[str] = "imgsynth.io.source:DatasetSource"

    type: Literal["dataset"] = Field(description="Source type: a labeled dataset on disk.")
    path: Path = Field(
        description="Dataset folder (COCO: folder with annotations.json or annotations/*.json, "
        "or the JSON file; YOLO: folder with images/ and labels/, or data.yaml; VOC: folder with "
        "Annotations/ and JPEGImages/; ImageFolder: folder of class folders).")
    format: Literal["auto", "coco", "yolo", "voc", "imagefolder"] = Field(
        "auto", description="Label format; auto detects it from the files present.")
    copies: int = Field(1, ge=0, le=100_000,
                        description="Variants made per image (each goes through the stages).")
    include_originals: bool = Field(
        False, description="Also write each image once unchanged (stages skip it).")

    _dataset: Any = PrivateAttr(default=None)

    @field_validator("path")
    @classmethod
    def _path_exists(cls, path: Path) -> Path:
        if not path.exists():
            raise ValueError(f"dataset path '{path}' does not exist (relative paths start at the "
                             "working directory)")
        return path

    @model_validator(mode="after")
    def _makes_something(self) -> DatasetSourceConfig:
        if self.copies == 0 and not self.include_originals:
            raise ValueError("copies is 0 and include_originals is false: nothing to make")
        return self

    def dataset(self):
        """The opened dataset (read once per process)."""
        if self._dataset is None:
            from imgsynth.io.readers import read_dataset

            self._dataset = read_dataset(self.path, self.format)
            if len(self._dataset) == 0:
                from imgsynth.core.errors import InputError

                raise InputError("the dataset has no images", file=str(self.path),
                                 fix="check the path and the format")
        return self._dataset

    def classes(self) -> list[str]:
        return list(self.dataset().classes)

    def count(self) -> int:
        return len(self.dataset()) * self.per_image

    @property
    def per_image(self) -> int:
        return self.copies + int(self.include_originals)

    def provides(self) -> frozenset[str]:
        """An ImageFolder dataset's images have classes; other formats hold objects."""
        return frozenset({"label"}) if self.dataset().format == "imagefolder" else frozenset()

    def opened(self, ctx: BuildContext):
        """The dataset as a process of the run reads it: in a worker what the driver shared,
        else the parse (imgsynth.io.readers.index)."""
        from imgsynth.io.readers.index import shared_or_parsed

        return shared_or_parsed(ctx, self.path, self.format, self.dataset)

    def sample_pool(self, ctx: BuildContext) -> DatasetImages:
        """The images for stages that combine several (Mosaic, MixUp, ...), opened when first
        drawn from."""
        return DatasetImages(self, ctx)

    def share(self, out_dir: Path) -> None:
        """Workers read the parsed dataset entry by entry instead of each parsing every
        label file again (imgsynth.io.readers.index)."""
        from imgsynth.io.readers.index import share_dataset

        self._dataset = share_dataset(out_dir, self.path, self.format, self.dataset())


class DatasetSource:
    """The images of a dataset, each `per_image` times (see the module's docstring)."""

    def __init__(self, config: DatasetSourceConfig, ctx: BuildContext):
        self.dataset = config.opened(ctx)
        self.per_image = config.per_image
        self.include_originals = config.include_originals
        self._last: tuple[int, Any] | None = None  # (dataset image, its sample as read)

    def __len__(self) -> int:
        return len(self.dataset) * self.per_image

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset image, copy number) of a sample index."""
        rounds, within = divmod(index, len(self))
        image, copy = divmod(within, self.per_image)
        return image, copy + rounds * self.per_image

    def source_files(self, index: int) -> list[str]:
        """The image and label file of a sample, named in errors.jsonl when it fails."""
        entry = self.dataset.entries[self.locate(index)[0]]
        return [str(entry.image)] + ([str(entry.label_file)] if entry.label_file else [])

    def generate(self, index: int, rng) -> Any:
        image, copy = self.locate(index)
        sample = self._read(image)
        sample.index = index
        sample.meta = {"source_index": image, "copy": copy}
        sample.passthrough = self.include_originals and copy == 0
        return sample


    def _read(self, image: int) -> Any:
        """The image's sample as on disk. The copies of an image are consecutive indices (one
        chunk of a worker), so the last image read is kept and each copy gets its own deep
        copy (stages change samples in place): one decode per image instead of one per copy."""
        if self._last is None or self._last[0] != image:
            self._last = None  # a failed read keeps nothing
            self._last = (image, self.dataset.load(image))
        return deepcopy(self._last[1])


class DatasetImages:
    """A dataset's images with their labels, as they are on disk, by position: the pool
    multi-image transforms (imgsynth.augment.multi) draw other images from. Made from the
    config, so the same wherever a stage is built; the dataset is opened on the first draw
    (a chain without such a transform never opens it)."""

    def __init__(self, config: DatasetSourceConfig, ctx: BuildContext):
        self.config = config
        self.ctx = ctx
        self._dataset = None

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = self.config.opened(self.ctx)
        return self._dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, index: int) -> Any:
        return self.dataset.load(index)
