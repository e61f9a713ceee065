"""One pass over an image set: features, logits, perceptual hashes and pixel statistics.

The result is cached per (file set fingerprint, extractor id) as an .npz, so the real set
of a project is decoded and encoded once; a changed, added or removed file changes the
fingerprint and the set is encoded again.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsynth.evaluate.features import FeatureExtractor
from imgsynth.evaluate.imageset import ImageSet
from imgsynth.evaluate.memorization import phash_image
from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.image import decode_image

CACHE_VERSION = 1


@dataclass
class EncodedSet:
    names: list[str]
    features: np.ndarray  # (N, D) float64
    logits: np.ndarray | None  # (N, K) or None
    phash: np.ndarray  # (N,) uint64 perceptual hash
    pixel_sha: np.ndarray  # (N,) str: sha256 of decoded pixels (exact duplicates)
    channel_moments: np.ndarray  # (N, 6): per-image R, G, B mean then R, G, B std, 0..255
    histograms: np.ndarray  # (3, 256) pixel counts per channel
    gray: np.ndarray  # (N,) bool: all three channels equal
    extractor_id: str
    labels: list[str] | None = None
    boxes: list | None = None
    seconds: float = 0.0
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return Path(os.environ.get("IMGSYNTH_CACHE", os.path.join(base, "imgsynth"))) / "features"


def batches_of_same_shape(named_images: Iterable[tuple[str, np.ndarray]],
                          batch_size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Consecutive images of one shape, at most batch_size (a tensor needs one shape)."""
    batch: list[tuple[str, np.ndarray]] = []
    for name, image in named_images:
        if batch and (len(batch) == batch_size or image.shape != batch[0][1].shape):
            yield batch
            batch = []
        batch.append((name, image))
    if batch:
        yield batch


def encode_images(named_images: Iterable[tuple[str, np.ndarray]], extractor: FeatureExtractor,
                  batch_size: int = 64) -> EncodedSet:
    """Encode (name, HxWx3 uint8) pairs in order."""
    start = time.perf_counter()
    names, feats, logits, hashes, shas, moments, grays = [], [], [], [], [], [], []
    histograms = np.zeros((3, 256), dtype=np.int64)
    for batch in batches_of_same_shape(named_images, batch_size):
        stack = np.stack([image for _, image in batch])
        f, lg = extractor.extract(stack)
        feats.append(f)
        if lg is not None:
            logits.append(lg)
        for name, image in batch:
            names.append(name)
            hashes.append(phash_image(image))
            shas.append(hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest())
            pixels = image.reshape(-1, 3)
            moments.append(np.concatenate([pixels.mean(0), pixels.std(0)]))
            grays.append(bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()))
            for c in range(3):
                histograms[c] += np.bincount(pixels[:, c], minlength=256)
    return EncodedSet(
        names=names,
        features=np.concatenate(feats) if feats else np.zeros((0, extractor.num_features)),
        logits=np.concatenate(logits) if logits else None,
        phash=np.array(hashes, dtype=np.uint64), pixel_sha=np.array(shas, dtype=str),
        channel_moments=np.array(moments, dtype=np.float64).reshape(-1, 6),
        histograms=histograms, gray=np.array(grays, dtype=bool), extractor_id=extractor.id,
        seconds=time.perf_counter() - start)


def rgb_images(image_set: ImageSet) -> Iterator[tuple[str, np.ndarray]]:
    for path in image_set.files:
        yield str(path.relative_to(image_set.root)), decode_image(path)


def encode_image_set(image_set: ImageSet, extractor: FeatureExtractor, *,
                     cache_dir: str | Path | None = None, batch_size: int = 64) -> EncodedSet:
    """Encode a folder, reading and writing the feature cache unless cache_dir is False."""
    start = time.perf_counter()
    cache_file = None
    if cache_dir is not False:
        key = hashlib.sha256(f"v{CACHE_VERSION}|{image_set.fingerprint()}|{extractor.id}".encode())
        cache_file = Path(cache_dir or default_cache_dir()) / f"{key.hexdigest()[:32]}.npz"
    encoded = load_encoded(cache_file) if cache_file is not None and cache_file.is_file() else None
    if encoded is None:
        encoded = encode_images(rgb_images(image_set), extractor, batch_size)
        if cache_file is not None:
            save_encoded(cache_file, encoded)
    encoded.labels, encoded.boxes = image_set.labels, image_set.boxes
    encoded.notes = list(image_set.notes)
    encoded.seconds = time.perf_counter() - start
    return encoded


def save_encoded(path: Path, encoded: EncodedSet) -> None:
    buffer = io.BytesIO()
    arrays = dict(names=np.array(encoded.names, dtype=str), features=encoded.features,
                  phash=encoded.phash, pixel_sha=encoded.pixel_sha,
                  channel_moments=encoded.channel_moments, histograms=encoded.histograms,
                  gray=encoded.gray, extractor_id=np.array(encoded.extractor_id))
    if encoded.logits is not None:
        arrays["logits"] = encoded.logits
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_encoded(path: Path) -> EncodedSet | None:
    """None when the file is unreadable (then the set is simply encoded again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return EncodedSet(
                names=[str(n) for n in data["names"]], features=data["features"],
                logits=data["logits"] if "logits" in data else None, phash=data["phash"],
                pixel_sha=data["pixel_sha"], channel_moments=data["channel_moments"],
                histograms=data["histograms"], gray=data["gray"],
                extractor_id=str(data["extractor_id"]), from_cache=True)
    except (OSError, ValueError, KeyError):
        return None
