"""Augmentation and shard reading inside a PyTorch DataLoader: a transform callable
(RecipeTransform), a Dataset wrapper (AugmentedDataset) and a shard stream (ShardDataset).

Randomness is a function of (seed, epoch, index) only, so results are identical for
any num_workers and worker order, differ between epochs (`set_epoch`), and need no
worker_init_fn. OpenCV runs one thread in each DataLoader worker (workers are the
parallelism; cv2's own threads would oversubscribe the CPU); a forked worker already
starts with one (imgsynth.torch registers imgsynth.core.fork's hook), a spawned one sets it.

Images: HxW(xC) uint8 or float32 (0..1) numpy arrays, CxHxW uint8 or float tensors
(also torchvision's tv_tensors.Image) and PIL images (any mode; palette, CMYK and 16-bit
ones are converted as `decode_image` does); each comes back as the same kind. Targets are
torchvision-style dicts (imgsynth.torch.targets).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgsynth.core.errors import InputError
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Sample
from imgsynth.io.shards import buffer_shuffle, decode_sample, iter_tar_samples
from imgsynth.io.writers.shards import CLASSES_NAME, INDEX_NAME, SHARD_DIR
from imgsynth.torch.targets import instances_to_target, record_target, target_to_instances


class SharedEpoch:
    """`set_epoch(e)` and `epoch` for a dataset whose items depend on the epoch (a mixin,
    listed before the torch Dataset class).

    The epoch is a shared-memory tensor rather than an int: DataLoader workers hold a copy
    of the dataset, and only shared memory carries a later set_epoch over to workers kept
    alive with persistent_workers=True (fork and spawn); an int would stay at the epoch
    they were started in.
    """

    def __init__(self):
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))


def _augment_config(recipe: Any):
    """AugmentConfig from a config, a stage mapping, a transform list or a recipe YAML path."""
    from imgsynth.augment.config import AugmentConfig
    from imgsynth.recipes.load import load_yaml, validate_model

    if isinstance(recipe, AugmentConfig):
        return recipe
    if isinstance(recipe, str | Path):
        stages = load_yaml(recipe).get("stages") or []
        found = [(i, s) for i, s in enumerate(stages) if isinstance(s, dict) and s.get("type") == "augment"]
        if not found:
            from imgsynth.core.errors import RecipeError

            raise RecipeError("the recipe has no stage of type 'augment'", file=str(recipe))
        i, stage = found[0]
        return validate_model(AugmentConfig, stage, prefix=f"stages.{i}", file=str(recipe))
    if isinstance(recipe, list):
        recipe = {"type": "augment", "transforms": recipe}
    return validate_model(AugmentConfig, {"type": "augment", **recipe})


def _one_cv2_thread_per_worker() -> None:
    # A forked worker already has one thread (imgsynth.core.fork), so this never calls
    # setNumThreads in a forked child; a spawned worker's pool is its own.
    if torch.utils.data.get_worker_info() is not None:
        import cv2

        if cv2.getNumThreads() != 1:
            cv2.setNumThreads(1)


class RecipeTransform:
    """`transform(image, target, index=i, epoch=e) -> (image, target)`.

    image: HxWxC uint8 numpy array or CxHxW uint8 tensor; the result has the same kind.
    Multi-image transforms (imgsynth.Mosaic, MixUp, CutMix, CopyPaste) draw their other
    images from `pool` (`len(pool)`, `pool.sample(i)` -> Sample; AugmentedDataset and
    ShardDataset give theirs). A target's `class_id` (an image's class) mixed with others'
    comes back with `class_weights`, a (num_classes,) float tensor of their shares.
    """

    def __init__(self, recipe: Any, seed: int = 0, *, pool: Any = None, num_classes: int | None = None):
        from imgsynth.augment.stage import AugmentStage

        self.config = _augment_config(recipe)
        self.stage = AugmentStage(self.config)
        self.stage.pool = pool
        self.seed = int(seed)
        self.num_classes = num_classes
        self.mixes_labels = any(getattr(part, "mixes_labels", False) for part in self.stage.parts)

    def rng(self, index: int, epoch: int) -> np.random.Generator:
        return sample_rng(self.seed, f"augment/epoch/{int(epoch)}", int(index))

    def augment(self, sample: Sample, index: int, epoch: int = 0) -> Sample:
        """The recipe on one Sample (what __call__ does between converting in and out)."""
        _one_cv2_thread_per_worker()
        return self.stage.apply(sample, self.rng(index, epoch))

    def __call__(self, image, target: dict | None = None, *, index: int, epoch: int = 0):
        label = target.get("class_id") if isinstance(target, dict) else None
        sample = Sample(index=int(index), image=_as_array(image), instances=target_to_instances(target),
                        label=None if label is None else str(int(label)))
        out = self.augment(sample, index, epoch)
        result = _like(image, out.image)
        if target is None:
            return result
        target = instances_to_target(out.instances, target, *out.image.shape[:2])
        if label is not None and self.mixes_labels:
            target["class_weights"] = self.class_weights(out)
        return result, target

    def class_weights(self, sample: Sample) -> torch.Tensor:
        """(num_classes,) float32 shares of the image classes in a (mixed) sample."""
        if self.num_classes is None:
            raise ValueError("the recipe mixes images of different classes (imgsynth.MixUp, CutMix or "
                             "Mosaic): give num_classes (e.g. AugmentedDataset(..., num_classes=10)) for "
                             "the soft labels")
        weights = torch.zeros(self.num_classes, dtype=torch.float32)
        shares = sample.meta.get("label_weights") or {sample.label: 1.0}
        for label, share in shares.items():
            weights[int(label)] += share
        return weights


class SamplesOf:
    """A map-style dataset's items as Samples, by index: the pool multi-image transforms draw
    their other images from (items as `(image, target)`, `(image, class)` or images)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, index: int) -> Sample:
        return item_sample(self.dataset[index], index)


def item_sample(item, index: int) -> Sample:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict):
        label = item[1].get("class_id")  # a shard record's image class (record_target)
        return Sample(index=index, image=_as_array(item[0]), instances=target_to_instances(item[1]),
                      label=None if label is None else str(int(label)))
    if isinstance(item, tuple):
        return Sample(index=index, image=_as_array(item[0]), label=str(int(item[1])))
    return Sample(index=index, image=_as_array(item))


# Samples a shard reader keeps for multi-image transforms to draw from (bounded: decoded
# images with masks take megabytes each).
RECENT_SAMPLES = 64


class RecentSamples:
    """The last `capacity` samples a stream gave, as the pool of a streamed dataset (its
    readers see no other samples)."""

    def __init__(self, capacity: int):
        from collections import deque

        self.samples: Any = deque(maxlen=max(1, int(capacity)))

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def __len__(self) -> int:
        return len(self.samples)

    def sample(self, index: int) -> Sample:
        return self.samples[index]


def _as_array(image) -> np.ndarray:
    """HxWxC uint8 or float32 numpy array of any supported image kind (see the module doc)."""
    if _is_pil(image):
        from imgsynth.io.image import pil_to_array

        gray = image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
        return pil_to_array(image, "L" if gray else "RGB").reshape(image.height, image.width, -1)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise ValueError(f"a tensor image must be CxHxW, got shape {tuple(image.shape)}")
        # one torch call for a CPU tensor without grad (each costs a dispatch; on 32x32
        # images a DataLoader item is mostly such costs)
        planes = image.numpy() if image.is_cpu and not image.requires_grad else image.detach().cpu().numpy()
        if 1 < len(planes) <= 4 and planes.dtype in (np.uint8, np.float32) and planes.flags.c_contiguous:
            import cv2

            # interleaving the (contiguous) planes: ~7x faster than numpy's transposing copy
            return cv2.merge(list(planes)).reshape(*planes.shape[1:], len(planes))
        array = planes.transpose(1, 2, 0)
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.ndim != 3 or array.dtype not in (np.uint8, np.float32):
        raise ValueError(f"images must be uint8 (0..255) or float32 (0..1), HxW(xC) arrays or "
                         f"CxHxW tensors; got {array.dtype} with shape {array.shape} (scale 16-bit "
                         "data to 8 bits first, or pass a PIL image, which is converted)")
    return np.ascontiguousarray(array)


def _like(original, array: np.ndarray):
    """The augmented HxWxC array as the kind of image that came in."""
    if _is_pil(original):
        from PIL import Image

        if array.dtype != np.uint8:
            raise TypeError(f"the recipe made {array.dtype} pixels (Normalize, ToFloat, ...), which a "
                            "PIL image cannot hold: pass the image as a tensor or numpy array "
                            "(e.g. torchvision.transforms.v2.functional.pil_to_tensor) to get them")
        return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if isinstance(original, torch.Tensor):
        result = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        if not original.is_cpu:
            result = result.to(original.device)
        if type(original) is not torch.Tensor:  # e.g. tv_tensors.Image
            from torchvision import tv_tensors

            result = tv_tensors.wrap(result, like=original)
        return result
    return array


def _is_pil(image) -> bool:
    return type(image).__module__.startswith("PIL.")


class AugmentedDataset(SharedEpoch, torch.utils.data.Dataset):
    """Wrap a map-style dataset of `(image, target)` (or bare images) with a recipe's augmentation.

    Item i of epoch e is always augmented the same way, whichever worker loads it.
    Call `set_epoch(e)` before each epoch (as with DistributedSampler); workers kept
    alive with `persistent_workers=True` see it too.
    """

    def __init__(self, dataset, recipe: Any, seed: int = 0, *, num_classes: int | None = None):
        super().__init__()
        self.dataset = dataset
        self.transform = RecipeTransform(recipe, seed=seed, pool=SamplesOf(dataset), num_classes=num_classes)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        _one_cv2_thread_per_worker()  # before the wrapped dataset's own cv2 calls
        item = self.dataset[index]
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict | list):
            # a list: COCO annotations (CocoDetection), refused with the fix by the transform
            return self.transform(item[0], item[1], index=index, epoch=self.epoch)
        if isinstance(item, tuple) and self.transform.mixes_labels:  # (image, class): soft labels
            out = self.transform.augment(item_sample(item[:2], index), index, self.epoch)
            return (_like(item[0], out.image), self.transform.class_weights(out), *item[2:])
        if isinstance(item, tuple):  # (image, class label): augment the image only
            return (self.transform(item[0], index=index, epoch=self.epoch), *item[1:])
        return self.transform(item, index=index, epoch=self.epoch)


class ShardDataset(SharedEpoch, torch.utils.data.IterableDataset):
    """`(image, record)` samples from OUT/shards (or a shards folder), shuffled and split
    across DataLoader workers (and distributed ranks: `rank`, `world_size`)
    deterministically. Call `set_epoch(e)` before each epoch.

        data = ShardDataset("out/compose", seed=0, shuffle_buffer=1000)
        loader = DataLoader(data, batch_size=None, num_workers=2)
        for epoch in range(epochs):
            data.set_epoch(epoch)
            for image, record in loader: ...

    Each item is `(image, record)`: the image as HxWx3 RGB uint8 (decoded with the package's
    one decoder), the record as in manifest.jsonl plus `class_id` when the sample has a class
    label. With `augment` (a recipe, a transform list or an AugmentConfig, as for
    RecipeTransform) an item is `(image, target)` instead, both augmented together: the
    target is the record's objects as torchvision-style tensors (boxes, labels = ids in
    `classes`, masks, keypoints; record_target) plus the record's `id`, with randomness from
    (seed, epoch, sample index). With `transform`, an item is `transform(image, record)`.

    Order is a function of (seed, epoch, world_size, num_workers) only: the shard list is
    permuted by (seed, epoch) and dealt round-robin to the readers (reader r = rank *
    num_workers + DataLoader worker id reads shards r, r + R, ... of R = world_size *
    num_workers), and each reader shuffles its samples through a buffer seeded by
    (seed, epoch, r). Every sample comes exactly once per epoch over all ranks. Readers
    beyond the shard count get nothing, so write at least R shards (output.shard_size).
    """

    def __init__(self, path: str | Path, *, seed: int = 0, shuffle_buffer: int = 1000,
                 transform: Callable[[np.ndarray, dict], Any] | None = None,
                 augment: Any = None, rank: int = 0, world_size: int = 1):
        super().__init__()
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
            if self.classes is None:
                raise InputError("these shards have no classes.json, which augment needs for the "
                                 "label ids", file=str(classes_path),
                                 fix="write the shards again with this version of imgsynth")
            self.augment = RecipeTransform(augment, seed=seed, num_classes=len(self.classes))
        self.rank, self.world_size = int(rank), int(world_size)

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
        recent = RecentSamples(RECENT_SAMPLES)
        if self.augment is not None:  # multi-image transforms: the reader's recent samples
            self.augment.stage.pool = recent
        for sample in buffer_shuffle(raw, self.shuffle_buffer, rng):
            image, record = decode_sample(sample)
            if self.augment is not None:
                target = record_target(record, self.classes)
                if self.augment.stage.multi_image:
                    recent.add(item_sample((image, target), record["index"]))
                image, target = self.augment(image, target, index=record["index"], epoch=epoch)
                target["id"] = record["id"]
                yield image, target
            else:
                yield self.transform(image, record) if self.transform else (image, record)
