"""Labels after augmentation: tight boxes, no drift, clipping/dropping, determinism."""

import numpy as np
import pytest

from imgsynth.augment.config import AugmentConfig
from imgsynth.core.boxes import cxcywh_norm_to_xyxy, xyxy_to_cxcywh_norm
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext


def stage(transforms, **kwargs):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": transforms, **kwargs})
    return config.build(BuildContext())


def disc_sample(h=60, w=80, channels=3):
    yy, xx = np.mgrid[:h, :w]
    mask = (xx - 50) ** 2 + ((yy - 25) * 1.6) ** 2 < 14 ** 2
    image = np.zeros((h, w, channels), np.uint8)
    image[mask, 0] = 220
    box_only = Instance("square", (5.0, 35.0, 25.0, 55.0))
    image[35:55, 5:25, -1] = 200  # its own channel, so it can be found after rotation
    return Sample(index=0, image=image, instances=[Instance("disc", tight_bbox(mask), mask=mask),
                                                    box_only])


@pytest.mark.parametrize("transform", [
    {"name": "imgsynth.Rotate", "limit": [20, 70], "expand": True, "p": 1},
    {"name": "imgsynth.Rotate", "limit": [20, 70], "expand": False, "border_mode": "replicate"},
    {"name": "Rotate", "limit": [20, 70], "p": 1},
    {"name": "Affine", "rotate": [20, 70], "scale": [0.8, 1.2], "p": 1},
])
def test_rotated_box_is_the_tight_box_of_the_rotated_mask(transform):
    augment = stage([transform])
    for seed in range(3):
        out = augment.apply(disc_sample(), np.random.default_rng(seed))
        disc = next(i for i in out.instances if i.class_name == "disc")
        assert disc.mask.shape == out.image.shape[:2] and disc.mask.any()
        assert disc.bbox_xyxy == tight_bbox(disc.mask)
        # The rotated pixels of the object are where its mask says.
        assert (out.image[disc.mask][:, 0] > 100).mean() > 0.9
        square = next(i for i in out.instances if i.class_name == "square")
        x1, y1, x2, y2 = square.bbox_xyxy
        # largest_box holds every pixel at least half covered by the rotated square.
        seen = tight_bbox(out.image[:, :, -1] > 100)
        assert x1 <= seen[0] + 0.5 and y1 <= seen[1] + 0.5
        assert x2 >= seen[2] - 0.5 and y2 >= seen[3] - 0.5


@pytest.mark.parametrize("transform", [
    {"name": "ElasticTransform", "alpha": 100, "sigma": 8, "p": 1},
    {"name": "GridDistortion", "distort_limit": 0.3, "p": 1},
    {"name": "OpticalDistortion", "distort_limit": 0.5, "p": 1},
    {"name": "PiecewiseAffine", "scale": [0.03, 0.05], "p": 1},
    {"name": "ThinPlateSpline", "scale_range": [0.2, 0.3], "p": 1},
])
def test_nonlinear_warps_move_box_only_and_polygon_objects_as_their_pixels(transform):
    """A warp bends edges, so a box's corners no longer bound the object (thin-plate spline
    moved them up to 52 px off). Box-only and polygon objects now follow the same warp as a
    mask of their pixels: their box equals that of the same object given as a mask, and the
    polygons come back around the warped pixels. Before, these transforms also lost label
    points (albumentations' 'mask' keypoint method) and every sample failed."""
    h, w = 96, 128
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[20:60, 30:80] = True
    box = (30.0, 20.0, 80.0, 60.0)
    square = np.array([[30.5, 20.5], [79.5, 20.5], [79.5, 59.5], [30.5, 59.5]])  # its pixel centres
    st = stage([transform])
    for i in range(4):
        sample = Sample(index=i, image=image, instances=[
            Instance("m", box, mask=mask), Instance("b", box), Instance("p", box, polygons=[square])])
        out = st.apply(sample, sample_rng(0, "w", i))
        by_mask, by_box, by_polygon = out.instances
        assert by_box.bbox_xyxy == by_mask.bbox_xyxy
        assert by_polygon.bbox_xyxy == by_mask.bbox_xyxy
        assert by_box.mask is None and by_polygon.mask is None and by_box.polygons is None
        points = np.concatenate(by_polygon.polygons)
        x1, y1, x2, y2 = by_mask.bbox_xyxy
        assert points[:, 0].min() == x1 + 0.5 and points[:, 0].max() == x2 - 0.5
        assert points[:, 1].min() == y1 + 0.5 and points[:, 1].max() == y2 - 0.5


def test_ellipse_method_is_tighter_than_largest_box():
    rotate = {"name": "imgsynth.Rotate", "limit": [45, 45], "p": 1}
    sample = Sample(index=0, image=np.zeros((60, 60, 3), np.uint8),
                    instances=[Instance("a", (20.0, 20.0, 40.0, 40.0))])
    big = stage([rotate]).apply(sample, np.random.default_rng(0)).instances[0].bbox_xyxy
    small = stage([rotate], box_method="ellipse").apply(sample, np.random.default_rng(0)).instances[0].bbox_xyxy
    assert big[2] - big[0] == pytest.approx(20 * np.sqrt(2), abs=1e-9)
    assert small[2] - small[0] == pytest.approx(20.0, abs=0.05)


def test_yolo_boxes_survive_100_flips_exactly():
    w, h = 640, 427
    yolo = [(0.123457, 0.654321, 0.1, 0.2), (0.5, 0.5, 0.333333, 0.25), (0.9, 0.05, 0.2, 0.1)]
    flip = stage([{"name": "imgsynth.HorizontalFlip", "p": 1}, {"name": "imgsynth.VerticalFlip", "p": 1}])
    current = yolo
    for i in range(100):
        sample = Sample(index=i, image=np.zeros((h, w, 3), np.uint8),
                        instances=[Instance("a", cxcywh_norm_to_xyxy(b, w, h)) for b in current])
        out = flip.apply(sample, np.random.default_rng(i))
        current = [xyxy_to_cxcywh_norm(inst.bbox_xyxy, w, h) for inst in out.instances]
    lines = [" ".join(f"{v:.6f}" for v in b) for b in current]
    assert lines == [" ".join(f"{v:.6f}" for v in b) for b in yolo]
    assert np.abs(np.array(current) - np.array(yolo)).max() < 1e-12


def test_gray_image_and_zero_instances():
    augment = stage([{"name": "imgsynth.Rotate", "limit": 30, "expand": True},
                     {"name": "RandomBrightnessContrast", "p": 1},
                     {"name": "HorizontalFlip", "p": 1},
                     {"name": "imgsynth.GaussianNoise", "sigma": 5}])
    gray = Sample(index=0, image=np.full((40, 50, 1), 90, np.uint8))
    out = augment.apply(gray, np.random.default_rng(0))
    assert out.image.ndim == 3 and out.image.shape[2] == 1 and out.instances == []
    labeled = disc_sample(channels=1)
    out = augment.apply(labeled, np.random.default_rng(1))
    assert out.image.shape[2] == 1 and len(out.instances) == 2


def test_boxes_outside_the_image_are_clipped_or_dropped_and_counted():
    sample = Sample(index=0, image=np.zeros((50, 50, 3), np.uint8), instances=[
        Instance("half_out", (-10.0, 10.0, 10.0, 20.0)),
        Instance("gone", (60.0, 60.0, 70.0, 70.0)),
        Instance("empty", (5.0, 5.0, 5.0, 9.0)),
        Instance("inside", (20.0, 20.0, 30.0, 30.0))])
    out = stage([{"name": "imgsynth.HorizontalFlip", "p": 1}]).apply(sample, np.random.default_rng(0))
    by_name = {i.class_name: i for i in out.instances}
    assert set(by_name) == {"half_out", "inside"}
    assert by_name["half_out"].bbox_xyxy == (40.0, 10.0, 50.0, 20.0)
    assert by_name["half_out"].truncated and by_name["half_out"].visible_fraction == pytest.approx(0.5)
    assert not by_name["inside"].truncated
    assert out.meta["augment_dropped_instances"] == 2
    strict = stage([{"name": "imgsynth.HorizontalFlip", "p": 1}], min_visibility=0.6)
    assert [i.class_name for i in strict.apply(sample, np.random.default_rng(0)).instances] == ["inside"]


def test_polygons_and_keypoints_move_with_the_image():
    poly = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 20.0], [10.0, 20.0]])
    keypoints = np.array([[12.0, 12.0, 2], [29.0, 19.0, 2]])
    sample = Sample(index=0, image=np.zeros((40, 60, 3), np.uint8), instances=[
        Instance("p", (10.0, 10.0, 30.0, 20.0), polygons=[poly], keypoints=keypoints)])
    out = stage([{"name": "HorizontalFlip", "p": 1}]).apply(sample, np.random.default_rng(0))
    inst = out.instances[0]
    assert np.allclose(inst.polygons[0][:, 0], 60 - poly[:, 0], atol=1e-4)
    assert inst.bbox_xyxy == pytest.approx((30.0, 10.0, 50.0, 20.0), abs=1e-4)
    assert np.allclose(inst.keypoints[:, 0], [48.0, 31.0], atol=1e-4)


@pytest.mark.parametrize("transform, mirrors", [
    ({"name": "imgsynth.HorizontalFlip", "p": 1}, True),
    ({"name": "HorizontalFlip", "p": 1}, True),  # albumentations: read from the moved box
    ({"name": "imgsynth.Transpose", "p": 1}, True),
    ({"name": "imgsynth.Rotate", "limit": [150, 150], "expand": True, "p": 1}, False),
])
def test_left_and_right_keypoints_trade_names_when_the_image_is_mirrored(transform, mirrors):
    """A face: nose, left eye (image left), right eye. After a mirror the point named
    'left eye' must again be the eye on the object's left, i.e. the other physical eye."""
    keypoints = np.array([[20.0, 20.0, 2], [14.0, 12.0, 2], [26.0, 12.0, 2]])
    sample = Sample(index=0, image=np.zeros((40, 60, 3), np.uint8), instances=[
        Instance("face", (10.0, 5.0, 30.0, 30.0), keypoints=keypoints)])
    plain = stage([transform]).apply(sample, np.random.default_rng(0)).instances[0].keypoints
    paired = stage([transform], keypoint_flip_pairs=[[1, 2]]).apply(
        sample, np.random.default_rng(0)).instances[0].keypoints
    assert np.allclose(paired[0], plain[0])  # the nose has no partner
    expected = plain[[0, 2, 1]] if mirrors else plain
    assert np.allclose(paired, expected, atol=1e-4)


def test_flip_pairs_naming_a_missing_keypoint_fail_the_sample():
    sample = Sample(index=0, image=np.zeros((40, 60, 3), np.uint8), instances=[
        Instance("face", (10.0, 5.0, 30.0, 30.0), keypoints=np.array([[20.0, 20.0, 2]]))])
    with pytest.raises(ValueError, match="keypoint 3"):
        stage([{"name": "imgsynth.HorizontalFlip", "p": 1}], keypoint_flip_pairs=[[0, 3]]).apply(
            sample, np.random.default_rng(0))


def test_same_seed_same_bytes_in_any_order_and_global_state_ignored():
    augment = stage([{"name": "Rotate", "limit": 40, "p": 0.8},
                     {"name": "RandomBrightnessContrast", "p": 0.8},
                     {"name": "GaussNoise", "p": 0.5},
                     {"name": "imgsynth.GaussianNoise", "sigma": [1, 9]},
                     {"name": "imgsynth.Rot90"}])
    def run(order):
        np.random.seed(int(order[0]))  # global state must not matter
        return {i: augment.apply(disc_sample(), sample_rng(7, "0.augment", i)) for i in order}
    a, b = run([0, 1, 2, 3, 4, 5]), run([5, 3, 1, 0, 4, 2])
    for i in range(6):
        assert np.array_equal(a[i].image, b[i].image)
        assert [x.bbox_xyxy for x in a[i].instances] == [x.bbox_xyxy for x in b[i].instances]
    assert not np.array_equal(a[0].image, a[1].image)


def test_passthrough_samples_are_left_alone():
    sample = disc_sample()
    sample.passthrough = True
    out = stage([{"name": "imgsynth.GaussianNoise", "sigma": 50}]).apply(sample, np.random.default_rng(0))
    assert out is sample


@pytest.mark.parametrize("transform", [
    {"name": "RandomSizedBBoxSafeCrop", "height": 40, "width": 40, "p": 1},
    {"name": "BBoxSafeRandomCrop", "p": 1},
])
def test_bbox_safe_crops_keep_every_object_whole(transform):
    """The crop is chosen from the instances' boxes (mask-tight and box-only alike), so
    both objects survive uncut, with boxes that match their pixels."""
    augment = stage([transform])
    for seed in range(12):
        out = augment.apply(disc_sample(), np.random.default_rng(seed))
        assert sorted(i.class_name for i in out.instances) == ["disc", "square"]
        disc = next(i for i in out.instances if i.class_name == "disc")
        assert disc.bbox_xyxy == tight_bbox(disc.mask)
        assert disc.visible_fraction > 0.9
        if transform["name"] == "BBoxSafeRandomCrop":  # no resize: the square stays 20 x 20
            square = next(i for i in out.instances if i.class_name == "square")
            x1, y1, x2, y2 = square.bbox_xyxy
            assert (x2 - x1, y2 - y1) == (20.0, 20.0)
            assert tight_bbox(out.image[:, :, -1] > 100) == square.bbox_xyxy


def test_at_least_one_bbox_crop_keeps_an_object():
    augment = stage([{"name": "AtLeastOneBBoxRandomCrop", "height": 24, "width": 24, "p": 1}],
                    min_visibility=0.0)
    for seed in range(12):
        out = augment.apply(disc_sample(), np.random.default_rng(seed))
        assert out.image.shape[:2] == (24, 24)
        assert out.instances, f"seed {seed}: the crop holds no object"
