"""record_from_sample: the manifest record every writer reads."""

from __future__ import annotations

import json

import numpy as np

from imgsynth.core.masks import rle_decode
from imgsynth.core.sample import Instance, Sample
from imgsynth.io.writers.manifest import record_from_sample


def test_record_holds_files_labels_and_exact_masks():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    sample = Sample(
        index=4, image=np.zeros((10, 12, 3), dtype=np.uint8), label="cat", text="héllo",
        instances=[
            Instance("cat", (3.0, 2.0, 9.0, 5.0), mask=mask, occluded=0.123456),
            Instance("dog", (0.123456789, 1.0, 4.5, 3.25),
                     polygons=[np.array([[0.5, 1.0], [4.0, 1.0], [2.0, 3.0]])],
                     keypoints=np.array([[1.0, 2.0, 2.0]])),
        ],
        source_files=["data/a.png"], seed_keys=["0/source/4"],
        meta={"copy": np.int64(2), "scale": np.float32(0.5), "shape": (1, 2)})
    rec = record_from_sample(sample, {"image": "images/00000005.png", "mask": "masks/00000005.png"},
                             {"masks/00000005.png": "bb", "images/00000005.png": "aa"})
    assert json.loads(json.dumps(rec)) == rec  # plain JSON
    assert (rec["id"], rec["index"], rec["width"], rec["height"]) == (5, 4, 12, 10)
    assert rec["image"] == "images/00000005.png" and rec["mask"] == "masks/00000005.png"
    assert list(rec["sha256"]) == ["images/00000005.png", "masks/00000005.png"]
    assert rec["meta"] == {"copy": 2, "scale": 0.5, "shape": [1, 2]}
    cat, dog = rec["instances"]
    assert cat["area"] == 18 and np.array_equal(rle_decode(cat["segmentation"]), mask)
    assert cat["occluded"] == 0.1235 and cat["polygons"] is None
    assert dog["bbox_xyxy"] == [0.1235, 1.0, 4.5, 3.25] and dog["segmentation"] is None
    assert dog["area"] == round(4.3765 * 2.25, 4)
    assert dog["polygons"] == [[0.5, 1.0, 4.0, 1.0, 2.0, 3.0]]
    assert dog["keypoints"] == [[1.0, 2.0, 2.0]]
