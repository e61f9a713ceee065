"""What a stage is, and the context it is built with.

A recipe names one *source* (makes a sample from an index) and a chain of
*stages* (turn a sample into a sample). Both are built once per worker process
from their typed config, then called per sample with that sample's Generator.
Stages never touch global random state and never know which engine runs them.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from imgsynth.core.sample import Sample


class SkipSample(Exception):
    """Raised by a source or stage to leave a sample out on purpose, with a reason.

    Skips are counted per reason and listed in DIR/skipped.jsonl; they are not errors.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self):  # pickled with its fields (it crosses processes in a split Ray run)
        return SkipSample, (self.reason, self.detail)


# Where a run's driver puts what its workers read instead of redoing (StageConfig.share);
# removed when the samples are done.
SHARED_DIR = ".imgsynth/shared"


@dataclass
class BuildContext:
    """What a stage may know about the run when it is built (once per worker).

    No seed: randomness comes per sample from (seed, stage, index) (imgsynth.core.rng), so a
    built part is the same for every seed and a new seed need not build it again (the studio)."""

    out_dir: Path | None = None
    classes: list[str] | None = None  # the run's class list, when known
    # Built in a worker process of a run: what the driver shared (StageConfig.share) is there.
    in_worker: bool = False
    # Other samples of the data set, for stages that combine several (imgsynth.augment.multi:
    # `len(samples)`, `samples.sample(i)`). A chain built from a recipe gets its source
    # config's `sample_pool(ctx)` (imgsynth.engine.pipeline), in every process that builds
    # any part of it: a split run builds the source and later stages in different processes.
    samples: Any = None


class Source(Protocol):
    """Built once per worker as `Implementation(config, ctx)`; makes sample `index` from its
    Generator. Optional: `generate_batch(indices, rngs)` with a `batch_size`, `source_files(index)`
    (named in errors.jsonl when the sample fails), `close()` (let go of models)."""

    def generate(self, index: int, rng: np.random.Generator) -> Sample: ...


class Stage(Protocol):
    """Built once per worker as `Implementation(config, ctx)`; turns a sample into a sample."""

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample: ...


class _ReadByTheRun:
    """Marks a config field whose value names files or folders a run reads."""

    def __repr__(self) -> str:
        return "InputPath"


READ_BY_THE_RUN = _ReadByTheRun()
# A file or folder the run reads (a dataset, backgrounds, fonts, ...). `--out` may not lie
# inside one (the next run would read its own output); see StageConfig.input_paths.
InputPath = Annotated[str, READ_BY_THE_RUN]


def _reads_input(annotation: Any, metadata: list[Any]) -> bool:
    if any(m is READ_BY_THE_RUN for m in metadata):
        return True
    if annotation is Path:
        return True
    if typing.get_origin(annotation) is Annotated:
        return any(m is READ_BY_THE_RUN for m in typing.get_args(annotation)[1:]) \
            or _reads_input(typing.get_args(annotation)[0], [])
    return any(_reads_input(arg, []) for arg in typing.get_args(annotation))


def _input_values(model: BaseModel) -> Iterator[Path]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if _reads_input(info.annotation, info.metadata):
            for item in value if isinstance(value, list | tuple) else [value]:
                if isinstance(item, str | Path) and str(item):
                    yield Path(item)
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, BaseModel):
                yield from _input_values(item)


class StageConfig(BaseModel):
    """Base of every source/stage config: typed, strict, documented.

    Subclasses set `type: Literal["name"]` and name the class they build, once, as a
    "module:Class" string in `implementation`; `build` imports it only then (so validating
    a recipe never imports cv2 or torch) and returns `Class(config, ctx)`.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # "module:Class" of the source or stage this config builds, called as Class(config, ctx).
    implementation: ClassVar[str] = ""
    # For sources: the PNG compression that suits their images (output.png_deflate: auto).
    png_deflate: ClassVar[str] = "rle"

    def build(self, ctx: BuildContext) -> Any:
        from imgsynth.core.registry import resolve

        if not self.implementation:
            raise NotImplementedError(f"{type(self).__name__} names no implementation")
        return resolve(self.implementation)(self, ctx)

    def share(self, out_dir: Path) -> None:
        """Write under out_dir/SHARED_DIR what worker processes should read instead of
        redoing (the driver calls this before they start, after every part is built)."""

    def classes(self) -> list[str] | None:
        """Class names this config declares (fixes label ids), or None."""
        return None

    def provides(self) -> frozenset[str] | None:
        """For sources: the per-sample fields their samples carry ("label": an image class,
        "text": a transcription), so that a label format needing one is refused before
        anything is written; None when not known in advance."""
        return None

    def count(self) -> int | None:
        """For sources: how many samples a run makes when --count is not given."""
        return None

    def sample_pool(self, ctx: BuildContext) -> Any:
        """For sources: the samples of their data set by position (`len(pool)`,
        `pool.sample(i)`), for stages that combine a sample with others (BuildContext.samples);
        None when they have none. Made from the config alone (the source object may live in
        another process) and cheap until drawn from: every part of a chain gets it."""
        return None

    def input_paths(self) -> list[Path]:
        """The files and folders this config reads: every field typed `InputPath` (or
        `Path`), in nested configs too."""
        return list(_input_values(self))
