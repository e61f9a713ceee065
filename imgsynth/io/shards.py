"""Stream an imgsynth run's WebDataset shards into PyTorch training.

    from imgsynth.io.shards import ShardDataset
    data = ShardDataset("out/compose", seed=0, shuffle_buffer=1000)
    loader = DataLoader(data, batch_size=None, num_workers=2)
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for image, record in loader: ...

Each item is `(image, record)`: the image as HxWx3 RGB uint8 (decoded with the package's one
decoder), the record as in manifest.jsonl plus `class_id` when the sample has a class
label. With `augment` (a recipe, a transform list or an AugmentConfig, as for
imgsynth.torch.RecipeTransform) an item is `(image, target)` instead, both augmented
together: the target is the record's objects as torchvision-style tensors (boxes, labels
= ids in `classes`, masks, keypoints; imgsynth.torch.record_target) plus the record's `id`,
with randomness from (seed, epoch, sample index). With `transform`, an item is
`transform(image, record)`.

Order is a function of (seed, epoch, world_size, num_workers) only: the shard list is
permuted by (seed, epoch) and dealt round-robin to the readers (reader r = rank *
num_workers + DataLoader worker id reads shards r, r + R, ... of R = world_size *
num_workers), and each reader shuffles its samples through a buffer seeded by
(seed, epoch, r). Every sample comes exactly once per epoch over all ranks. Readers beyond
the shard count get nothing, so write at least R shards (output.shard_size).

Forked DataLoader workers never hang on the parent's OpenCV thread pool, whatever the
parent ran before: importing this module registers imgsynth.core.fork's hook, which closes
the pool before each fork (for `transform` functions calling OpenCV too).

Importing this module imports torch; `import imgsynth` alone never does.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgsynth.core.errors import InputError
from imgsynth.core.fork import make_opencv_fork_safe
from imgsynth.core.rng import sample_rng
from imgsynth.io.image import decode_image
from imgsynth.io.writers.shards import CLASSES_NAME, INDEX_NAME, SHARD_DIR

make_opencv_fork_safe()  # before any DataLoader can fork a worker from this process


def iter_tar_samples(path: Path) -> Iterator[dict[str, bytes]]:
    """Members grouped by key (the name before the first dot), read as a stream."""
    sample: dict[str, bytes] = {}
    with tarfile.open(path, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = member.name.split(".", 1)
            if sample and sample["__key__"] != key.encode():
                yield sample
                sample = {}
            sample["__key__"] = key.encode()
            sample[ext] = tar.extractfile(member).read()
    if sample:
        yield sample


def buffer_shuffle(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Shuffle a stream with a buffer of `size` items: memory stays at `size` items."""
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()
    while buffer:
        i = int(rng.integers(len(buffer)))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        yield buffer.pop()


class ShardDataset(torch.utils.data.IterableDataset):
    """`(image, record)` samples from OUT/shards (or a shards folder), shuffled and split
    across DataLoader workers (and distributed ranks: `rank`, `world_size`)
    deterministically. Call `set_epoch(e)` before each epoch."""

    def __init__(self, path: str | Path, *, seed: int = 0, shuffle_buffer: int = 1000,
                 transform: Callable[[np.ndarray, dict], Any] | None = None,
                 augment: Any = None, rank: int = 0, world_size: int = 1):
        folder = Path(path)
        if (folder / SHARD_DIR).is_dir():
            folder = folder / SHARD_DIR
        index_path = folder / INDEX_NAME
        if not index_path.is_file():
            raise InputError("no shard index here", file=str(index_path),
                             fix="run the recipe with 'webdataset' in output.formats")
        rows = [json.loads(line) for line in index_path.read_text(encoding="utf-8").splitlines() if line]
        self.shards = [folder / row["shard"] for row in rows]
        self.count = sum(row["count"] for row in rows)
        classes_path = folder / CLASSES_NAME
        # Class names in id order; None for shards written before classes.json existed.
        self.classes: list[str] | None = json.loads(classes_path.read_text(encoding="utf-8")) \
            if classes_path.is_file() else None
        self.seed = int(seed)
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.transform = transform
        self.augment = None
        if augment is not None and transform is not None:
            raise ValueError("give augment or transform, not both (augment yields (image, target); "
                             "transform gets (image, record))")
        if augment is not None:
            from imgsynth.torch import RecipeTransform

            if self.classes is None:
                raise InputError("these shards have no classes.json, which augment needs for the "
                                 "label ids", file=str(classes_path),
                                 fix="write the shards again with this version of imgsynth")
            self.augment = RecipeTransform(augment, seed=seed)
        self.rank, self.world_size = int(rank), int(world_size)
        # Shared memory, so that DataLoader workers kept alive (persistent_workers=True)
        # see set_epoch too; a plain int would stay at the epoch they were started in.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return self.count

    def reader_shards(self, reader: int, readers: int) -> list[Path]:
        order = sample_rng(self.seed, f"shards/order/{self.epoch}", 0).permutation(len(self.shards))
        return [self.shards[i] for i in order[reader::readers]]

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        reader = self.rank * num_workers + worker
        shards = self.reader_shards(reader, self.world_size * num_workers)
        raw = (s | {"__shard__": path.name} for path in shards for s in iter_tar_samples(path))
        rng = sample_rng(self.seed, f"shards/buffer/{self.epoch}", reader)
        epoch = self.epoch
        for sample in buffer_shuffle(raw, self.shuffle_buffer, rng):
            image, record = decode_sample(sample)
            if self.augment is not None:
                from imgsynth.torch import record_target

                target = record_target(record, self.classes)
                image, target = self.augment(image, target, index=record["index"], epoch=epoch)
                target["id"] = record["id"]
                yield image, target
            else:
                yield self.transform(image, record) if self.transform else (image, record)


def decode_sample(sample: dict[str, Any]) -> tuple[np.ndarray, dict]:
    record = json.loads(sample["json"])
    ext = Path(record["image"]).suffix.lstrip(".")
    name = f"{sample['__shard__']}/{sample['__key__'].decode()}.{ext}"
    image = decode_image(name, data=sample[ext])
    if "cls" in sample:
        record["class_id"] = int(sample["cls"])
    return image, record
