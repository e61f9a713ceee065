"""Labels stay exact under repeated geometric augmentation (issue 16, item 19)."""

import numpy as np
import pytest

from imgsynth.augment.config import AugmentConfig
from imgsynth.core.masks import tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext


def rotate_by(angle, expand):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": [
        {"name": "imgsynth.Rotate", "limit": [angle, angle], "expand": expand, "p": 1}]})
    return config.build(BuildContext())


def scene(height, width, count=31, seed=0):
    """Discs, ellipses and rectangles of 3..25 px radius, each with its mask, all inside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] + 0.5
    instances = []
    for k in range(count):
        r = rng.uniform(3.0, 25.0)
        cx, cy = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
        squash = rng.uniform(0.6, 1.6)
        if k % 2:
            mask = (xx - cx) ** 2 + ((yy - cy) * squash) ** 2 < r * r
        else:
            mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r / squash)
        instances.append(Instance(f"object{k}", tight_bbox(mask), mask=mask))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Sample(index=0, image=image, instances=instances)


@pytest.mark.parametrize("height, width", [(240, 320), (241, 319), (200, 301)])
def test_three_expanded_rotation_round_trips_keep_every_mask_backed_box_within_1px(height, width):
    """rotate(+30) then rotate(-30), three times, with expand: the canvas grows, and the
    original frame sits at its centre on whole pixels. Cropped back to that frame, every
    object's box is within 1 px of where it started (1.5 px for 17 of 31 objects before:
    the expanded canvas was centred on half pixels) and its mask covers the same pixels."""
    start = scene(height, width)
    plus, minus = rotate_by(30.0, expand=True), rotate_by(-30.0, expand=True)
    current = start
    for _ in range(3):
        current = minus.apply(plus.apply(current, np.random.default_rng(0)), np.random.default_rng(0))
    grown_h, grown_w = current.image.shape[:2]
    top, left = (grown_h - height) / 2, (grown_w - width) / 2  # the canvas centre stays put
    assert [i.class_name for i in current.instances] == [i.class_name for i in start.instances]
    moved = [np.subtract(after.bbox_xyxy, before.bbox_xyxy) - (left, top, left, top)
             for before, after in zip(start.instances, current.instances, strict=True)]
    off = [(i.class_name, float(np.abs(d).max())) for i, d in zip(start.instances, moved)
           if np.abs(d).max() > 1.0]
    assert not off, f"{len(off)} of {len(moved)} boxes moved by more than 1 px: {off}"
    assert top.is_integer() and left.is_integer()
    top, left = int(top), int(left)
    for before, after in zip(start.instances, current.instances, strict=True):
        cropped = after.mask[top:top + height, left:left + width]
        iou = (cropped & before.mask).sum() / (cropped | before.mask).sum()
        assert iou > 0.8, (before.class_name, iou)
        assert after.bbox_xyxy == tight_bbox(after.mask)


def test_round_trips_without_expand_stay_within_1px():
    """The same round trips on a fixed canvas (objects near the centre, so none is cut)."""
    start = scene(240, 320)
    start.instances = [i for i in start.instances if all(
        np.hypot(x - 160, y - 120) < 118 for x in i.bbox_xyxy[::2] for y in i.bbox_xyxy[1::2])]
    assert len(start.instances) >= 8
    plus, minus = rotate_by(30.0, expand=False), rotate_by(-30.0, expand=False)
    current = start
    for _ in range(3):
        current = minus.apply(plus.apply(current, np.random.default_rng(0)), np.random.default_rng(0))
    assert current.image.shape == start.image.shape
    for before, after in zip(start.instances, current.instances, strict=True):
        assert np.abs(np.subtract(after.bbox_xyxy, before.bbox_xyxy)).max() <= 1.0
