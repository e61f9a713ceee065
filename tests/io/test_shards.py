"""WebDataset shards: deterministic, complete tars and a reader that streams every sample
once per epoch, in an order set by (seed, epoch), with the original pixels and labels."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imgsynth.core.errors import InputError
from imgsynth.io.image import decode_image, encode_image
from imgsynth.io.writers.shards import write_webdataset
from imgsynth.recipes.schema import OutputConfig
from imgsynth.run import run_recipe
from tests.conftest import tree_hashes, write_recipe

torch = pytest.importorskip("torch")
from imgsynth.io.shards import ShardDataset  # noqa: E402 - after the torch skip

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


@pytest.fixture
def shards(tmp_path) -> tuple[Path, list[dict]]:
    records = make_run(tmp_path)
    write_webdataset(tmp_path, records, CLASSES, OutputConfig(shard_size=5))
    return tmp_path, records


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


def _epoch(data: ShardDataset, epoch: int, num_workers: int) -> list[tuple[np.ndarray, dict]]:
    data.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=num_workers)
    return [(np.asarray(image), record) for image, record in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_sample_once_per_epoch_with_original_pixels_and_labels(shards, num_workers):
    out, records = shards
    data = ShardDataset(out, seed=3, shuffle_buffer=4)
    assert len(data) == N
    for epoch in (0, 1):
        items = _epoch(data, epoch, num_workers)
        assert sorted(rec["id"] for _, rec in items) == list(range(1, N + 1))
        for image, rec in items:
            original = records[rec["id"] - 1]
            np.testing.assert_array_equal(image, decode_image(out / original["image"]))
            assert rec["label"] == original["label"]
            assert rec["class_id"] == CLASSES.index(original["label"])


def test_order_depends_on_seed_and_epoch_only(shards):
    out, _ = shards

    def order(seed: int, epoch: int, num_workers: int = 0) -> list[int]:
        return [rec["id"] for _, rec in _epoch(ShardDataset(out, seed=seed, shuffle_buffer=4),
                                               epoch, num_workers)]

    assert order(3, 0) == order(3, 0)
    assert order(3, 0) != order(3, 1)
    assert order(3, 0) != order(4, 0)
    assert order(3, 1, num_workers=2) == order(3, 1, num_workers=2)
    assert order(3, 0) != list(range(1, N + 1))


def test_ranks_split_the_samples_between_them(shards):
    out, _ = shards
    ranks = [[rec["id"] for _, rec in _epoch(ShardDataset(out, seed=3, rank=r, world_size=2), 1, 0)]
             for r in (0, 1)]
    assert ranks[0] and ranks[1]
    assert sorted(ranks[0] + ranks[1]) == list(range(1, N + 1))


def test_transform_gets_image_and_record(shards):
    out, _ = shards
    data = ShardDataset(out, transform=lambda image, rec: (image.shape, rec["class_id"]))
    assert sorted(x for x in data) == sorted(((8 + i % 3, 10, 3), i % 3) for i in range(N))


def test_missing_index_says_how_to_make_shards(tmp_path):
    with pytest.raises(InputError, match="webdataset"):
        ShardDataset(tmp_path)


def test_run_with_webdataset_format_shards_the_manifest(tmp_path, coco_dataset):
    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source: {{type: dataset, path: {coco_dataset}, format: coco, copies: 2}}
output: {{formats: [webdataset], shard_size: 4, preview: false}}
""")
    run_recipe(recipe, tmp_path / "out", quiet=True)
    manifest = [json.loads(line) for line in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    got = sorted((rec for _, rec in ShardDataset(tmp_path / "out", shuffle_buffer=1)),
                 key=lambda r: r["id"])
    assert got == manifest and len(got) == 12
    with tarfile.open(tmp_path / "out/shards/shard-000000.tar") as tar:
        assert tar.extractfile("00000001.mask.png").read() == \
            (tmp_path / "out" / manifest[0]["mask"]).read_bytes()


def test_augment_moves_images_and_their_labels_together_per_epoch(tmp_path, coco_dataset):
    """`augment=`: items are (image, target) augmented together; class ids from classes.json;
    persistent workers follow set_epoch."""
    from imgsynth.torch import record_target

    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source: {{type: dataset, path: {coco_dataset}, format: coco, copies: 1}}
output: {{formats: [webdataset, coco], shard_size: 2, preview: false}}
""")
    run_recipe(recipe, tmp_path / "out", quiet=True)
    plain = {rec["id"]: (image, rec) for image, rec in ShardDataset(tmp_path / "out")}
    data = ShardDataset(tmp_path / "out", seed=3, augment=[{"name": "imgsynth.HorizontalFlip", "p": 1.0}])
    assert data.classes == ["disk", "square"]
    for image, target in data:
        original, rec = plain[target["id"]]
        width = original.shape[1]
        assert np.array_equal(image, original[:, ::-1])
        want = record_target(rec, data.classes)
        assert target["labels"].tolist() == want["labels"].tolist() and len(want["labels"]) > 0
        assert torch.equal(target["masks"], want["masks"].flip(-1))
        x1, y1, x2, y2 = want["boxes"].unbind(1)
        assert torch.allclose(target["boxes"], torch.stack([width - x2, y1, width - x1, y2], 1))
    noisy = ShardDataset(tmp_path / "out", augment=[{"name": "imgsynth.GaussianNoise", "sigma": 8}])
    loader = torch.utils.data.DataLoader(noisy, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in (0, 1):
        noisy.set_epoch(epoch)
        epochs.append({t["id"]: image for image, t in loader})
    assert all(not np.array_equal(epochs[0][k], epochs[1][k]) for k in epochs[0])


def test_augmented_classification_shards_keep_the_class_id(shards):
    out, records = shards
    data = ShardDataset(out, augment=[{"name": "imgsynth.HorizontalFlip", "p": 1.0}])
    got = {target["id"]: target["class_id"] for _, target in data}
    assert got == {rec["id"]: CLASSES.index(rec["label"]) for rec in records}
