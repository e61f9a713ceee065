"""The worker side of every engine: build the chain once, then make and write samples.

A chunk is a fixed range of indices. Its records are written to
`.imgsynth/chunks/NNNNNN.jsonl` only when the whole chunk is done, so a chunk file
in the output store means all its images are there (every file is written whole:
`imgsynth.io.store`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.errors import EnvironmentFault, ImgsynthError, SampleError, environment_cause
from imgsynth.core.rng import sample_rng, seed_key
from imgsynth.core.sample import Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.io.image import encode_image, pixel_limit
from imgsynth.io.store import Store, open_store
from imgsynth.recipes.load import parse_recipe, stage_names
from imgsynth.recipes.schema import OutputConfig, Recipe

CHUNK_DIR = ".imgsynth/chunks"


def chunk_file(chunk_id: int) -> str:
    """The chunk's record file, relative to the output store."""
    return f"{CHUNK_DIR}/{chunk_id:06d}.jsonl"


def chunk_id_of(rel: str) -> int | None:
    """The chunk number of a chunk record file (chunk_file's inverse); None for another file."""
    name = rel.rsplit("/", 1)[-1]
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "jsonl" and stem.isdigit() else None


def file_stem(index: int) -> str:
    """File names come from the sample index only (id = index + 1), never from labels."""
    return f"{index + 1:08d}"


@dataclass
class ChunkResult:
    chunk_id: int
    written: int
    skipped: int
    failed: int


class SampleWriter:
    """Encodes one finished sample's files and returns its manifest record."""

    def __init__(self, store: Store, output: OutputConfig):
        self.store = store
        self.output = output

    def write(self, sample: Sample) -> dict[str, Any]:
        from imgsynth.io.writers.manifest import record_from_sample

        stem = file_stem(sample.index)
        image = _to_uint8(sample.image)
        files: dict[str, str] = {}
        hashes: dict[str, str] = {}
        ext = "jpg" if self.output.image_format == "jpg" else self.output.image_format
        files["image"] = self._put(
            f"images/{stem}.{ext}",
            encode_image(image, ext, self.output.quality, png_deflate=self.output.png_deflate), hashes)
        masks = [inst.mask for inst in sample.instances if inst.mask is not None]
        if self.output.masks and masks and len(masks) == len(sample.instances):
            id_map = instance_id_map(masks, image.shape[:2])
            files["mask"] = self._put(f"masks/{stem}.png",
                                      encode_image(id_map, "png", png_deflate="rle"), hashes)
        sample.image = image
        return record_from_sample(sample, files, hashes)

    def _put(self, rel: str, data: bytes, hashes: dict[str, str]) -> str:
        put_file(self.store, rel, data)
        hashes[rel] = hashlib.sha256(data).hexdigest()
        return rel


def put_file(store: Store, rel: str, data: bytes) -> None:
    """Put a file in the output store. A file that cannot be written is never a sample's
    fault (full disk, read-only folder, lost bucket): it stops the run, resumably."""
    try:
        store.write_bytes(rel, data)
    except Exception as exc:  # noqa: BLE001 - any failure to write is the environment's
        raise EnvironmentFault.of(exc, f"{store}/{rel}") from exc


def stop_if_environment(exc: BaseException) -> None:
    """Raise the run-stopping EnvironmentFault when `exc` comes from the machine (no memory,
    full disk, I/O error) rather than from the sample; otherwise return."""
    if isinstance(exc, EnvironmentFault):
        raise exc
    if environment_cause(exc) is not None:
        raise EnvironmentFault.of(exc) from exc


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Samples made in this process use one torch thread, as every worker process does
    (imgsynth.engine.local, the Ray actors): torch on the CPU sums in an order that depends
    on its thread count, so a diffusion or GAN image made with 2 threads can differ by a
    level from the same image made with 1, and the bytes would depend on --workers."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def instance_id_map(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """uint16 map: 0 background, k for the k-th instance (later instances on top)."""
    id_map = np.zeros(shape, dtype=np.uint16)
    for k, mask in enumerate(masks, start=1):
        id_map[mask] = k
    return id_map


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        low, high = float(image.min()), float(image.max())
        if low < -1e-3 or high > 1.0 + 1e-3:  # e.g. albumentations Normalize: not a picture any more
            raise ValueError(f"a stage returned float pixels in [{low:.3g}, {high:.3g}], not [0, 1] "
                             "(Normalize and similar transforms make training tensors, not images): "
                             "remove it from the run's recipe and normalize in the DataLoader")
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    raise TypeError(f"a stage returned a {image.dtype} image; stages return uint8 or float32 in [0, 1]")


@dataclass
class Failure:
    """A sample whose source, a stage or its writer raised: what the manifest and the
    `on_error: fail` message say about it. Plain data, so it crosses to another process
    (a split Ray run) where the exception itself might not pickle."""

    error: str  # "TypeName: message", as errors.jsonl records it
    detail: str  # what on_error: fail reports
    sources: list[str]

    @classmethod
    def of(cls, exc: Exception, sources: list[str]) -> Failure:
        detail = str(exc) if isinstance(exc, ImgsynthError) else _short_traceback(exc)
        named = getattr(exc, "file", None) if isinstance(exc, ImgsynthError) else None
        if named and named not in sources:  # e.g. the background image that was corrupt
            sources = [*sources, named]
        return cls(f"{type(exc).__name__}: {exc}", detail, sources)


# What a sample is after some parts of the chain: done so far, left out on purpose, or failed.
Outcome = Sample | SkipSample | Failure


class Pipeline:
    """Source + stages + writer, built once per worker process.

    The chain's parts are numbered: 0 is the source, k the k-th stage. `parts` builds
    only some of them, for a run split across processes (the Ray engine runs the parts
    up to the last GPU stage on GPU actors and the rest on CPU workers)."""

    def __init__(self, recipe: Recipe, store: Store, classes: list[str] | None = None,
                 parts: range | None = None, in_worker: bool = False):
        self.recipe = recipe
        self.store = store
        ctx = BuildContext(out_dir=store.local_path, classes=classes, in_worker=in_worker)
        # From the recipe, not from building the source: the parts built here may not include it.
        ctx.samples = recipe.source.sample_pool(ctx)
        parts = range(len(recipe.stages) + 1) if parts is None else parts
        self.source_name, names = stage_names(recipe)
        with self.limits():  # building decodes assets (object cutouts, masks)
            self.source = recipe.source.build(ctx) if 0 in parts else None
            self.stages = [(name, cfg.build(ctx) if k in parts else None)
                           for k, (name, cfg) in enumerate(zip(names, recipe.stages), start=1)]
        self.writer = SampleWriter(store, recipe.output)

    def limits(self):
        """The recipe's input limits, in force wherever the chain reads files (imgsynth.io.image)."""
        return pixel_limit(self.recipe.max_image_pixels)

    @classmethod
    def from_resolved(cls, resolved: dict[str, Any], location: str, classes: list[str] | None,
                      parts: range | None = None):
        """In a worker: `location` is the store's path or URL (a store is reopened, not pickled)."""
        return cls(parse_recipe(resolved), open_store(location), classes, parts, in_worker=True)

    def close(self) -> None:
        """Let go of what the source and stages hold (models, GPU memory) once this
        pipeline is no longer needed (the driver of a run whose workers build their own)."""
        for part in (self.source, *(stage for _, stage in self.stages)):
            close = getattr(part, "close", None)
            if close is not None:
                close()
        self.source, self.stages = None, []

    def generated(self, indices: range):
        """(index, Sample or the exception that replaced it) from the source, in order.

        A source with `generate_batch` (e.g. diffusion) gets its indices in groups of its
        `batch_size`; each image still has its own Generator, so results do not depend on
        the grouping."""
        seed = self.recipe.seed
        batch_size = getattr(self.source, "batch_size", 1)
        if not hasattr(self.source, "generate_batch") or batch_size <= 1:
            for index in indices:
                try:
                    with self.limits():
                        made = self.source.generate(index, sample_rng(seed, self.source_name, index))
                    yield index, made
                except Exception as exc:  # noqa: BLE001 - handled per sample by write_chunk
                    stop_if_environment(exc)
                    yield index, exc
            return
        for start in range(0, len(indices), batch_size):
            group = list(indices[start:start + batch_size])
            try:
                with self.limits():
                    results = self.source.generate_batch(
                        group, [sample_rng(seed, self.source_name, i) for i in group])
            except Exception as exc:  # noqa: BLE001 - the whole group failed
                stop_if_environment(exc)
                results = [exc] * len(group)
            yield from zip(group, results)

    def outcomes(self, indices: range, stages: range | None = None):
        """(index, Outcome) for each index: generated, provenance recorded, then the
        given stages (0-based; default all) applied."""
        seed = self.recipe.seed
        for index, generated in self.generated(indices):
            if isinstance(generated, Exception):
                yield index, _outcome_of(generated, _sources_of(self.source, index))
                continue
            generated.index = index
            generated.seed_keys = [seed_key(seed, self.source_name, index)]
            yield index, self.apply_stages(index, generated, stages)

    def apply_stages(self, index: int, outcome: Outcome, stages: range | None = None) -> Outcome:
        """The given stages (0-based; default all) applied to a sample in flight."""
        if not isinstance(outcome, Sample) or outcome.passthrough:
            return outcome
        seed = self.recipe.seed
        sample = outcome
        try:
            for k in range(len(self.stages)) if stages is None else stages:
                name, stage = self.stages[k]
                with self.limits():
                    sample = stage.apply(sample, sample_rng(seed, name, index))
                sample.seed_keys.append(seed_key(seed, name, index))
        except Exception as exc:  # noqa: BLE001 - handled per sample by write_chunk
            stop_if_environment(exc)
            return _outcome_of(exc, list(outcome.source_files))
        return sample

    def run_chunk(self, chunk_id: int, indices: range) -> ChunkResult:
        return self.write_chunk(chunk_id, self.outcomes(indices))

    def write_chunk(self, chunk_id: int, outcomes) -> ChunkResult:
        """Write each finished sample's files, then the chunk's records (the chunk file
        last: its presence means the chunk is done)."""
        lines = []
        written = skipped = failed = 0
        for index, outcome in outcomes:
            if isinstance(outcome, Sample):
                try:
                    outcome = self.writer.write(outcome)
                except Exception as exc:  # noqa: BLE001 - an image that cannot be encoded
                    stop_if_environment(exc)
                    outcome = _outcome_of(exc, list(outcome.source_files))
            if isinstance(outcome, SkipSample):
                record = {"index": index, "skipped": outcome.reason, "detail": outcome.detail}
                skipped += 1
            elif isinstance(outcome, Failure):
                if self.recipe.on_error == "fail":
                    raise SampleError(outcome.detail, index=index, sources=outcome.sources)
                record = {"index": index, "error": outcome.error, "sources": outcome.sources}
                failed += 1
            else:
                record = outcome
                written += 1
            lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
        put_file(self.store, chunk_file(chunk_id), "".join(line + "\n" for line in lines).encode("utf-8"))
        return ChunkResult(chunk_id, written, skipped, failed)


def _outcome_of(exc: Exception, sources: list[str]) -> SkipSample | Failure:
    """A failure names the files it came from: the source's own list for a sample that
    was never made, else the files the sample was made from."""
    return exc if isinstance(exc, SkipSample) else Failure.of(exc, sources)


def _sources_of(source: Any, index: int) -> list[str]:
    # Only sources that can name their files without making the sample define this.
    describe = getattr(source, "source_files", None)
    try:
        return list(describe(index)) if describe else []
    except Exception:  # noqa: BLE001 - best effort for the error message
        return []


def _short_traceback(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(exc).__name__}: {exc} [{where}]"
