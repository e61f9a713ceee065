"""No hang: forked DataLoader workers after the parent used OpenCV's thread pool, and the Ray
engine without a reachable Ray. Each scenario runs in a subprocess with a timeout, so a
regression fails the test instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Shards of 8 one-object samples; then, for each way imgsynth's code runs in DataLoader
# workers, the parent uses OpenCV with threads (an in-process epoch and a big blur) and a
# forked 2-worker DataLoader must deliver every sample with its right target.
FORKED_WORKERS = r'''
import sys, time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from imgsynth.io.image import encode_image
from imgsynth.io.writers.shards import write_webdataset
from imgsynth.recipes.schema import OutputConfig
from imgsynth.torch import AugmentedDataset, BatchAugment, RecipeTransform, ShardDataset

out = Path(sys.argv[1])
CLASSES = ["cat", "dog"]
FLIP = [{"name": "imgsynth.HorizontalFlip", "p": 1.0}]
BOX, FLIPPED = [2.0, 3.0, 10.0, 12.0], [10.0, 3.0, 18.0, 12.0]  # 20 px wide images
records = []
for i in range(8):
    rel = f"images/{i + 1:08d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(encode_image(np.full((16, 20, 3), 10 * i, np.uint8), "png"))
    records.append({"id": i + 1, "index": i, "image": rel, "width": 20, "height": 16, "label": None,
                    "text": None, "instances": [{"class": CLASSES[i % 2], "bbox_xyxy": BOX}], "meta": {}})
write_webdataset(out, records, CLASSES, OutputConfig(shard_size=2))


class Boxes(Dataset):
    """Someone's own dataset: item i has one box of class i % 2."""
    def __init__(self, transform=None):
        self.transform = transform

    def __len__(self):
        return 8

    def __getitem__(self, i):
        image = np.full((16, 20, 3), 10 * i, np.uint8)
        target = {"boxes": torch.tensor([BOX]), "labels": torch.tensor([i % 2]), "id": i + 1}
        return self.transform(image, target, index=i) if self.transform else (image, target)


def cv2_threads_in_parent():
    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((1500, 1500, 3), np.uint8), (31, 31), 5)
    time.sleep(0.2)  # the pool's threads go to sleep on their condition variable


def one_cv2_thread(_):  # the usual worker_init_fn, which must not hang either
    cv2.setNumThreads(1)


scenarios = {
    "ShardDataset(augment=...)": lambda: dict(dataset=ShardDataset(out, augment=FLIP, shuffle_buffer=3)),
    "ShardDataset(transform=...) with worker_init_fn": lambda: dict(
        dataset=ShardDataset(out, transform=lambda image, rec: (cv2.flip(image, 1), rec)),
        worker_init_fn=one_cv2_thread),
    "RecipeTransform in a Dataset, BatchAugment in collate_fn": lambda: dict(
        dataset=Boxes(RecipeTransform(FLIP)), batch_size=2,
        collate_fn=lambda items: [(BatchAugment(hflip=0.0)(torch.from_numpy(image).permute(2, 0, 1)[None],
                                                      [target["boxes"]], batch_index=0)[0][0].permute(1, 2, 0),
                                   target) for image, target in items]),
    "AugmentedDataset": lambda: dict(dataset=AugmentedDataset(Boxes(), FLIP)),
}
for name, make in scenarios.items():
    loader = make()
    loader.setdefault("batch_size", None)
    list(DataLoader(**loader))  # an in-process epoch: OpenCV's pool starts in this process
    cv2_threads_in_parent()
    items = list(DataLoader(**loader, num_workers=2, multiprocessing_context="fork"))
    if loader["batch_size"]:
        items = [item for batch in items for item in batch]
    for image, target in items:
        i = target["id"] - 1
        assert np.asarray(image)[0, 0, 0] == 10 * i, name
        if "boxes" in target:  # augmented: the label ids and the flipped box
            assert target["labels"].tolist() == [i % 2], name
            assert target["boxes"].tolist() == [FLIPPED], name
        else:  # a shard record
            assert target["instances"][0]["class"] == CLASSES[i % 2], name
    assert sorted(t["id"] for _, t in items) == list(range(1, 9)), name
    assert cv2.getNumThreads() == 2, "the parent keeps its OpenCV threads"
    print("ok:", name, flush=True)
'''


def test_forked_dataloader_workers_do_not_hang_after_the_parent_used_opencv_threads(tmp_path):
    try:
        done = subprocess.run([sys.executable, "-c", FORKED_WORKERS, str(tmp_path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        passed = (exc.stdout or b"").decode()
        pytest.fail(f"forked DataLoader workers hung; scenarios that passed before:\n{passed}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok:") == 4
