"""A small written dataset (images + manifest records) that every writer test starts from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from imgsynth.core.masks import tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.image import encode_image
from imgsynth.io.writers.manifest import record_from_sample

CLASSES = ["cat", "dog", "bird"]  # not alphabetical: formats must keep this order


def _mask_instance(name: str, mask: np.ndarray, **flags) -> Instance:
    return Instance(class_name=name, bbox_xyxy=tight_bbox(mask), mask=mask, **flags)


def make_samples(height: int = 48, width: int = 64) -> list[Sample]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:height, :width]
    rect = (yy >= 5) & (yy < 20) & (xx >= 10) & (xx < 30)
    ellipse = ((yy - 30) / 9.0) ** 2 + ((xx - 45) / 12.0) ** 2 <= 1.0
    two_parts = ((yy >= 2) & (yy < 8) & (xx >= 40) & (xx < 50)) | ((yy >= 38) & (yy < 46) & (xx >= 4) & (xx < 12))
    samples = [
        Sample(index=0, image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
               instances=[_mask_instance("cat", rect, truncated=True),
                          _mask_instance("dog", ellipse, occluded=0.3, difficult=True)],
               label="cat"),
        Sample(index=1, image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
               instances=[_mask_instance("dog", two_parts),
                          Instance(class_name="bird", bbox_xyxy=(3.0, 4.0, 20.0, 31.0))],
               label="dog"),
        Sample(index=2, image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
               label="bird"),
    ]
    return samples


def write_output(out_dir: Path, samples: list[Sample]) -> list[dict]:
    """What the engine writes before the label formats: images/ and manifest.jsonl."""
    records = []
    for sample in samples:
        rel = f"images/{sample.index + 1:08d}.png"
        data = encode_image(sample.image, "png")
        atomic_write_bytes(out_dir / rel, data)
        records.append(record_from_sample(sample, {"image": rel},
                                          {rel: hashlib.sha256(data).hexdigest()}))
    (out_dir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return json.loads(json.dumps(records))


@pytest.fixture
def written(tmp_path):
    """(out_dir, records, samples) of a three-image dataset with masks, a box-only object,
    a two-part mask and an image without objects."""
    samples = make_samples()
    out = tmp_path / "out"
    records = write_output(out, samples)
    return out, records, samples


@pytest.fixture
def classes():
    return list(CLASSES)


@pytest.fixture(name="make_samples")
def make_samples_fixture():
    return make_samples


@pytest.fixture(name="write_output")
def write_output_fixture():
    return write_output
