"""The recipe view's engine: samples of the recipe being edited, made by the run's own code.

Every sample is a pure function of (recipe, seed, index), so what the studio shows is what
`imgsynth run` writes, not an approximation: the recipe goes through `imgsynth.run.prepare`
(the validation of `imgsynth validate`, with its messages), samples through
`Pipeline.outcomes`/`apply_stages`, and files through the pipeline's `SampleWriter` into a
store in memory, so the image bytes are the run's bytes for those indices.

Between edits the session keeps what an edit leaves valid:
- built parts (the source, each stage: loaded cutouts, fonts, datasets, models), keyed by
  their config, the classes and a fingerprint of the files they read (taken at every
  render: a file edited on disk is read again), not the seed (BuildContext has none:
  samples draw their randomness when made); a change to one stage rebuilds only that stage;
- each index's sample after the source, keyed by the seed and the source's config: a change
  to a stage re-applies the stages to it instead of making it again;
- each index's finished sample and its encoded files, keyed by the whole chain and by the
  output keys the writer reads: paging back, or undoing an edit, makes nothing again.
A change of seed makes every sample again and builds nothing.

All that the studio uses from the rest of imgsynth is imported here, in one place.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import types
import typing
import warnings
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------- imgsynth entry points
from imgsynth.core.errors import ImgsynthError, InputError, RecipeError
from imgsynth.core.registry import SOURCES, STAGES, lookup
from imgsynth.core.safe_yaml import MAX_FILE_BYTES, safe_load
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.engine.pipeline import Pipeline, one_torch_thread
from imgsynth.io.atomic import atomic_write_text
from imgsynth.io.image import decode_image_reduced, encode_image, is_image_file
from imgsynth.io.readers import detect_format, read_dataset
from imgsynth.preview import class_colors, draw_boxes, fit_scale, overlay_masks
from imgsynth.recipes.load import apply_overrides, dump_yaml
from imgsynth.recipes.schema import OutputConfig, Recipe
from imgsynth.run import FINALIZE_ONLY_KEYS, prepare
from imgsynth.studio import recipe_text

__all__ = ["ImgsynthError", "InputError", "RecipeError", "RecipeSession",
           "colors_for", "decode_image_reduced", "detect_format", "encode_image",
           "is_image_file", "labelled_image", "read_dataset", "safe_load"]

DEFAULT_COUNT = 12
MAX_SHOWN = 48  # samples one render makes at most
CACHE_BYTES = 768 << 20  # samples and files kept between edits
OTHER_BUILDS = 4  # built parts kept beyond those of the current recipe (to undo an edit)
KEPT_RENDERS = 4  # renders whose images can still be fetched (a slow page after a fast edit)
LABEL_FIT = (360, 360)  # labelled tiles are drawn at about the size they are shown


# ---------------------------------------------------------------- drawing labels

def colors_for(classes: list[str], records: list[dict] = ()) -> dict[str, tuple[int, int, int]]:
    """preview.png's colours: by sorted class name, for the known classes plus any a record names."""
    names = set(map(str, classes))
    for rec in records:
        names.update(str(inst.get("class")) for inst in rec.get("instances") or [])
        if rec.get("label") is not None:
            names.add(str(rec["label"]))
    return class_colors(sorted(names))


def labelled_image(image: np.ndarray, full_size: tuple[int, int], instances: list[dict],
                   colors: dict, fit: tuple[int, int]) -> bytes:
    """A JPEG of `image` (possibly already reduced from full_size = (width, height), which
    the labels refer to) fitted into `fit`, with masks tinted and boxes and class names drawn
    by preview.png's own helpers; `instances` empty: the picture alone."""
    import cv2
    from PIL import Image, ImageDraw

    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    width, height = full_size
    scale = fit_scale(width, height, *fit)  # as preview.png: small images enlarged up to 8x
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (image.shape[1], image.shape[0]) != size:
        # enlarged 2x or more: the real pixels (nearest) rather than a blur
        interpolation = (cv2.INTER_AREA if size[0] < image.shape[1] else
                         cv2.INTER_LINEAR if scale < 2 else cv2.INTER_NEAREST)
        image = cv2.resize(image, size, interpolation=interpolation)
    colors = dict(colors)
    for inst in instances:  # a class outside the known list still gets a colour
        colors.setdefault(str(inst.get("class")), (255, 255, 255))
    tile = Image.fromarray(overlay_masks(np.ascontiguousarray(image), instances, colors, full_size))
    draw_boxes(ImageDraw.Draw(tile), instances, colors, scale, (0, 0), size)
    return encode_image(np.asarray(tile), "jpg", 90)


# ---------------------------------------------------------------- caches

class MemoryStore:
    """The output store a studio pipeline writes into: files kept in memory, nothing on disk."""

    local_path = None
    location = "memory (imgsynth studio)"

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.files[rel] = data

    def take(self, rel: str) -> bytes:
        return self.files.pop(rel)


class BoundedCache:
    """Least recently used entries, within a byte budget."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key):
        if key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key][0]

    def put(self, key, value, size: int) -> None:
        if key in self.entries:
            self.bytes -= self.entries.pop(key)[1]
        self.entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            self.bytes -= self.entries.popitem(last=False)[1][1]


def outcome_bytes(outcome: Any) -> int:
    if not hasattr(outcome, "image"):
        return 1024
    size = getattr(outcome.image, "nbytes", 0)
    return size + sum(inst.mask.nbytes for inst in outcome.instances if inst.mask is not None) + 4096


@dataclass
class Rendered:
    """One index as the run would write it: its manifest record and files, or why not."""

    index: int
    status: str  # "ok", "skipped" or "failed"
    record: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    image: np.ndarray | None = None  # the written pixels, for the labelled view

    @property
    def size(self) -> int:
        return sum(map(len, self.files.values())) + (self.image.nbytes if self.image is not None else 0) + 4096


# ---------------------------------------------------------------- the session

class RecipeSession:
    """One recipe file being edited: validation, rendering, form, --set, saving."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.baseline = read_recipe_text(self.path)  # the text on disk when opened or saved
        self.lock = threading.Lock()  # one render at a time: built parts are not thread-safe
        self.builds: OrderedDict[str, Any] = OrderedDict()
        self.samples = BoundedCache(CACHE_BYTES)
        self.renders: OrderedDict[int, dict[int, Rendered]] = OrderedDict()
        self.colors: dict[int, dict] = {}
        self.generation = 0
        self.warnings: list[str] = []
        self.encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-encode")
        self._scratch = Path(tempfile.mkdtemp(prefix="imgsynth-studio-"))

    def close(self) -> None:
        with self.lock:  # after a render in flight
            self.encoder.shutdown(wait=True)
            self._forget()
        for leftover in self._scratch.iterdir():
            leftover.unlink()
        self._scratch.rmdir()

    # -- validation ----------------------------------------------------------------------

    def validate(self, text: str):
        """`imgsynth validate` on the text: (parts, resolved), with its very messages. The
        text goes through a private copy of the file (prepare reads a path); messages name
        the recipe's own path."""
        scratch = self._scratch / self.path.name
        scratch.write_text(text, encoding="utf-8")
        # the warnings validate prints (an old spelling, a dropped label): shown on the page
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return prepare(scratch)
            except ImgsynthError as err:
                raise _renamed(err, str(scratch), str(self.path)) from None
            finally:
                self.warnings = list(dict.fromkeys(
                    str(w.message).replace(str(scratch), str(self.path)) for w in caught))

    # -- rendering -----------------------------------------------------------------------

    def render(self, text: str, *, edit: tuple[str, str] | None = None, part: str | None = None,
               start: int = 0, count: int = DEFAULT_COUNT, reload: bool = False) -> dict[str, Any]:
        """Apply an optional form edit (key, value as typed) to the text, validate it and
        render samples start..start+count-1 of the chosen part. Returns what the page shows.
        `reload`: forget built parts and samples first (files no config names, such as a
        cached model, changed on disk)."""
        with self.lock, one_torch_thread():  # one at a time: built parts are not thread-safe
            if reload:
                self._forget()
            return self._answer(text, edit, part, start, count)

    def _forget(self) -> None:
        for part in self.builds.values():
            _close(part)
        self.builds.clear()
        self.samples = BoundedCache(CACHE_BYTES)

    def _answer(self, text: str, edit, part, start: int, count: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        answer: dict[str, Any] = {"path": str(self.path), "errors": [], "samples": [], "warnings": []}
        try:
            if edit is not None:
                text = self.edited(text, *edit)
        except ImgsynthError as err:
            answer.update(text=text, error=f"error: {err}", errors=error_items(err))
            answer["form"] = self.form(text, part)
            return answer
        answer["text"] = text
        answer["form"] = self.form(text, part)
        answer["sets"] = self.set_command(text)
        try:
            parts, _ = self.validate(text)
        except ImgsynthError as err:
            answer.update(error=f"error: {err}", errors=error_items(err), warnings=self.warnings)
            return answer
        answer["warnings"] = self.warnings
        chosen = next((p for p in parts if p.name == part), parts[0])
        answer.update(parts=[p.name for p in parts if p.name], part=chosen.name,
                      count=chosen.recipe.count)
        t_valid = time.perf_counter()
        start = min(max(0, start), max(0, chosen.recipe.count - 1))
        indices = range(start, min(chosen.recipe.count, start + max(1, min(count, MAX_SHOWN))))
        try:
            made = self._render(chosen, indices)
        except ImgsynthError as err:  # a missing asset, font or model: found when building
            err = _renamed(err, str(self._scratch / self.path.name), str(self.path))
            answer.update(error=f"error: {err}", errors=error_items(err))
            return answer
        answer.update(made)
        answer["timing"] = {"validate_s": round(t_valid - t0, 4),
                            "render_s": round(time.perf_counter() - t_valid, 4),
                            "total_s": round(time.perf_counter() - t0, 4), **made.pop("reuse")}
        return answer

    def _render(self, part, indices: range) -> dict[str, Any]:
        recipe: Recipe = part.recipe
        classes = recipe.output.classes or recipe.source.classes()
        common = [classes, recipe.max_image_pixels]  # what a build reads besides its config
        # and the files it reads as they are now: one edited on disk is read again
        configs = zip([recipe.source, *recipe.stages], [part.resolved["source"], *part.resolved["stages"]])
        part_keys = [_key(common, resolved, files_fingerprint(config.input_paths()))
                     for config, resolved in configs]
        if recipe.source.sample_pool(BuildContext(classes=classes)) is not None:
            # stages are built with the source's samples (BuildContext.samples, Mosaic's other
            # images): a change to the source or its files builds them again
            part_keys[1:] = [_key(part_keys[0], key) for key in part_keys[1:]]
        written_keys = {k: v for k, v in part.resolved["output"].items() if k not in FINALIZE_ONLY_KEYS}
        # a sample depends on the seed (its randomness), the name (its seed keys) and the parts
        generated_key = (recipe.name, recipe.seed, part_keys[0])
        chain = (*generated_key, *part_keys[1:])
        output_key = (chain, _key(written_keys))
        # what this render did: parts built, samples made by the source, samples whose
        # stages ran again on a kept source sample, samples encoded, samples kept whole
        reuse = {"built": 0, "made": 0, "staged_again": 0, "written": 0, "files_reused": 0}
        pipeline = None
        made: dict[int, Rendered] = {}
        for index in indices:
            done = self.samples.get(("files", output_key, index))
            if done is not None:
                reuse["files_reused"] += 1
                made[index] = done
                continue
            if pipeline is None:
                pipeline = self._pipeline(recipe, classes, part_keys, reuse)
            made[index] = self._make(pipeline, generated_key, chain, output_key, index, reuse)
        for index, rendered in made.items():
            if isinstance(rendered, Future):
                made[index] = rendered = rendered.result()
                self.samples.put(("files", output_key, index), rendered, rendered.size)
        self._keep_builds(set(part_keys))
        self.generation += 1
        self.renders[self.generation] = made
        self.colors[self.generation] = colors_for(classes or [], [r.record for r in made.values()])
        while len(self.renders) > KEPT_RENDERS:
            old, _ = self.renders.popitem(last=False)
            self.colors.pop(old, None)
        gen = self.generation
        return {"generation": gen, "colors": {k: list(v) for k, v in self.colors[gen].items()},
                "samples": [sample_view(gen, r) for r in made.values()], "reuse": reuse}

    def _pipeline(self, recipe: Recipe, classes, part_keys: list[str], reuse: dict) -> Pipeline:
        """The run's Pipeline over the memory store, with parts built before reused."""
        missing = [k for k, key in enumerate(part_keys) if key not in self.builds]
        reuse["built"] = len(missing)
        pipeline = Pipeline(recipe, MemoryStore(), classes, parts=missing)
        for k, key in enumerate(part_keys):
            if k in missing:
                self.builds[key] = pipeline.source if k == 0 else pipeline.stages[k - 1][1]
            elif k == 0:
                pipeline.source = self.builds[key]
            else:
                pipeline.stages[k - 1] = (pipeline.stages[k - 1][0], self.builds[key])
            self.builds.move_to_end(key)
        return pipeline

    def _make(self, pipeline: Pipeline, generated_key: tuple, chain: tuple, output_key: tuple,
              index: int, reuse: dict) -> Future:
        finished = self.samples.get(("finished", chain, index))
        if finished is None:
            generated = self.samples.get(("generated", generated_key, index))
            if generated is None:
                reuse["made"] += 1
                [(_, generated)] = list(pipeline.outcomes(range(index, index + 1), stages=range(0)))
                self.samples.put(("generated", generated_key, index), generated, outcome_bytes(generated))
            else:
                reuse["staged_again"] += 1
            # stages change samples in place: they get a copy, the cache keeps its own
            finished = pipeline.apply_stages(index, copy.deepcopy(generated))
            self.samples.put(("finished", chain, index), finished, outcome_bytes(finished))
        reuse["written"] += 1
        # encoded while the next sample is made (OpenCV's encoder lets go of the GIL)
        return self.encoder.submit(self._write, pipeline, index, copy.deepcopy(finished))

    def _write(self, pipeline: Pipeline, index: int, outcome) -> Rendered:
        """What write_chunk does with one outcome, with the files kept."""
        if isinstance(outcome, SkipSample):
            return Rendered(index, "skipped", {"index": index, "skipped": outcome.reason,
                                               "detail": outcome.detail})
        if not hasattr(outcome, "image"):  # a Failure
            return Rendered(index, "failed", {"index": index, "error": outcome.error,
                                              "detail": outcome.detail, "sources": outcome.sources})
        try:
            record = pipeline.writer.write(outcome)
        except Exception as exc:  # noqa: BLE001 - an image that cannot be encoded, as in a run
            return Rendered(index, "failed", {"index": index, "error": f"{type(exc).__name__}: {exc}"})
        store = pipeline.writer.store
        files = {rel: store.take(rel) for rel in record["sha256"]}
        return Rendered(index, "ok", record, files, outcome.image)

    def _keep_builds(self, current: set[str]) -> None:
        others = [key for key in self.builds if key not in current]
        for key in others[: max(0, len(others) - OTHER_BUILDS)]:
            _close(self.builds.pop(key))

    # -- files of a render -------------------------------------------------------------

    def file(self, generation: int, index: int, what: str, fit: tuple[int, int] = LABEL_FIT):
        """(bytes, content type) of a rendered sample: 'image' and 'mask' as the run writes
        them, 'labels' the image with its labels drawn; None when no longer kept."""
        rendered = self.renders.get(generation, {}).get(index)
        if rendered is None or rendered.status != "ok":
            return None
        if what == "labels":
            record = rendered.record
            return (labelled_image(rendered.image, (record["width"], record["height"]),
                                   record["instances"], self.colors.get(generation, {}), fit), "image/jpeg")
        rel = rendered.record.get(what)
        if rel is None:
            return None
        return rendered.files[rel], _content_type(rel)

    # -- edits -------------------------------------------------------------------------

    def edited(self, text: str, key: str, raw: str) -> str:
        """The text with `key` set to `raw` as `--set key=raw` would set it, the rest of the
        text (comments, order) kept."""
        data = load_text(text, str(self.path))
        expected = apply_overrides(copy.deepcopy(data), [f"{key}={raw}"])
        path = key.strip().split(".")
        node = expected
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = node[int(path[-1])] if isinstance(node, list) else node[path[-1]]
        new = recipe_text.replace_value(text, path, value)
        if new is None or _loads_quietly(new) != expected:
            new = dump_yaml(expected)  # an unusual layout: correct data, comments lost
        return new

    def set_command(self, text: str) -> dict[str, Any]:
        """`imgsynth run` with the --set flags that turn the file on disk into `text`."""
        try:
            before = load_text(self.baseline, str(self.path))
            after = load_text(text, str(self.path))
        except ImgsynthError:
            return {"flags": [], "complete": False, "command": None}
        flags, complete = recipe_text.set_flags(before, after)
        if complete:
            try:
                complete = apply_overrides(copy.deepcopy(before), flags) == after
            except ImgsynthError:
                complete = False
        out = f"out/{self.path.stem}"
        return {"flags": flags, "complete": complete,
                "command": recipe_text.run_command(str(self.path), flags, out) if complete else None}

    # -- saving --------------------------------------------------------------------------

    def save(self, text: str, name: str | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Write the text to the recipe's file, or to `name` beside it. A file that exists is
        replaced only with overwrite=True; one that changed since it was opened is said so."""
        target = self.path if not name else self.path.parent / checked_name(name)
        self.validate(text)  # a saved recipe runs
        if target.exists() and not overwrite:
            on_disk = read_recipe_text(target) if target.is_file() else None
            changed = target == self.path and on_disk != self.baseline
            return {"saved": False, "exists": True, "path": str(target), "changed_on_disk": changed,
                    "same": on_disk == text}
        write_text_file(target, text, replace=overwrite)
        self.path, self.baseline = target, text
        return {"saved": True, "path": str(target),
                "command": recipe_text.run_command(str(target), [], f"out/{target.stem}")}

    # -- the form ------------------------------------------------------------------------

    def form(self, text: str, part: str | None) -> list[dict[str, Any]]:
        """Sections of fields for the keys of the recipe, its source, each stage and output,
        from the schema, with the values the text gives (or the defaults)."""
        try:
            data = load_text(text, str(self.path))
        except ImgsynthError:
            return []
        prefix = ""
        if isinstance(data.get("parts"), dict) and data["parts"]:
            names = list(data["parts"])
            name = part if part in names else names[0]
            shared = {k: v for k, v in data.items() if k != "parts"}
            sections = [_section("recipe", "", Recipe, shared, only=("seed", "on_error"))]
            prefix, data = f"parts.{name}.", data["parts"][name] if isinstance(data["parts"][name], dict) else {}
            sections.append(_section(f"parts.{name}", prefix.rstrip("."), Recipe, data, only=("count",)))
        else:
            sections = [_section("recipe", "", Recipe, data, only=("seed", "count", "on_error"))]
        source = data.get("source")
        if isinstance(source, dict):
            sections.append(_section(f"source: {source.get('type')}", f"{prefix}source",
                                     _config_class(SOURCES, source.get("type")), source))
        for i, stage in enumerate(data.get("stages") or []):
            if isinstance(stage, dict):
                sections.append(_section(f"stages.{i}: {stage.get('type')}", f"{prefix}stages.{i}",
                                         _config_class(STAGES, stage.get("type")), stage))
        output = data.get("output") if isinstance(data.get("output"), dict) else {}
        sections.append(_section("output", f"{prefix}output", OutputConfig, output))
        return sections


def sample_view(generation: int, rendered: Rendered) -> dict[str, Any]:
    """What a grid tile needs: the record, and where its files are served."""
    base = f"/api/render/{generation}/{rendered.index}"
    view = {"index": rendered.index, "status": rendered.status, "record": rendered.record}
    if rendered.status == "ok":
        view.update(image=f"{base}/image", labels=f"{base}/labels",
                    mask=f"{base}/mask" if "mask" in rendered.record else None)
    return view


# ---------------------------------------------------------------- helpers

def files_fingerprint(paths: list[Path]) -> str:
    """A digest of what `paths` hold, without reading them: (size, mtime) of each file, and
    the listing of each folder (every file under it, as files_in walks: symlinked folders
    not entered). Taken at every render: about 3 ms for a folder of 1,000 files; a folder
    of more than STATTED_FILES files is fingerprinted by its folders' mtimes and its file
    count (a file added, removed or renamed is seen; one overwritten in place is seen after
    Reload): a folder of 100,000 files took 1.0 s with a stat per file, 0.12 s so."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(json.dumps([str(path), _stat_listing(str(path))]).encode())
    return digest.hexdigest()


STATTED_FILES = 2000


def _stat_listing(path: str) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing: building says so, naming the file
    if not os.path.isdir(path):
        return [st.st_size, st.st_mtime_ns]
    files, folders, pending = [], [(path, st.st_mtime_ns)], [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    folders.append((entry.path, entry.stat(follow_symlinks=False).st_mtime_ns))
                elif entry.is_file():
                    files.append(entry)
            except OSError:  # gone meanwhile
                continue
    if len(files) > STATTED_FILES:
        return [sorted(folders), len(files)]  # a folder's mtime changes with its listing
    found = []
    for entry in files:
        try:
            st = entry.stat()
        except OSError:  # gone meanwhile
            continue
        found.append((entry.path, st.st_size, st.st_mtime_ns))
    return sorted(found)


def read_recipe_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError("recipe file not found", file=str(path),
                          fix="check the path; recipes shipped with imgsynth are in recipes/") from None
    except OSError as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise RecipeError(f"the recipe is over {MAX_FILE_BYTES:,} bytes", file=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=str(path)) from None


def load_text(text: str, file: str) -> dict[str, Any]:
    """The recipe mapping of a text, through the one bounded, safe YAML loader."""
    data = safe_load(text, file)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe is a mapping of keys, got {type(data).__name__}", file=file,
                          fix="start the file with keys such as 'source:' and 'stages:'")
    data.pop("imgsynth", None)
    return data


def _loads_quietly(text: str) -> Any:
    try:
        data = safe_load(text, "edited")
    except ImgsynthError:
        return None
    if isinstance(data, dict):
        data.pop("imgsynth", None)
    return data


def checked_name(name: str) -> str:
    """A file name to save a recipe as, beside the opened one: no folders, a YAML suffix."""
    if (not re.fullmatch(r"[\w.@+-]+", name) or name.startswith(".")
            or not name.endswith((".yaml", ".yml"))):
        raise RecipeError(f"'{name}' is not a recipe file name to save beside the opened recipe",
                          fix="give a plain name ending in .yaml (letters, digits, . _ - ), no folders")
    return name


def write_text_file(target: Path, text: str, replace: bool) -> None:
    """Written whole (imgsynth.io.atomic); without `replace`, a file that appeared meanwhile
    is never replaced."""
    try:
        atomic_write_text(target, text, replace=replace)
    except FileExistsError:
        raise RecipeError("the file exists", file=str(target),
                          fix="save again and confirm replacing it") from None


def error_items(err: ImgsynthError) -> list[dict[str, str]]:
    """One {key, message} per problem: the lines of a schema error, else the error's key."""
    lines = err.message.split("\n")
    items = []
    if err.key is None and len(lines) > 1:
        for line in lines[1:]:
            match = re.match(r"\s*([^\s:]+): (.*)$", line)
            if match:
                items.append({"key": match.group(1), "message": match.group(2)})
    if not items:
        items.append({"key": err.key or "", "message": err.message + (f" (fix: {err.fix})" if err.fix else "")})
    return items


def _renamed(err: ImgsynthError, scratch: str, real: str) -> ImgsynthError:
    """The error as if the recipe's own path had been validated."""
    for attr in ("message", "fix", "file"):
        value = getattr(err, attr)
        if isinstance(value, str):
            setattr(err, attr, value.replace(scratch, real))
    err.args = (str(err),)
    return err


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _close(part: Any) -> None:
    close = getattr(part, "close", None)
    if close is not None:
        close()


def _content_type(rel: str) -> str:
    ext = rel.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}.get(
        ext, "application/octet-stream")


def _config_class(registry: dict[str, str], name: Any):
    try:
        return lookup(registry, str(name), key="", what="type")
    except ImgsynthError:
        return None


def _section(title: str, prefix: str, model, data: dict, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """One form section: the model's fields (schema order), then keys the schema does not
    know (shown so that their error has a place); values the data gives expanded one level."""
    fields = []
    known = getattr(model, "model_fields", {}) if model is not None else {}
    for name, info in known.items():
        if (only and name not in only) or (not only and name in ("type", "name", "imgsynth")):
            continue
        present = name in data
        value = data[name] if present else _default(info)
        fields.append(_field(f"{prefix}.{name}" if prefix else name, name, info.annotation, value,
                             present, info.description or ""))
    for name in data:
        if name not in known and name not in ("type", "source", "stages", "output", "parts", "imgsynth") \
                and not only:
            fields.append(_field(f"{prefix}.{name}" if prefix else str(name), str(name), None,
                                 data[name], True, "not a key of this schema"))
    return {"title": title, "key": prefix, "fields": fields}


def _field(key: str, name: str, annotation, value: Any, present: bool, description: str) -> dict:
    kind, choices = _kind(annotation)
    item = {"key": key, "name": name, "kind": kind, "choices": choices, "present": present,
            "description": description, "value": recipe_text.flow_yaml(value)}
    if isinstance(value, bool) and kind == "bool":
        item["value"] = value
    children = []
    if present and isinstance(value, dict):
        children = [_field(f"{key}.{k}", str(k), None, v, True, "") for k, v in value.items()]
    elif present and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, entry in enumerate(value):
            label = entry.get("name") or entry.get("type") or entry.get("kind") or next(iter(entry), "")
            children.append({"key": f"{key}.{i}", "name": f"{i}: {label}", "kind": "group",
                             "children": [_field(f"{key}.{i}.{k}", str(k), None, v, True, "")
                                          for k, v in entry.items()]})
    if children:
        item["children"] = children
    return item


def _kind(annotation) -> tuple[str, list[str]]:
    """The input a field gets: choice (Literal), bool, number, or YAML text."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "choice", [str(a) for a in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if origin is typing.Annotated:
        return _kind(args[0])
    if annotation is bool:
        return "bool", []
    if annotation in (int, float):
        return "number", []
    return "yaml", []


def _default(info) -> Any:
    try:
        value = info.get_default(call_default_factory=True)
    except Exception:  # noqa: BLE001 - a factory that needs validated data
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except TypeError:
        return None
    return value
