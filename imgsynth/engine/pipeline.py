"""The worker side of every engine: build the chain once, then make and write samples.

A chunk is a fixed range of indices. Its records are written to
`.imgsynth/chunks/NNNNNN.jsonl` only when the whole chunk is done, so a chunk file
in the output store means all its images are there (every file is written whole:
`imgsynth.io.store`).
"""

from __future__ import annotations

import hashlib
import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.errors import ImgsynthError, SampleError
from imgsynth.core.rng import sample_rng, seed_key
from imgsynth.core.sample import Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.io.image import encode_image
from imgsynth.io.store import Store, open_store
from imgsynth.recipes.load import parse_recipe, stage_names
from imgsynth.recipes.schema import OutputConfig, Recipe

CHUNK_DIR = ".imgsynth/chunks"


def chunk_file(chunk_id: int) -> str:
    """The chunk's record file, relative to the output store."""
    return f"{CHUNK_DIR}/{chunk_id:06d}.jsonl"


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
        files["image"] = self._put(f"images/{stem}.{ext}",
                                   encode_image(image, ext, self.output.quality), hashes)
        masks = [inst.mask for inst in sample.instances if inst.mask is not None]
        if self.output.masks and masks and len(masks) == len(sample.instances):
            id_map = instance_id_map(masks, image.shape[:2])
            files["mask"] = self._put(f"masks/{stem}.png", encode_image(id_map, "png"), hashes)
        sample.image = image
        return record_from_sample(sample, files, hashes)

    def _put(self, rel: str, data: bytes, hashes: dict[str, str]) -> str:
        self.store.write_bytes(rel, data)
        hashes[rel] = hashlib.sha256(data).hexdigest()
        return rel


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
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    raise TypeError(f"a stage returned a {image.dtype} image; stages return uint8 or float32 in [0, 1]")


class Pipeline:
    """Source + stages + writer, built once per worker process."""

    def __init__(self, recipe: Recipe, store: Store, classes: list[str] | None = None):
        self.recipe = recipe
        self.store = store
        ctx = BuildContext(seed=recipe.seed, out_dir=store.local_path, classes=classes)
        self.source_name, names = stage_names(recipe)
        self.source = recipe.source.build(ctx)
        self.stages = [(name, cfg.build(ctx)) for name, cfg in zip(names, recipe.stages)]
        self.writer = SampleWriter(store, recipe.output)

    @classmethod
    def from_resolved(cls, resolved: dict[str, Any], location: str, classes: list[str] | None):
        """In a worker: `location` is the store's path or URL (a store is reopened, not pickled)."""
        return cls(parse_recipe(resolved), open_store(location), classes)

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
                    yield index, self.source.generate(index, sample_rng(seed, self.source_name, index))
                except Exception as exc:  # noqa: BLE001 - handled per sample by run_chunk
                    yield index, exc
            return
        for start in range(0, len(indices), batch_size):
            group = list(indices[start:start + batch_size])
            try:
                results = self.source.generate_batch(
                    group, [sample_rng(seed, self.source_name, i) for i in group])
            except Exception as exc:  # noqa: BLE001 - the whole group failed
                results = [exc] * len(group)
            yield from zip(group, results)

    def finish(self, index: int, sample: Sample) -> Sample:
        """Record provenance and apply the stages to a generated sample."""
        seed = self.recipe.seed
        sample.index = index
        sample.seed_keys = [seed_key(seed, self.source_name, index)]
        if sample.passthrough:
            return sample
        for name, stage in self.stages:
            sample = stage.apply(sample, sample_rng(seed, name, index))
            sample.seed_keys.append(seed_key(seed, name, index))
        return sample

    def run_chunk(self, chunk_id: int, indices: range) -> ChunkResult:
        lines = []
        written = skipped = failed = 0
        for index, generated in self.generated(indices):
            try:
                if isinstance(generated, Exception):
                    raise generated
                record = self.writer.write(self.finish(index, generated))
                written += 1
            except SkipSample as skip:
                record = {"index": index, "skipped": skip.reason, "detail": skip.detail}
                skipped += 1
            except Exception as exc:  # noqa: BLE001 - reported with index and sources
                sources = _sources_of(self.source, index)
                if self.recipe.on_error == "fail":
                    detail = str(exc) if isinstance(exc, ImgsynthError) else _short_traceback(exc)
                    raise SampleError(detail, index=index, sources=sources) from exc
                record = {"index": index, "error": f"{type(exc).__name__}: {exc}", "sources": sources}
                failed += 1
            lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
        self.store.write_bytes(chunk_file(chunk_id), "".join(line + "\n" for line in lines).encode("utf-8"))
        return ChunkResult(chunk_id, written, skipped, failed)


def _sources_of(source: Any, index: int) -> list[str]:
    describe = getattr(source, "source_files", None)
    try:
        return list(describe(index)) if describe else []
    except Exception:  # noqa: BLE001 - best effort for the error message
        return []


def _short_traceback(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(exc).__name__}: {exc} [{where}]"
