"""The data set browser: imgsynth output folders and the data sets imgsynth reads.

An output folder is read through its manifest.jsonl without holding it: the first page is
read straight from the top of the file, while a background thread indexes the whole file
once (each record's byte offset, its label count, and per label its class and its box size
as a fraction of the image) into flat arrays, so later pages are a seek and filters are
array operations, at a few bytes per record. A COCO, YOLO, VOC or ImageFolder set is
opened with imgsynth's own readers (the labels `imgsynth run` would read, with their
warnings), and indexed the same way.

Images are only ever read under the folder a set was opened from (`inside`, after
resolving symlinks): a manifest or label file cannot make the studio show another file.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
import warnings
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.studio.render import (ImgsynthError, InputError, colors_for, decode_image_reduced,
                                    detect_format, is_image_file, labelled_image, read_dataset,
                                    safe_load)

THUMB_FIT = (240, 240)
DETAIL_FIT = (1280, 1280)
LISTED_ROWS = 500  # errors.jsonl / skipped.jsonl rows shown (all are counted)
RECENT_RECORDS = 2048
READ_AHEAD = 2000  # records a page may read from the top of a manifest not yet indexed that far
# Folders a scan for data sets does not enter: a data set's own parts, tools' folders.
NOT_SCANNED = {"images", "masks", "labels", "Annotations", "JPEGImages", "SegmentationClass",
               "node_modules", "__pycache__", "site-packages", "venv", "checkpoints", "grids"}
SCAN_DEPTH = 3
SCAN_FOLDERS = 3000


class Foreground:
    """Requests being answered. Indexing steps aside while there are any, so a page and its
    thumbnails are not slowed by reading the rest of a big manifest (CPython runs one
    thread's Python at a time)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0

    def __enter__(self):
        with self.lock:
            self.active += 1

    def __exit__(self, *exc):
        with self.lock:
            self.active -= 1

    def wait(self, most: float = 0.05) -> None:
        """Wait while requests run (at most `most` seconds, so indexing always progresses)."""
        waited = 0.0
        while self.active and waited < most:
            time.sleep(0.005)
            waited += 0.005


FOREGROUND = Foreground()


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path`, symlinks resolved, is `root` or under it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------- finding data sets

@dataclass
class Found:
    kind: str  # imgsynth, coco, yolo, voc, imagefolder, report, recipe
    path: Path


def scan(folder: Path) -> list[Found]:
    """Data sets, evaluation reports and recipes in `folder` and below (a few levels, a
    bounded number of folders; symlinked folders are not followed)."""
    found: list[Found] = []
    queue, seen = [(folder, 0)], 0
    while queue and seen < SCAN_FOLDERS:
        current, depth = queue.pop(0)
        seen += 1
        kinds = classify(current)
        found += [Found(kind, current) for kind in kinds]
        if any(kind != "report" for kind in kinds) or depth >= SCAN_DEPTH:
            continue
        try:
            children = sorted(current.iterdir())
        except OSError:
            continue
        found += [Found("recipe", child) for child in children if is_recipe(child)]
        queue += [(child, depth + 1) for child in children
                  if not child.name.startswith(".") and child.name not in NOT_SCANNED
                  and not child.is_symlink() and child.is_dir()]
    if not any(f.kind not in ("report", "recipe") for f in found) and _is_imagefolder(folder):
        found.insert(0, Found("imagefolder", folder))
    return found


def is_recipe(path: Path) -> bool:
    """A small YAML file with a source or parts (a recipe `imgsynth run` takes)."""
    if path.suffix.lower() not in (".yaml", ".yml") or path.name == "data.yaml" or path.is_symlink():
        return False
    try:
        if not path.is_file() or path.stat().st_size > 256 << 10:
            return False
        data = safe_load(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ImgsynthError):
        return False
    return isinstance(data, dict) and ("source" in data or "parts" in data)


def classify(folder: Path) -> list[str]:
    """What a folder is: an imgsynth output (manifest.jsonl), a labeled set with a format's
    own markers, and/or an evaluation report."""
    kinds = []
    if (folder / "manifest.jsonl").is_file():
        kinds.append("imgsynth")
    elif ((folder / "annotations.json").is_file() or (folder / "data.yaml").is_file()
          or (folder / "Annotations").is_dir() or (folder / "labels").is_dir()
          or (folder / "annotations").is_dir()):
        try:
            kinds.append(detect_format(folder))
        except ImgsynthError:
            kinds.append("coco" if (folder / "annotations.json").is_file() else "yolo")
    if (folder / "report.html").is_file():
        kinds.append("report")
    return kinds


def _is_imagefolder(folder: Path) -> bool:
    """Class sub-folders of images (an images/ folder is a data set's, not a class)."""
    try:
        for child in folder.iterdir():
            if child.is_dir() and not child.name.startswith(".") and child.name not in NOT_SCANNED:
                if any(is_image_file(p) for p in itertools.islice(child.iterdir(), 50)):
                    return True
    except OSError:
        return False
    return False


# ---------------------------------------------------------------- the index

class LabelIndex:
    """Per record: where it is, how many labels; per label: its record, class id and box
    area as a fraction of the image (NaN where unknown, e.g. a classification label).
    Appended to by one thread while others read consistent snapshots."""

    def __init__(self):
        self.lock = threading.Lock()
        self.offsets = array("q")
        self.counts = array("i")
        self.inst_record = array("i")
        self.inst_class = array("i")
        self.inst_area = array("f")
        self.class_ids: dict[str, int] = {}
        self.done = False
        self.error: str | None = None

    def add(self, batch: list[tuple[int, dict]]) -> None:
        with self.lock:
            for offset, rec in batch:
                n = len(self.offsets)
                self.offsets.append(offset)
                instances = rec.get("instances") or []
                self.counts.append(len(instances))
                w, h = rec.get("width"), rec.get("height")
                image_area = w * h if isinstance(w, int | float) and isinstance(h, int | float) and w and h else None
                for inst in instances:
                    self.inst_record.append(n)
                    self.inst_class.append(self._class_id(inst.get("class")))
                    self.inst_area.append(relative_area(inst, image_area, rec.get("normalized")))
                if rec.get("label") is not None:
                    self.inst_record.append(n)
                    self.inst_class.append(self._class_id(rec["label"]))
                    self.inst_area.append(math.nan)

    def _class_id(self, name: Any) -> int:
        return self.class_ids.setdefault(str(name), len(self.class_ids))

    def __len__(self) -> int:
        return len(self.offsets)

    def offset(self, n: int) -> int | None:
        with self.lock:
            return self.offsets[n] if n < len(self.offsets) else None

    def matching(self, classes: list[str], count: tuple[float, float],
                 size: tuple[float, float]) -> tuple[np.ndarray, int]:
        """Record numbers that have a label of one of `classes` (any, when empty) whose box
        size is within `size` (fractions; a label without a box passes only the full
        range), and whose label count is within `count`; and how many records were indexed."""
        with self.lock:
            n = len(self.offsets)
            counts = np.frombuffer(self.counts, np.int32, n).copy()
            m = len(self.inst_record)
            inst_record = np.frombuffer(self.inst_record, np.int32, m).copy()
            inst_class = np.frombuffer(self.inst_class, np.int32, m).copy()
            inst_area = np.frombuffer(self.inst_area, np.float32, m).copy()
            wanted = [self.class_ids[c] for c in classes if c in self.class_ids]
        keep = (counts >= count[0]) & (counts <= count[1])
        sized = size != (0.0, math.inf)
        if classes or sized:
            chosen = np.isin(inst_class, wanted) if classes else np.ones(m, bool)
            if sized:
                chosen &= (inst_area >= size[0]) & (inst_area <= size[1])
            has = np.zeros(n, bool)
            has[inst_record[chosen]] = True
            keep &= has
        return np.flatnonzero(keep), n


def relative_area(inst: dict, image_area: float | None, normalized: bool | None) -> float:
    box = inst.get("bbox_xyxy")
    if not box or len(box) != 4:
        return math.nan
    area = max(0.0, float(box[2]) - float(box[0])) * max(0.0, float(box[3]) - float(box[1]))
    if normalized:
        return area
    return area / image_area if image_area else math.nan


# ---------------------------------------------------------------- data sets

class DataSet:
    """What the browser asks of a set: info, a page of tiles, a record, a thumbnail."""

    kind = ""

    def __init__(self, path: Path, root: Path):
        self.path, self.root = path, root
        self.folder = path if path.is_dir() else path.parent  # what records' paths start from
        self.index = LabelIndex()
        self.recent: OrderedDict[int, dict] = OrderedDict()  # records read lately, by number
        self.recent_lock = threading.Lock()  # requests run in threads
        self.declared: list[str] = []

    # -- for subclasses
    def record(self, n: int) -> dict | None: ...
    def image_file(self, rec: dict) -> Path: ...

    def classes(self) -> list[str]:
        with self.index.lock:
            found = list(self.index.class_ids)
        return sorted(set(found) | set(self.declared))

    def remember(self, n: int, rec: dict) -> dict:
        with self.recent_lock:
            self.recent[n] = rec
            self.recent.move_to_end(n)
            while len(self.recent) > RECENT_RECORDS:
                self.recent.popitem(last=False)
        return rec

    def page(self, start: int, size: int, classes: list[str], count: tuple[float, float],
             size_range: tuple[float, float]) -> dict[str, Any]:
        with FOREGROUND:
            return self._page(start, size, classes, count, size_range)

    def _page(self, start: int, size: int, classes: list[str], count: tuple[float, float],
              size_range: tuple[float, float]) -> dict[str, Any]:
        filtered = bool(classes) or count != (0, math.inf) or size_range != (0.0, math.inf)
        start, size = max(0, start), max(1, min(size, 200))
        done = self.index.done
        if filtered:
            matches, indexed = self.index.matching(classes, count, size_range)
            numbers = matches[start:start + size].tolist()
            total = len(matches)
        else:
            indexed = len(self.index)
            numbers = list(range(start, start + size))
            total = indexed
        items = []
        for n, rec in self.records(numbers):
            items.append(tile(n, rec))
        classes = self.classes()
        return {"start": start, "items": items, "total": total, "indexed": indexed,
                "done": done, "error": self.index.error, "classes": classes,
                "colors": {k: list(v) for k, v in colors_for(classes).items()}}

    def records(self, numbers: list[int]) -> list[tuple[int, dict]]:
        """(number, record) of those records that exist."""
        found = ((n, self.get(n)) for n in numbers)
        return [(n, rec) for n, rec in found if rec is not None]

    def stale(self) -> bool:
        """Whether the files it was read from changed since (e.g. a run finished into it)."""
        return False

    def get(self, n: int) -> dict | None:
        with self.recent_lock:
            rec = self.recent.get(n)
            if rec is not None:
                self.recent.move_to_end(n)
                return rec
        rec = self.record(n)
        return None if rec is None else self.remember(n, rec)

    def thumbnail(self, n: int, labels: bool, fit: tuple[int, int]) -> bytes:
        with FOREGROUND:
            return self._thumbnail(n, labels, fit)

    def _thumbnail(self, n: int, labels: bool, fit: tuple[int, int]) -> bytes:
        rec = self.get(n)
        if rec is None:
            raise InputError(f"no record {n}", file=str(self.path))
        path = self.image_file(rec)
        if not inside(path, self.root):
            raise InputError("the image lies outside the opened folder; not shown", file=str(path))
        image, full = decode_image_reduced(path, fit)
        instances = scaled_instances(rec, full) if labels else []
        return labelled_image(image, full, instances, colors_for(self.classes(), [rec]), fit)

    def detail(self, n: int) -> dict[str, Any] | None:
        rec = self.get(n)
        if rec is None:
            return None
        path = self.image_file(rec)
        files = {"image": path}
        if rec.get("mask"):
            files["mask"] = self.folder / rec["mask"]
        if rec.get("label_file"):
            files["label file"] = self.folder / rec["label_file"]
        links = {name: os.path.relpath(p, self.root) for name, p in files.items() if inside(p, self.root)}
        return {"n": n, "record": rec, "links": links}


class ManifestSet(DataSet):
    """An imgsynth output folder: manifest.jsonl, errors.jsonl, skipped.jsonl."""

    kind = "imgsynth"

    def __init__(self, path: Path, root: Path):
        super().__init__(path, root)
        self.manifest = path / "manifest.jsonl"
        self.version = _version(self.manifest)
        self.declared = self._declared_classes()
        threading.Thread(target=self._build_index, name=f"index {path}", daemon=True).start()

    def _declared_classes(self) -> list[str]:
        """output.classes of the saved recipe, so colours hold while the index grows."""
        try:
            saved = safe_load((self.path / "recipe.yaml").read_text(encoding="utf-8"),
                              str(self.path / "recipe.yaml"))
            classes = saved.get("output", {}).get("classes") if isinstance(saved, dict) else None
            return [str(c) for c in classes] if isinstance(classes, list) else []
        except (OSError, UnicodeDecodeError, ImgsynthError, AttributeError):
            return []

    def _build_index(self) -> None:
        batch: list[tuple[int, dict]] = []
        offset, lineno = 0, 0
        try:
            with open(self.manifest, "rb") as fh:
                for line in fh:
                    lineno += 1
                    if line.strip():
                        rec = json.loads(line)
                        batch.append((offset, rec if isinstance(rec, dict) else {}))
                        if len(batch) >= 500:
                            self.index.add(batch)
                            batch = []
                            FOREGROUND.wait()
                    offset += len(line)
            self.index.add(batch)
        except (OSError, ValueError) as exc:
            self.index.add(batch)
            self.index.error = f"{self.manifest}: line {lineno}: {exc}; the records before it are shown"
        finally:
            self.index.done = True

    def record(self, n: int) -> dict | None:
        offset = self.index.offset(n)
        with open(self.manifest, "rb") as fh:
            if offset is not None:
                fh.seek(offset)
                line = fh.readline()
            else:  # not indexed yet: counted from the top (the first pages, while indexing)
                line = b""
                k = -1
                for raw in fh:
                    if raw.strip():
                        k += 1
                        if k == n:
                            line = raw
                            break
        if not line.strip():
            return None
        try:
            rec = json.loads(line)
        except ValueError:
            return {"image": None, "error": f"line is not JSON: {line[:200]!r}"}
        return rec if isinstance(rec, dict) else None

    def records(self, numbers: list[int]) -> list[tuple[int, dict]]:
        missing = [n for n in numbers if n not in self.recent and self.index.offset(n) is None]
        if missing and (max(missing) >= READ_AHEAD or self.index.done):
            numbers = [n for n in numbers if n not in missing]  # past the end, or not read yet
        elif missing:  # the first pages, before the index gets there: one pass from the top
            wanted, k = set(missing), -1
            with open(self.manifest, "rb") as fh:
                for raw in fh:
                    if raw.strip():
                        k += 1
                        if k in wanted:
                            try:
                                rec = json.loads(raw)
                            except ValueError:
                                rec = {"image": None, "error": "line is not JSON"}
                            self.remember(k, rec if isinstance(rec, dict) else {})
                        if k >= max(wanted):
                            break
            numbers = [n for n in numbers if n not in wanted or n <= k]  # not past the end
        return super().records(numbers)

    def image_file(self, rec: dict) -> Path:
        return self.folder / str(rec.get("image"))

    def stale(self) -> bool:
        # a run replaces manifest.jsonl whole (a new file): offsets into the old one are void
        return _version(self.manifest) != self.version

    def info(self) -> dict[str, Any]:
        links = {name: name for name in ("recipe.yaml", "preview.png", "report.html",
                                         "errors.jsonl", "skipped.jsonl")
                 if (self.path / name).is_file()}
        return {"kind": self.kind, "errors": listed(self.path / "errors.jsonl"),
                "skipped": listed(self.path / "skipped.jsonl"), "warnings": [], "links": links}


class ReaderSet(DataSet):
    """A COCO, YOLO, VOC or ImageFolder set, read by imgsynth's readers."""

    def __init__(self, path: Path, root: Path, kind: str):
        super().__init__(path, root)
        self.kind = kind
        self.dataset = None
        self.warnings: list[str] = []
        self.failure: str | None = None
        threading.Thread(target=self._open, name=f"read {path}", daemon=True).start()

    def _open(self) -> None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.dataset = read_dataset(self.path, self.kind)
            self.warnings = list(dict.fromkeys(str(w.message) for w in caught))
            self.declared = list(self.dataset.classes)
            batch = [(i, self._as_record(i)) for i in range(len(self.dataset))]
            self.index.add(batch)
        except ImgsynthError as err:
            self.failure = self.index.error = f"error: {err}"
        finally:
            self.index.done = True

    def _as_record(self, i: int) -> dict:
        entry = self.dataset.entries[i]
        size = entry.size
        return {
            "id": i + 1, "index": i, "image": _relative(entry.image, self.folder),
            "label_file": _relative(entry.label_file, self.folder) if entry.label_file else None,
            "width": size[0] if size else None, "height": size[1] if size else None,
            "label": entry.label, "normalized": entry.normalized,
            "instances": [{"class": lab.class_name, "bbox_xyxy": [float(v) for v in lab.bbox_xyxy],
                           "segmentation": lab.rle,
                           "polygons": None if lab.polygons is None else
                           [np.asarray(p, float).reshape(-1).tolist() for p in lab.polygons],
                           "truncated": lab.truncated, "difficult": lab.difficult,
                           "iscrowd": lab.iscrowd} for lab in entry.instances],
        }

    def record(self, n: int) -> dict | None:
        if self.dataset is None or not 0 <= n < len(self.dataset):
            return None
        return self._as_record(n)

    def image_file(self, rec: dict) -> Path:
        return self.folder / str(rec.get("image"))

    def info(self) -> dict[str, Any]:
        issues = dict(self.dataset.issues) if self.dataset is not None else {}
        return {"kind": self.kind, "errors": {"total": 0, "rows": []}, "skipped": {"total": 0, "rows": []},
                "warnings": self.warnings[:LISTED_ROWS], "issues": issues, "failure": self.failure,
                "links": {}}


def open_set(found: Found, root: Path) -> DataSet:
    if found.kind == "imgsynth":
        return ManifestSet(found.path, root)
    return ReaderSet(found.path, root, found.kind)


# ---------------------------------------------------------------- helpers

def tile(n: int, rec: dict) -> dict[str, Any]:
    """What a grid tile shows of a record (not its masks)."""
    instances = rec.get("instances") or []
    text = rec.get("text")
    return {"n": n, "id": rec.get("id"), "image": rec.get("image"), "width": rec.get("width"),
            "height": rec.get("height"), "count": len(instances),
            "classes": sorted({str(i.get("class")) for i in instances}),
            "label": rec.get("label"), "text": text[:200] if isinstance(text, str) else None,
            "error": rec.get("error")}


def scaled_instances(rec: dict, full: tuple[int, int]) -> list[dict]:
    """Instances in pixels of the displayed image (YOLO's are fractions of it)."""
    instances = rec.get("instances") or []
    if not rec.get("normalized"):
        return instances
    w, h = full
    out = []
    for inst in instances:
        x1, y1, x2, y2 = inst["bbox_xyxy"]
        polygons = inst.get("polygons")
        out.append({**inst, "bbox_xyxy": [x1 * w, y1 * h, x2 * w, y2 * h],
                    "polygons": None if polygons is None else
                    [[v * (w if k % 2 == 0 else h) for k, v in enumerate(p)] for p in polygons]})
    return out


def listed(path: Path) -> dict[str, Any]:
    """The first rows of errors.jsonl / skipped.jsonl, and how many it has."""
    rows, total = [], 0
    if not path.is_file():
        return {"total": 0, "rows": []}
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            total += 1
            if len(rows) < LISTED_ROWS:
                try:
                    row = json.loads(line)
                except ValueError:
                    row = {"error": line[:300].decode("utf-8", "replace")}
                rows.append(row if isinstance(row, dict) else {"error": str(row)[:300]})
    return {"total": total, "rows": rows}


def _version(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _relative(path: Path | None, folder: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return os.path.relpath(path, folder)
