"""The z-buffer: masks are the visible pixels, boxes their tight boxes, fractions add up."""

import numpy as np

from imgsynth.compose.zbuffer import ZBuffer, paste_window
from imgsynth.core.masks import tight_bbox


def square(n: int) -> np.ndarray:
    return np.ones((n, n), bool)


def test_object_pasted_over_another_shrinks_its_mask_and_box():
    zb = ZBuffer(50, 60)
    zb.paste(square(20), 10, 10, "a")  # covers x 10..30, y 10..30
    zb.paste(square(20), 20, 10, "b")  # covers x 20..40 -> hides a's right half
    a, b = zb.instances()
    assert a.bbox_xyxy == (10.0, 10.0, 20.0, 30.0)
    assert a.area == 10 * 20
    assert a.bbox_xyxy == tight_bbox(a.mask)
    assert b.bbox_xyxy == (20.0, 10.0, 40.0, 30.0) and b.area == 400
    assert not (a.mask & b.mask).any()
    assert a.occluded_fraction == 0.5 and a.visible_fraction == 0.5


def test_fully_covered_object_has_no_pixels_left():
    zb = ZBuffer(40, 40)
    zb.paste(square(8), 10, 10, "small")
    zb.paste(square(20), 5, 5, "big")
    small, big = zb.instances()
    assert small.area == 0 and small.bbox_xyxy is None and small.visible_fraction == 0.0
    assert big.area == 400


def test_truncated_fraction_counts_pixels_outside_the_image():
    zb = ZBuffer(30, 30)
    zb.paste(square(10), -5, 0, "cut")
    (cut,) = zb.instances()
    assert cut.truncated_fraction == 0.5 and cut.bbox_xyxy == (0.0, 0.0, 5.0, 10.0)
    assert zb.paste(square(10), 40, 40, "away") is None  # nothing lands: no layer, no label


def test_distractors_occlude_but_are_never_instances():
    zb = ZBuffer(30, 30)
    zb.paste(square(10), 0, 0, "obj")
    zb.paste(square(10), 5, 0, None)
    (obj,) = zb.instances()
    assert obj.area == 50 and obj.bbox_xyxy == (0.0, 0.0, 5.0, 10.0)


def test_occlusion_after_predicts_the_paste():
    zb = ZBuffer(40, 40)
    zb.paste(square(10), 0, 0, "a")
    predicted = zb.occlusion_after(square(10), 5, 5)
    zb.paste(square(10), 5, 5, "b")
    assert predicted[0] == zb.instances()[0].occluded_fraction == 0.25


def test_paste_window_clips_both_sides():
    rows, cols, prow, pcol = paste_window(-3, 7, 10, 10, 12, 5)
    assert (rows, cols, prow, pcol) == (slice(7, 12), slice(0, 5), slice(0, 5), slice(3, 8))


def test_labels_keep_the_layers_that_show_enough_as_instances():
    zb = ZBuffer(40, 40)
    zb.paste(square(10), -5, 0, "cut")  # half outside the image
    zb.paste(square(10), 20, 20, "hidden")
    zb.paste(square(10), 21, 20, None)  # a distractor covering 90% of "hidden"
    instances, hidden = zb.labels(min_area=1, min_visible_fraction=0.2,
                                  attributes=lambda vis: {"layer": vis.layer.layer_id})
    assert hidden == 1
    (cut,) = instances
    assert (cut.class_name, cut.bbox_xyxy, cut.truncated, cut.visible_fraction, cut.occluded) == \
        ("cut", (0.0, 0.0, 5.0, 10.0), True, 0.5, 0.0)
    assert cut.mask.sum() == 50 and cut.attributes == {"layer": 1}
