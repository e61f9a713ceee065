"""`webdataset`: WebDataset tar shards for sets too big for one folder of files.

OUT/shards/shard-000000.tar, ... hold `output.shard_size` samples each, in id order. Per
sample (key = the 8-digit id): `<key>.<png|jpg|webp>` (the image file's bytes),
`<key>.mask.png` when the sample has an instance map, `<key>.json` (its manifest record)
and `<key>.cls` (the class id, ASCII) when it has a class label. OUT/shards/index.jsonl
lists each shard's name, first and last id, count and sha256; OUT/shards/classes.json the
class names in id order (the ids of `.cls` and of the other label formats).

Shards are byte-identical for the same manifest: members are sorted, with mtime 0,
uid/gid 0, empty owner names and mode 0644. Each shard is written under a temporary
name and then renamed, so a shard file is always complete. `imgsynth.torch.ShardDataset`
streams them into PyTorch.
"""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from imgsynth.core.errors import RecipeError
from imgsynth.io.atomic import atomic_write_text, atomic_writer
from imgsynth.io.folders import file_sha256
from imgsynth.io.writers import Records

SHARD_DIR = "shards"
INDEX_NAME = "index.jsonl"
CLASSES_NAME = "classes.json"


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def sample_members(out_dir: Path, record: dict, classes: list[str]) -> list[tuple[str, bytes]]:
    """(member name, bytes) of one sample, in the order they go into the tar."""
    key = f"{record['id']:08d}"
    members = [(f"{key}.json", json.dumps(record, ensure_ascii=False, sort_keys=True).encode())]
    image = Path(record["image"])
    members.append((f"{key}{image.suffix}", (out_dir / image).read_bytes()))
    if record.get("mask"):
        members.append((f"{key}.mask.png", (out_dir / record["mask"]).read_bytes()))
    if record.get("label") is not None:
        if record["label"] not in classes:
            raise RecipeError(f"label '{record['label']}' (sample id {record['id']}) is not in the "
                              f"class list {classes}", key="output.classes",
                              fix="add it to output.classes")
        members.append((f"{key}.cls", str(classes.index(record["label"])).encode()))
    return sorted(members)


def write_tar(path: Path, members: Iterable[tuple[str, bytes]]) -> str:
    """Write a deterministic tar under a temporary name, rename it; return its sha256.
    `members` may be a generator: one sample's bytes are in memory at a time."""
    with atomic_writer(path, "wb") as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return file_sha256(path)


def write_webdataset(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    out_dir = Path(out_dir)
    folder = out_dir / SHARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths, index = [], []
    pending = iter(records)
    # One shard's records in memory at a time; its images are read one sample at a time.
    while group := list(itertools.islice(pending, output.shard_size)):
        path = folder / shard_name(len(paths))
        sha = write_tar(path, (m for rec in group for m in sample_members(out_dir, rec, classes)))
        paths.append(path)
        index.append({"shard": path.name, "first_id": group[0]["id"], "last_id": group[-1]["id"],
                      "count": len(group), "sha256": sha})
    index_path = folder / INDEX_NAME
    atomic_write_text(index_path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in index))
    classes_path = folder / CLASSES_NAME
    atomic_write_text(classes_path, json.dumps(classes, ensure_ascii=False) + "\n")
    return paths + [index_path, classes_path]
