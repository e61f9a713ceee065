"""`imgsynth run`: plan a run, execute it on an engine, build the labels from the manifest.

Order matters for the product contract:
1. validate the recipe and build the pipeline once (every recipe/file/model error
   surfaces here, exit 2, before anything is written);
2. write DIR/recipe.yaml, then chunks of samples (every file written whole);
3. assemble manifest.jsonl from the chunk records, in index order, then every label
   format and preview.png from the manifest, so labels always agree with the images.
DIR is an output store (`imgsynth.io.store`): a folder, or a URL such as s3://bucket/prefix.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from imgsynth.core.errors import EnvironmentFault, ImgsynthError, RecipeError
from imgsynth.core.registry import FORMATS, lookup
from imgsynth.core.versions import RECORDED_PACKAGES, run_versions
from imgsynth.core.stage import SHARED_DIR
from imgsynth.engine.pipeline import (CHUNK_DIR, ChunkResult, Pipeline, chunk_file, chunk_id_of,
                                     one_torch_thread)
from imgsynth.engine.progress import Progress
from imgsynth.io.atomic import atomic_writer
from imgsynth.io.lock import OutputLock
from imgsynth.io.store import LocalStore, Store, open_store
from imgsynth.io.writers import check_class_names
from imgsynth.io.writers.manifest import ManifestRecords
from imgsynth.recipes.load import (apply_overrides, dump_yaml, load_yaml, parse_recipe,
                                   resolved_dict, safe_load)
from imgsynth.recipes.schema import MAX_COUNT, Recipe


@dataclass
class RunSummary:
    out_dir: Path | str  # the --out folder, or its URL
    count: int
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0
    formats: list[str] = field(default_factory=list)


def chunk_size_for(count: int) -> int:
    """Fixed by the count alone (not the worker count), so resume sees the same chunks."""
    return min(256, max(8, math.ceil(count / 512)))


@dataclass
class Part:
    """One data set of a run: the whole recipe, or one entry of its `parts:`."""

    name: str | None
    recipe: Recipe
    resolved: dict[str, Any]

    def out(self, store: Store) -> Store:
        return store.child(self.name) if self.name else store


SHARED_KEYS = ("seed", "on_error", "workers", "engine", "max_image_pixels")
# Per-record label formats are written by --workers processes from this many records on
# (about 3-7 ms per record for yolo_seg / semantic_masks; a pool starts in 1-2 s).
PARALLEL_FINALIZE_MIN = 2000


RecipeInput = str | Path | Mapping[str, Any]  # a YAML file, or the recipe itself


def recipe_name(recipe: RecipeInput) -> str:
    """How messages name the recipe: its file, or that it was given as a mapping."""
    return "(recipe given as a mapping)" if isinstance(recipe, Mapping) else str(recipe)


def recipe_data(recipe: RecipeInput) -> dict[str, Any]:
    """A fresh, mutable copy of the recipe mapping (the caller's is never changed)."""
    return copy.deepcopy(dict(recipe)) if isinstance(recipe, Mapping) else load_yaml(recipe)


def prepare(recipe: RecipeInput, *, seed: int | None = None, count: int | None = None,
            workers: int | None = None, engine: str | None = None,
            overrides: tuple[str, ...] | list[str] = ()) -> tuple[list[Part], dict[str, Any]]:
    """Load, override and validate a recipe (a YAML path or a mapping); return its parts and
    its resolved (saved) form.

    A recipe with `parts: {name: {...}}` makes one data set per part in DIR/<name>/; the
    top-level seed/on_error/workers/engine apply to every part unless the part sets them.
    """
    data, file = recipe_data(recipe), recipe_name(recipe)
    data.pop("imgsynth", None)
    data = apply_overrides(data, list(overrides))
    cli = {k: v for k, v in (("seed", seed), ("count", count), ("workers", workers),
                             ("engine", engine)) if v is not None}
    model = training_model(data)
    if model:
        raise RecipeError(f"this is a training recipe (model: {model}), not a data set recipe",
                          file=file, fix=f"train with `imgsynth train {model} {file} --out runs/{model}`, "
                                         "then make images with `imgsynth sample`")
    if "parts" not in data:
        part = _prepare_part(None, {**data, **cli}, file)
        return [part], part.resolved
    parts_data = data.pop("parts")
    unknown = [k for k in data if k not in SHARED_KEYS]
    if unknown:
        raise RecipeError(f"with 'parts', the top level takes only {', '.join(SHARED_KEYS)}; "
                          f"move '{unknown[0]}' into a part", key=unknown[0], file=file)
    if not isinstance(parts_data, dict) or not parts_data:
        raise RecipeError("expected a mapping of part names to recipes", key="parts", file=file)
    parts = []
    for name, part_data in parts_data.items():
        if not isinstance(part_data, dict):
            raise RecipeError("expected a recipe mapping", key=f"parts.{name}", file=file)
        if not str(name).isidentifier():
            raise RecipeError("part names are folder names: letters, digits and _",
                              key=f"parts.{name}", file=file)
        merged = {**data, **part_data, **cli, "name": str(name)}
        parts.append(_prepare_part(str(name), merged, file, prefix=f"parts.{name}"))
    return parts, {"parts": {p.name: p.resolved for p in parts}}


def _prepare_part(name: str | None, data: dict[str, Any], file: str, prefix: str = "") -> Part:
    recipe = parse_recipe(data, file=file, prefix=prefix)
    key = f"{prefix}.count" if prefix else "count"
    if recipe.count is None:
        offered = recipe.source.count()
        if offered is None:
            raise RecipeError(f"the '{recipe.source.type}' source needs a sample count",
                              key=key, file=file, fix="add 'count: N' to the recipe or pass --count N")
        if offered > MAX_COUNT:
            raise RecipeError(f"the '{recipe.source.type}' source offers {offered:,} samples, more "
                              f"than one run makes (at most {MAX_COUNT:,})", key=key, file=file,
                              fix="set a count, or split the work into parts or several runs")
        recipe = recipe.model_copy(update={"count": offered})
    if recipe.max_image_pixels is None:  # the limit in force now, recorded for workers and resume
        from imgsynth.io.image import max_image_pixels

        recipe = recipe.model_copy(update={"max_image_pixels": max_image_pixels() or 0})
    provided = recipe.source.provides()
    for i, fmt in enumerate(recipe.output.formats):
        where = f"{prefix + '.' if prefix else ''}output.formats.{i}"
        lookup(FORMATS, fmt, key=where, what="label format")
        missing = [m for m in FORMATS[fmt].requires if importlib.util.find_spec(m) is None]
        if missing:
            raise RecipeError(f"the '{fmt}' format needs the package {missing[0]}, which is not "
                              "installed", key=where, file=file,
                              fix=f"pip install 'imgsynth[{FORMATS[fmt].extra}]'")
        need = FORMATS[fmt].needs
        if provided is not None and need is not None and need not in provided:
            what = "a classification label" if need == "label" else "a text"
            raise RecipeError(f"the '{fmt}' format needs {what} on every sample, and the "
                              f"'{recipe.source.type}' source makes none", key=where, file=file,
                              fix=f"remove '{fmt}' (coco, yolo and voc hold object labels)"
                              if need == "label" else f"remove '{fmt}' (icdar and mmocr hold word "
                              "texts), or make text lines with the ocr source")
    return Part(name, recipe, resolved_dict(recipe))


def run_recipe(recipe: RecipeInput, out_dir: str | Path, *, seed: int | None = None,
               count: int | None = None, workers: int | None = None, engine: str | None = None,
               overrides: tuple[str, ...] | list[str] = (), resume: bool = False,
               quiet: bool = False) -> RunSummary:
    """Run a recipe (a YAML path, or the recipe as a mapping) into out_dir (a folder or a URL).
    Returns the summary (of all parts together).

    A local out_dir is locked for the whole run (imgsynth.io.lock): a second run into it is
    refused. Errors before DIR/recipe.yaml is written leave nothing behind (exit 2); after it,
    a fault of the machine (full disk, no memory, I/O error) stops the run resumably (exit 1)."""
    t0 = time.perf_counter()
    parts, resolved = prepare(recipe, seed=seed, count=count, workers=workers,
                              engine=engine, overrides=overrides)
    store = open_store(out_dir)
    if getattr(store, "process_local", False) and any(
            p.recipe.workers > 1 or p.recipe.engine == "ray" for p in parts):
        raise RecipeError("--out memory:// exists only inside this process; worker processes "
                          "cannot write there", file=str(store),
                          fix="use --workers 1 with the local engine, or a folder or bucket")
    if isinstance(store, LocalStore):
        _check_out_outside_inputs(store.local_path, parts, recipe_name(recipe))
        lock = OutputLock(store.local_path)
        lock.acquire()
    else:  # object stores have no lock (docs/reliability.md)
        lock = None
    written = False
    try:
        _check_out_dir(store, resolved, resume)
        # Building every pipeline first surfaces missing files/models/fonts before anything is written.
        pipelines = []
        for part in parts:
            classes = part.recipe.output.classes or part.recipe.source.classes()
            check_class_names(part.recipe.output.formats, classes or [],
                              key=_key(part, "output.formats"), file=recipe_name(recipe))
            pipelines.append((part, classes, Pipeline(part.recipe, part.out(store), classes)))
        if lock is not None and lock.taken_over and not quiet:
            print(f"imgsynth: took over the lock of a run that ended without releasing it "
                  f"(pid {lock.taken_over.get('pid')}, started {lock.taken_over.get('started')})",
                  file=sys.stderr)
        try:
            store.write_bytes("recipe.yaml", dump_yaml(dict(resolved, imgsynth=run_versions())).encode("utf-8"))
        except OSError as exc:  # e.g. no such bucket, no write permission
            raise RecipeError(f"cannot write to --out: {exc}", file=str(store),
                              fix="check that the folder or bucket exists and that you may write there") from None
        written = True
        return _run_parts(store, parts, pipelines, quiet, t0)
    except (ImgsynthError, KeyboardInterrupt):
        raise
    except (OSError, MemoryError) as exc:
        if not written:
            raise RecipeError(f"cannot use --out: {exc}", file=str(store),
                              fix="check the folder and that you may write there") from None
        raise EnvironmentFault.of(exc) from exc
    finally:
        if lock is not None:
            lock.release(clean=not written)


def _key(part: Part, key: str) -> str:
    return f"parts.{part.name}.{key}" if part.name else key


def _run_parts(store: Store, parts: list[Part], pipelines: list, quiet: bool, t0: float) -> RunSummary:
    store.discard_partial()
    for k, (part, classes, pipeline) in enumerate(pipelines):
        if part.recipe.workers > 1 or part.recipe.engine == "ray":  # workers build their own
            pipeline.close()  # e.g. a Stable Diffusion model, GPU memory the workers need
            pipelines[k] = (part, classes, None)
    summary = RunSummary(out_dir=store.local_path or store.location, count=0)
    for part, classes, pipeline in pipelines:
        _run_part(part, classes, pipeline, part.out(store), summary, quiet)
    if len(parts) > 1 and any(p.recipe.output.preview for p in parts):
        from imgsynth.preview import stack_previews

        previews = [f"{p.name}/preview.png" for p in parts]
        with store.staging() as local:
            store.fetch([rel for rel in previews if store.exists(rel)], local)
            stack_previews([(p.name, local / rel) for p, rel in zip(parts, previews)],
                           local / "preview.png")
    summary.seconds = time.perf_counter() - t0
    return summary


def _check_out_outside_inputs(out: Path, parts: list[Part], file: str) -> None:
    """--out may not be (inside) a file or folder the run reads: the next run would read its
    own output as input (a dataset folder gaining images and classes)."""
    target = Path(os.path.realpath(out))
    for part in parts:
        configs = [("source", part.recipe.source),
                   *((f"stages.{i}", cfg) for i, cfg in enumerate(part.recipe.stages))]
        for where, config in configs:
            for path in config.input_paths():
                read = Path(os.path.realpath(path))
                if target == read or read in target.parents:
                    raise RecipeError(f"--out '{out}' is inside '{path}', which the run reads",
                                      key=_key(part, where), file=file,
                                      fix="choose an --out outside the inputs")


def _run_part(part: Part, classes: list[str] | None, pipeline: Pipeline | None, store: Store,
              summary: RunSummary, quiet: bool) -> None:
    recipe = part.recipe
    total = recipe.count
    size = chunk_size_for(total)
    n_chunks = math.ceil(total / size)
    done = {c for c in map(chunk_id_of, store.list(CHUNK_DIR)) if c is not None and c < n_chunks}
    # A generator, not a list: the plan takes the same memory for 10 samples or 10**9.
    todo = ((c, c * size, min(total, (c + 1) * size)) for c in range(n_chunks) if c not in done)
    done_before = sum(min(total, (c + 1) * size) - c * size for c in done)
    progress = Progress(total, done_before, label=part.name or "samples", quiet=quiet)

    def on_done(result: ChunkResult) -> None:
        progress.advance(result.written + result.skipped + result.failed)

    shared = len(done) < n_chunks and (recipe.workers > 1 or recipe.engine == "ray") and store.local_path is not None
    if shared:  # e.g. a parsed dataset, so that workers need not parse it again
        for config in (recipe.source, *recipe.stages):
            config.share(store.local_path)
    try:
        if recipe.engine == "ray":
            from imgsynth.engine.ray import run_ray

            run_ray(part.resolved, store.location, classes, todo, recipe.workers, on_done)
        elif recipe.workers == 1:
            with one_torch_thread():
                for chunk_id, start, stop in todo:
                    on_done(pipeline.run_chunk(chunk_id, range(start, stop)))
        else:
            from imgsynth.engine.local import run_local

            run_local(part.resolved, store.location, classes, todo, recipe.workers, on_done)
    finally:
        progress.close()
    summary.count += total
    if store.local_path is not None:  # also what a killed run shared
        shutil.rmtree(store.local_path / SHARED_DIR, ignore_errors=True)
    if not quiet:  # minutes at a million samples: say what runs after the samples
        wanted = ["manifest.jsonl", *recipe.output.formats] + (["preview"] if recipe.output.preview else [])
        print(f"imgsynth: writing {', '.join(wanted)}", file=sys.stderr, flush=True)
    finalize(recipe, store, n_chunks, classes, summary)


def _check_out_dir(store: Store, resolved: dict[str, Any], resume: bool) -> None:
    if store.is_empty():
        return
    if not resume:
        raise RecipeError("the output folder is not empty", file=str(store),
                          fix="pass --resume to complete an interrupted run there, "
                              "or choose a new --out folder")
    if not store.exists("recipe.yaml"):
        raise RecipeError("cannot resume: the folder has no recipe.yaml from an imgsynth run",
                          file=str(store), fix="choose a new --out folder")
    saved_file = f"{store}/recipe.yaml"
    saved = safe_load(store.read_bytes("recipe.yaml").decode("utf-8", errors="replace"), saved_file)
    if not isinstance(saved, dict) or "source" not in saved and "parts" not in saved:
        raise RecipeError("cannot resume: recipe.yaml is not the recipe an imgsynth run saved "
                          f"(it holds {type(saved).__name__ if saved is not None else 'nothing'})",
                          file=saved_file,
                          fix="restore the file from the run's recipe (with the same seed and "
                              "--set values), or start again in a new --out")
    _check_versions(saved.pop("imgsynth", None) or {}, saved_file)
    saved, now = _sample_settings(saved), _sample_settings(resolved)
    if saved != now:
        key = _first_difference(saved, now)
        raise RecipeError(f"cannot resume: the recipe differs from the one this folder was made "
                          f"with (first difference at '{key}')", file=f"{store}/recipe.yaml",
                          fix="resume with the same recipe, seed and --set values (only output.formats "
                              "and the preview settings may change), or use a new --out")


def _check_versions(saved: dict[str, str], file: str) -> None:
    """A resumed run must make the bytes the first run made: other versions of imgsynth
    or of the packages that compute pixels (numpy, OpenCV, ...) may not."""
    now = run_versions()
    changed = [name for name in ("imgsynth", *RECORDED_PACKAGES)
               if name in saved and saved[name] != now.get(name)]
    if changed:
        listed = ", ".join(f"{name} {saved[name]} (now {now.get(name, 'not installed')})"
                           for name in changed)
        pins = " ".join(f"'{name}=={saved[name]}'" for name in changed if name != "imgsynth")
        raise RecipeError(f"cannot resume: this folder was made with {listed}; other versions "
                          "may make other bytes", file=file,
                          fix="install the versions the folder was made with"
                              + (f" (pip install {pins})" if pins else "")
                              + " and resume, or start again in a new --out")


# Output keys that only finalize reads: a resumed run may change them (e.g. add a label
# format to a finished run); the sample files do not depend on them.
FINALIZE_ONLY_KEYS = ("formats", "preview", "preview_count", "shard_size", "coco_segmentation")


def _sample_settings(resolved: Any) -> Any:
    """The resolved recipe without FINALIZE_ONLY_KEYS (in every part's output)."""
    if not isinstance(resolved, dict):
        return resolved
    return {k: ({kk: vv for kk, vv in v.items() if kk not in FINALIZE_ONLY_KEYS}
                if k == "output" and isinstance(v, dict) else _sample_settings(v))
            for k, v in resolved.items()}


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}.{i}")
    return path or "(top level)"


def finalize(recipe: Recipe, store: Store, n_chunks: int, classes: list[str] | None,
             summary: RunSummary) -> None:
    """manifest.jsonl from the chunk records, then the label formats and the preview from it.

    Records are streamed: the manifest is written line by line and the writers get
    ManifestRecords, which parses the file again on each pass, so memory does not grow
    with the number of samples (only skipped/failed rows are kept)."""
    skipped: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    # The writers and the preview work on local files: the output folder itself, or for a
    # URL a staging folder that is uploaded at the end (imgsynth.io.store).
    with store.staging() as out_dir:
        with atomic_writer(out_dir / "manifest.jsonl", "w") as manifest:
            for chunk_id in range(n_chunks):
                text = store.read_bytes(chunk_file(chunk_id)).decode("utf-8")
                for line in filter(None, text.split("\n")):  # not splitlines: texts may hold U+2028
                    rec = json.loads(line)
                    if "skipped" in rec:
                        skipped.append(rec)
                    elif "error" in rec:
                        errors.append(rec)
                    else:  # a chunk line is already the manifest line (same json.dumps)
                        manifest.write(line + "\n")
        records = ManifestRecords(out_dir / "manifest.jsonl")
        summary.written += len(records)
        summary.skipped.update(r["skipped"] for r in skipped)
        summary.failed += len(errors)
        for name, rows in (("skipped.jsonl", skipped), ("errors.jsonl", errors)):
            if rows:
                _write_jsonl(out_dir / name, rows)
            else:
                store.remove(name)
        store.fetch(_sample_files_read_back(recipe, records), out_dir)
        classes = resolve_classes(classes, records)
        check_class_names(recipe.output.formats, classes)  # names found only in the samples
        workers = min(recipe.workers, os.cpu_count() or 1)
        sliced = [fmt for fmt in recipe.output.formats if FORMATS[fmt].per_record] \
            if workers > 1 and len(records) >= PARALLEL_FINALIZE_MIN else []
        for fmt in recipe.output.formats:
            writer = lookup(FORMATS, fmt, key="output.formats", what="label format")
            if fmt not in sliced:
                writer(out_dir, records, classes, recipe.output)
        if sliced:
            from imgsynth.engine.local import write_formats_in_slices

            write_formats_in_slices(sliced, out_dir, records.path, len(records), classes,
                                    recipe.output, workers)
        summary.formats.extend(recipe.output.formats)
        if recipe.output.preview and records:
            from imgsynth.preview import make_preview

            make_preview(out_dir, n=recipe.output.preview_count)


def _sample_files_read_back(recipe: Recipe, records: ManifestRecords) -> Iterator[str]:
    """Sample files (relative paths) that finalize reads again: all of them for formats
    that copy or pack them, else the images the preview shows."""
    if any(FORMATS[fmt].reads_sample_files for fmt in recipe.output.formats):
        yield from (rel for rec in records for rel in rec["sha256"])
    elif recipe.output.preview:
        from imgsynth.preview import spread_indices

        shown = set(spread_indices(len(records), recipe.output.preview_count))
        yield from (rec["image"] for k, rec in enumerate(records) if k in shown)


def training_model(data: dict[str, Any]) -> str | None:
    """The model a training recipe (for `imgsynth train`) trains, None for a run recipe."""
    from imgsynth.generate.families import FAMILIES

    model = data.get("model")
    return model if "source" not in data and "parts" not in data and model in FAMILIES else None


def resolve_classes(declared: list[str] | None, records: Iterable[dict[str, Any]]) -> list[str]:
    """Declared classes keep their ids; names found only in the data follow, sorted."""
    found = set()
    for rec in records:
        if rec.get("label") is not None:
            found.add(rec["label"])
        found.update(inst["class"] for inst in rec.get("instances", []))
    declared = list(declared or [])
    return declared + sorted(found - set(declared))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_writer(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
