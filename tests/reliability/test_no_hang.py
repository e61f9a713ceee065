"""No hang: forked DataLoader workers after the parent used OpenCV's thread pool, and the Ray
engine without a reachable Ray. Each scenario runs in a subprocess with a timeout, so a
regression fails the test instead of hanging the suite."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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


def batch_augment(items):  # a collate_fn running BatchAugment on CPU in the workers
    images = torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image, _ in items])
    images, _, _ = BatchAugment(hflip=0.0)(images, [t["boxes"] for _, t in items], batch_index=0)
    return [(image.permute(1, 2, 0), target) for image, (_, target) in zip(images, items)]


scenarios = {
    "ShardDataset(augment=...)": lambda: dict(dataset=ShardDataset(out, augment=FLIP, shuffle_buffer=3)),
    "ShardDataset(transform=...) with worker_init_fn": lambda: dict(
        dataset=ShardDataset(out, transform=lambda image, rec: (cv2.flip(image, 1), rec)),
        worker_init_fn=one_cv2_thread),
    "RecipeTransform in a Dataset, BatchAugment in collate_fn": lambda: dict(
        dataset=Boxes(RecipeTransform(FLIP)), batch_size=2, collate_fn=batch_augment),
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


def run_bounded(command: list[str], what: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `command`; fail the test if it hangs, killing its whole process group (hung
    DataLoader workers or Ray processes would outlive a killed parent)."""
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as process:
        hung = False
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
    if hung:  # failed outside the except block: the TimeoutExpired would repeat the command
        pytest.fail(f"{what} hung (killed after {timeout:g} s); its output:\n{out}{err[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_forked_dataloader_workers_do_not_hang_after_the_parent_used_opencv_threads(tmp_path):
    done = run_bounded([sys.executable, "-c", FORKED_WORKERS, str(tmp_path)], "a forked DataLoader")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok:") == 4


RAY_RECIPE = """
source:
  type: dataset
  path: {data}
output:
  formats: [coco]
  preview: false
"""


def _ray_run(tmp_path: Path, env: dict[str, str],
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`imgsynth run --engine ray` of a 2-image recipe with `env` (and no RAY_ADDRESS of ours)."""
    pytest.importorskip("ray")
    from tests.conftest import make_coco_dataset, write_recipe

    data = make_coco_dataset(tmp_path / "data", n_images=2)
    recipe = write_recipe(tmp_path / "recipe.yaml", RAY_RECIPE.format(data=data))
    command = [*prefix, sys.executable, "-m", "imgsynth", "run", str(recipe), "--out", str(tmp_path / "out"),
               "--engine", "ray", "--workers", "1"]
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env
    return run_bounded(command, "imgsynth run --engine ray", environ)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ray_without_its_head_stops_at_once_naming_the_address_and_the_fix(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    done = _ray_run(tmp_path, {"RAY_ADDRESS": address})
    assert done.returncode == 1, done.stderr
    assert f"Ray could not reach its head at {address} (RAY_ADDRESS) (Connection refused)" in done.stderr
    assert "ray start --head" in done.stderr and "--resume" in done.stderr
    assert "Traceback" not in done.stderr


def test_ray_head_port_that_is_not_ray_stops_within_the_start_timeout(tmp_path):
    """A port that takes connections but where no Ray answers (the dashboard's port, another
    service): Ray's own waits are bounded by IMGSYNTH_RAY_START_TIMEOUT."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        done = _ray_run(tmp_path, {"RAY_ADDRESS": address, "IMGSYNTH_RAY_START_TIMEOUT": "4"})
    assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stderr
    assert f"Ray could not connect to its head at {address} (RAY_ADDRESS) within about 4 s" in done.stderr
    assert "Traceback" not in done.stderr


def test_local_ray_without_a_loopback_network_stops_at_once_with_the_fix(tmp_path):
    # A network namespace of its own has a loopback interface that is down.
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rn", "true"]).returncode != 0:
        pytest.skip("unshare -rn (a user network namespace) is not allowed here")
    done = _ray_run(tmp_path, {}, prefix=("unshare", "-rn"))
    assert done.returncode == 1, done.stderr
    assert "Ray could not start: its processes talk over 127.0.0.1, and the loopback network of " \
           "this machine does not work (Network is unreachable)" in done.stderr
    assert "ip link set lo up" in done.stderr and "--engine local" in done.stderr
