"""Read an imgsynth run's WebDataset shards without torch: the members of a tar grouped into
samples (`iter_tar_samples`), a bounded shuffle (`buffer_shuffle`) and a sample decoded into
`(image, record)` (`decode_sample`).

The PyTorch Dataset over them is `imgsynth.torch.ShardDataset` (the torch layer, which sits
above io: io never imports it).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.io.image import decode_image


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


def decode_sample(sample: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """A sample of iter_tar_samples (plus `__shard__`, its tar's name, for messages) as the
    image, HxWx3 RGB uint8, and its manifest record plus `class_id` when it has a class."""
    record = json.loads(sample["json"])
    ext = Path(record["image"]).suffix.lstrip(".")
    name = f"{sample['__shard__']}/{sample['__key__'].decode()}.{ext}"
    image = decode_image(name, data=sample[ext])
    if "cls" in sample:
        record["class_id"] = int(sample["cls"])
    return image, record
