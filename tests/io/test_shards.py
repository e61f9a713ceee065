"""WebDataset shards: deterministic, complete tars, read back without torch (the torch
Dataset over them, imgsynth.torch.ShardDataset, is tested in tests/torch/test_data.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imgsynth.io.image import decode_image, encode_image
from imgsynth.io.shards import buffer_shuffle, decode_sample, iter_tar_samples
from imgsynth.io.writers.shards import write_webdataset
from imgsynth.recipes.schema import OutputConfig
from tests.conftest import tree_hashes

CLASSES = ["cat", "dog", "owl"]
N = 23


def make_run(out: Path) -> list[dict]:
    """An output folder as a run leaves it: images/ and manifest records with class labels."""
    rng = np.random.default_rng(0)
    records = []
    for index in range(N):
        rel = f"images/{index + 1:08d}.png"
        image = rng.integers(0, 256, (8 + index % 3, 10, 3), dtype=np.uint8)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(encode_image(image, "png"))
        records.append({"id": index + 1, "index": index, "image": rel, "width": 10,
                        "height": image.shape[0], "label": CLASSES[index % 3], "text": None,
                        "instances": [], "meta": {}})
    return records


def make_shards(out: Path) -> list[dict]:
    """make_run's folder with its samples in 5 shards of 5 (the last of 3); its records."""
    records = make_run(out)
    write_webdataset(out, records, CLASSES, OutputConfig(shard_size=5))
    return records


@pytest.fixture
def shards(tmp_path) -> tuple[Path, list[dict]]:
    return tmp_path, make_shards(tmp_path)


def test_shards_hold_every_sample_and_an_index(shards):
    out, records = shards
    index = [json.loads(line) for line in (out / "shards" / "index.jsonl").read_text().splitlines()]
    assert [row["shard"] for row in index] == [f"shard-{i:06d}.tar" for i in range(5)]
    assert [row["count"] for row in index] == [5, 5, 5, 5, 3]
    assert (index[0]["first_id"], index[0]["last_id"], index[-1]["last_id"]) == (1, 5, N)
    for row in index:
        assert hashlib.sha256((out / "shards" / row["shard"]).read_bytes()).hexdigest() == row["sha256"]
    with tarfile.open(out / "shards" / "shard-000000.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["00000001.cls", "00000001.json", "00000001.png"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
        assert tar.extractfile("00000002.png").read() == (out / "images/00000002.png").read_bytes()
        assert tar.extractfile("00000002.cls").read() == b"1"
        assert json.loads(tar.extractfile("00000002.json").read()) == records[1]
    assert not list(out.rglob("*.tmp"))


def test_shards_are_byte_identical_when_rewritten(shards, tmp_path):
    out, records = shards
    again = tmp_path / "again"
    for rec in records:
        (again / rec["image"]).parent.mkdir(parents=True, exist_ok=True)
        (again / rec["image"]).write_bytes((out / rec["image"]).read_bytes())
    write_webdataset(again, records, CLASSES, OutputConfig(shard_size=5))
    assert tree_hashes(again / "shards") == tree_hashes(out / "shards")


def test_tar_samples_decode_to_the_original_pixels_and_records(shards):
    out, records = shards
    samples = [s | {"__shard__": path.name} for path in sorted((out / "shards").glob("*.tar"))
               for s in iter_tar_samples(path)]
    rng = np.random.default_rng(0)
    shuffled = list(buffer_shuffle(samples, 4, rng))
    assert shuffled != samples and sorted(s["__key__"] for s in shuffled) == [s["__key__"] for s in samples]
    for sample in samples:
        image, record = decode_sample(sample)
        original = records[record["id"] - 1]
        np.testing.assert_array_equal(image, decode_image(out / original["image"]))
        assert record["class_id"] == CLASSES.index(original["label"])


def test_the_shard_reader_module_does_not_import_torch():
    """imgsynth.io is torch-free: reading shards needs no torch (the Dataset over them is
    imgsynth.torch.ShardDataset)."""
    code = ("import sys, imgsynth.io.shards as shards\n"
            "print('torch' in sys.modules)\n"
            "print(hasattr(shards, 'ShardDataset'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
