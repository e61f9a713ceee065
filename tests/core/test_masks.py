"""A mask's box and area: the labels every writer reads from it."""

import numpy as np
import pytest

from imgsynth.core.masks import mask_area, tight_bbox


def _box_by_rows_and_columns(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def test_box_and_area_of_any_layout_and_dtype():
    """Bool and 0/255 masks, strided and transposed views, sparse and empty ones: the box
    is the tight one (exclusive right/bottom), the area the count of nonzero pixels."""
    rng = np.random.default_rng(0)
    for k in range(600):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        mask = rng.random((h, w)) < rng.choice([0.0, 0.002, 0.05, 0.5])
        views = [mask, mask.T, mask[::2, 1::3]]
        for view in views:
            for m in (view, view.astype(np.uint8) * 255, view.astype(np.float32)):
                assert tight_bbox(m) == _box_by_rows_and_columns(m), k
                assert mask_area(m) == int(np.count_nonzero(m)), k


def test_box_of_a_single_pixel_and_of_nothing():
    mask = np.zeros((5, 7), bool)
    assert tight_bbox(mask) is None and mask_area(mask) == 0
    mask[4, 6] = True
    assert tight_bbox(mask) == (6.0, 4.0, 7.0, 5.0)
    assert tight_bbox(np.zeros((0, 3), bool)) is None


@pytest.mark.parametrize("shape", [(480, 640)])
def test_full_mask(shape):
    mask = np.ones(shape, bool)
    assert tight_bbox(mask) == (0.0, 0.0, float(shape[1]), float(shape[0]))
    assert mask_area(mask) == shape[0] * shape[1]
