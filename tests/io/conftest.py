"""A small written dataset (images + manifest records) that every writer test starts from,
and a local S3 server for runs whose --out is an s3:// URL."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from contextlib import contextmanager
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


@contextmanager
def moto_s3(bucket: str = "imgsynth-test"):
    """A local S3 (moto's server, in a thread) with one empty bucket; yields an s3fs
    filesystem on it. Spawned workers and Ray actors started after this reach it through
    the standard AWS environment variables."""
    import s3fs  # both in the dev extra
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets per process, not per server: start from none.
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset",
                                                  method="POST")).close()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        # fsspec caches filesystems per process: one made for another server must not be reused.
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir(bucket)
        try:
            yield fs
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def store_hashes(fs, root: str) -> dict[str, str]:
    """sha256 of every object under root (an fsspec path), keyed by relative path, like
    tests.conftest.tree_hashes for a folder."""
    fs.invalidate_cache()
    return {path[len(root) + 1:]: hashlib.sha256(fs.cat_file(path)).hexdigest()
            for path in sorted(fs.find(root))}
