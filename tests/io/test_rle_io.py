"""imgsynth's RLE against pycocotools, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from imgsynth.core.masks import rle_decode, rle_encode


def _random_masks():
    rng = np.random.default_rng(3)
    yield np.zeros((5, 7), dtype=bool)
    yield np.ones((6, 4), dtype=bool)
    yield np.eye(9, 13, dtype=bool)
    for shape in [(1, 1), (2, 3), (31, 17), (64, 96), (120, 80)]:
        for density in (0.05, 0.5, 0.95):
            yield rng.random(shape) < density
    # large runs (multi-chunk counts) and a blob
    yy, xx = np.mgrid[:300, :400]
    yield (yy - 150) ** 2 + (xx - 200) ** 2 < 120 ** 2


@pytest.mark.parametrize("mask", list(_random_masks()), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_rle_encode_matches_pycocotools_and_decode_inverts_it(mask):
    from pycocotools import mask as coco_mask

    ours = rle_encode(mask)
    theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"].encode() == theirs["counts"]
    assert ours["size"] == list(theirs["size"])
    assert np.array_equal(rle_decode(ours), mask)
    assert np.array_equal(coco_mask.decode({"size": ours["size"], "counts": ours["counts"]}), mask)
