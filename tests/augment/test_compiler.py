"""The compiled chain (fuse: true, the default) means what the unfused chain means: the same
draws from the same Generator, labels where the unfused chain puts them, images close to its
images and closer to one exact resample; single transforms give albumentations' own pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from imgsynth.augment import functional as F
from imgsynth.augment.config import AugmentConfig
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext

H, W = 240, 320


def stage(transforms, fuse=True, **kwargs):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": transforms, "fuse": fuse, **kwargs})
    return config.build(BuildContext())


def ellipses(seed: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        r = rng.uniform(35, 50)
        out.append((r, rng.uniform(r + 40, W - r - 40), rng.uniform(r + 30, H - r - 30), rng.uniform(0.8, 1.25)))
    return out


def scene(seed: int, box_only: bool = False) -> Sample:
    """A textured image with six ellipses (masks), away from the border; and a box-only object."""
    rng = np.random.default_rng(1000 + seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 2)
    yy, xx = np.mgrid[:H, :W] + 0.5
    instances = []
    for k, (r, cx, cy, squash) in enumerate(ellipses(seed)):
        mask = (xx - cx) ** 2 + ((yy - cy) * squash) ** 2 < r * r
        instances.append(Instance(f"o{k}", tight_bbox(mask), mask=mask))
    if box_only:
        instances.append(Instance("box", (100.0, 80.0, 180.0, 140.0)))
    return Sample(index=seed, image=image, instances=instances)


DETECTION = [
    {"name": "Affine", "scale": [0.8, 1.2], "translate_percent": [-0.05, 0.05], "rotate": [-10, 10],
     "shear": [-2, 2], "p": 1},
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "HueSaturationValue", "p": 1},
    {"name": "Perspective", "scale": [0.03, 0.06], "p": 1},
]
CHAINS = {
    "detection": DETECTION,
    "crop then rotate": [{"name": "RandomCrop", "height": 200, "width": 260, "p": 1},
                         {"name": "Rotate", "limit": [10, 20], "p": 1}],
    "imgsynth and albumentations": [{"name": "imgsynth.Rotate", "limit": 15, "expand": True},
                                    {"name": "imgsynth.HorizontalFlip"},
                                    {"name": "Affine", "rotate": [-10, 10], "scale": [0.9, 1.1], "p": 1}],
    "three warps": [{"name": "Affine", "rotate": [20, 20], "scale": [0.9, 0.9], "p": 1},
                    {"name": "Affine", "rotate": [-10, -10], "scale": [1.1, 1.1], "p": 1},
                    {"name": "Perspective", "scale": [0.03, 0.05], "p": 1}],
}


@pytest.mark.parametrize("name", CHAINS)
def test_labels_land_where_the_unfused_chain_puts_them(name):
    fused, unfused = stage(CHAINS[name]), stage(CHAINS[name], fuse=False)
    ious, offsets, pixels = [], [], []
    for seed in range(6):
        a = fused.apply(scene(seed, box_only=True), sample_rng(1, "x", seed))
        b = unfused.apply(scene(seed, box_only=True), sample_rng(1, "x", seed))
        assert a.image.shape == b.image.shape
        assert [i.class_name for i in a.instances] == [i.class_name for i in b.instances]
        for x, y in zip(a.instances, b.instances, strict=True):
            offsets.append(np.abs(np.subtract(x.bbox_xyxy, y.bbox_xyxy)).max())
            if x.mask is not None:
                assert x.bbox_xyxy == tight_bbox(x.mask)
                ious.append((x.mask & y.mask).sum() / (x.mask | y.mask).sum())
        pixels.append(np.abs(a.image.astype(int) - b.image.astype(int)).mean())
    assert max(offsets) <= 1.0
    assert np.mean(ious) >= 0.98 and min(ious) >= 0.96
    assert np.mean(pixels) < 2.0  # levels: one resample instead of several


def coordinates(height: int, width: int) -> np.ndarray:
    """x, y and 1 per pixel: warped like an image, it tells each output pixel's source."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    return np.dstack([xx, yy, np.ones_like(xx)])


def pattern(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 127.5 + 60 * np.sin(2 * np.pi * (0.11 * x + 0.07 * y)) + 40 * np.sin(2 * np.pi * (0.17 * y - 0.05 * x))


def test_fused_pixels_are_one_resample_closer_to_the_exact_warp():
    """An analytic pattern through three warps: one resample stays closer to the pattern
    evaluated at each output pixel's exact source position than three do."""
    chain = CHAINS["three warps"]
    yy, xx = np.mgrid[:H, :W].astype(np.float64)
    image = np.repeat(np.clip(np.rint(pattern(xx, yy)), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    errors = {}
    for fuse in (True, False):
        augment = stage(chain, fuse=fuse)
        squared = []
        for seed in range(3):
            out = augment.apply(Sample(index=seed, image=image), sample_rng(2, "p", seed)).image
            where = augment.apply(Sample(index=seed, image=coordinates(H, W)), sample_rng(2, "p", seed)).image
            inside = (where[:, :, 2] > 0.999) & (where[:, :, 0] > 2) & (where[:, :, 1] > 2) \
                & (where[:, :, 0] < W - 3) & (where[:, :, 1] < H - 3)
            exact = pattern(where[:, :, 0].astype(np.float64), where[:, :, 1].astype(np.float64))
            squared.append(((out[:, :, 0] - exact)[inside] ** 2).mean())
        errors[fuse] = float(np.mean(squared))
    assert errors[True] < 0.6 * errors[False], errors


def test_fused_masks_are_closer_to_the_exact_masks():
    """Against the ellipses rasterized exactly at every output pixel's source position,
    the fused masks (one nearest-neighbour resample) agree at least as well as the unfused
    ones, and to 0.98 IoU. Also through a crop and resize, where albumentations' masks move
    by cv2.resize's uncentred nearest neighbour (up to half a source pixel)."""
    for chain in (CHAINS["three warps"], [{"name": "RandomResizedCrop", "size": [200, 200], "scale": [0.5, 1.0],
                                           "p": 1}, {"name": "HorizontalFlip", "p": 0.5}]):
        ious = {True: [], False: []}
        for fuse in (True, False):
            augment = stage(chain, fuse=fuse)
            for seed in range(4):
                out = augment.apply(scene(seed), sample_rng(3, "m", seed))
                where = augment.apply(Sample(index=seed, image=coordinates(H, W)), sample_rng(3, "m", seed)).image
                sx, sy = where[:, :, 0] + 0.5, where[:, :, 1] + 0.5
                for inst, (r, cx, cy, squash) in zip(out.instances, ellipses(seed)):
                    if inst.truncated:
                        continue
                    exact = ((sx - cx) ** 2 + ((sy - cy) * squash) ** 2 < r * r) & (where[:, :, 2] > 0.999)
                    ious[fuse].append((inst.mask & exact).sum() / (inst.mask | exact).sum())
        assert np.mean(ious[True]) >= 0.98 and np.mean(ious[True]) >= np.mean(ious[False]) - 1e-3, ious


def test_draws_are_those_of_the_unfused_chain_across_barriers():
    """Barriers (blur, noise, elastic, imgsynth noise) and skipped transforms in between:
    were a single draw out of step, the geometry after it would differ by far more than a
    pixel for some of the 16 samples."""
    chain = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "Affine", "rotate": [-30, 30], "p": 0.5},
             {"name": "GaussianBlur", "p": 0.5}, {"name": "RandomBrightnessContrast", "p": 0.5},
             {"name": "Perspective", "scale": [0.03, 0.08], "p": 0.5},
             {"name": "imgsynth.GaussianNoise", "sigma": 4, "p": 0.5},
             {"name": "imgsynth.Rotate", "limit": 30, "p": 0.5}, {"name": "ColorJitter", "p": 0.5},
             {"name": "ElasticTransform", "alpha": 20, "sigma": 8, "p": 0.3},
             {"name": "ShiftScaleRotate", "p": 0.5}, {"name": "imgsynth.Rot90", "p": 0.5}]
    fused, unfused = stage(chain), stage(chain, fuse=False)
    for seed in range(16):
        a = fused.apply(scene(seed, box_only=True), sample_rng(4, "d", seed))
        b = unfused.apply(scene(seed, box_only=True), sample_rng(4, "d", seed))
        assert a.image.shape == b.image.shape
        boxes_a = {i.class_name: i.bbox_xyxy for i in a.instances}
        boxes_b = {i.class_name: i.bbox_xyxy for i in b.instances}
        common = set(boxes_a) & set(boxes_b)
        assert len(common) >= len(boxes_b) - 1
        assert max(np.abs(np.subtract(boxes_a[k], boxes_b[k])).max() for k in common) <= 2.0, seed


GEOMETRY = [
    {"name": "HorizontalFlip", "p": 1}, {"name": "VerticalFlip", "p": 1}, {"name": "Transpose", "p": 1},
    {"name": "RandomRotate90", "p": 1}, {"name": "D4", "p": 1}, {"name": "SquareSymmetry", "p": 1},
    {"name": "Affine", "scale": [0.7, 1.3], "rotate": [-30, 30], "shear": [-8, 8], "translate_px": [-9, 9], "p": 1},
    {"name": "Affine", "rotate": [-30, 30], "fit_output": True, "p": 1},
    {"name": "ShiftScaleRotate", "p": 1}, {"name": "SafeRotate", "p": 1},
    {"name": "Rotate", "limit": 40, "p": 1}, {"name": "Rotate", "limit": 40, "crop_border": True, "p": 1},
    {"name": "Perspective", "p": 1}, {"name": "Perspective", "fit_output": True, "keep_size": False, "p": 1},
    {"name": "RandomCrop", "height": 100, "width": 150, "p": 1},
    {"name": "RandomCrop", "height": 300, "width": 300, "pad_if_needed": True, "border_mode": "constant", "p": 1},
    {"name": "CenterCrop", "height": 101, "width": 99, "p": 1},
    {"name": "Crop", "x_min": 10, "y_min": 20, "x_max": 200, "y_max": 150, "p": 1},
    {"name": "RandomCropFromBorders", "p": 1},
    {"name": "Pad", "padding": [5, 10, 15, 20], "p": 1},
    {"name": "PadIfNeeded", "min_height": 300, "min_width": 333, "border_mode": "constant", "fill": 7, "p": 1},
    {"name": "imgsynth.Rotate", "limit": 40, "expand": True, "border_mode": "reflect", "p": 1},
    {"name": "imgsynth.Rot90", "p": 1}, {"name": "imgsynth.Transpose", "p": 1},
]
RESIZES = [
    {"name": "RandomResizedCrop", "size": [150, 170], "p": 1}, {"name": "RandomSizedCrop",
                                                                 "min_max_height": [80, 200], "size": [120, 100], "p": 1},
    {"name": "Resize", "height": 333, "width": 201, "p": 1}, {"name": "RandomScale", "p": 1},
    {"name": "LongestMaxSize", "max_size": 200, "p": 1}, {"name": "SmallestMaxSize", "max_size": 300, "p": 1},
]


@pytest.mark.parametrize("transform", GEOMETRY, ids=lambda t: t["name"])
def test_one_geometric_transform_gives_its_own_pixels_and_masks(transform):
    """A chain of one: the same matrix, the same cv2 call as albumentations (or imgsynth)."""
    fused, unfused = stage([transform]), stage([transform], fuse=False)
    for seed in range(3):
        a = fused.apply(scene(seed), sample_rng(5, "g", seed))
        b = unfused.apply(scene(seed), sample_rng(5, "g", seed))
        assert np.array_equal(a.image, b.image)
        assert [i.bbox_xyxy for i in a.instances] == [i.bbox_xyxy for i in b.instances]
        assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.instances, b.instances))


@pytest.mark.parametrize("transform", RESIZES, ids=lambda t: t["name"])
def test_one_resize_gives_its_own_pixels_and_boxes_within_a_pixel(transform):
    """cv2.resize of the crop, as albumentations; masks by centred nearest neighbour (cv2.resize's
    nearest is not centred), so boxes may differ by a pixel."""
    fused, unfused = stage([transform]), stage([transform], fuse=False)
    for seed in range(3):
        a = fused.apply(scene(seed), sample_rng(6, "r", seed))
        b = unfused.apply(scene(seed), sample_rng(6, "r", seed))
        assert np.array_equal(a.image, b.image)
        for x, y in zip(a.instances, b.instances, strict=True):
            assert np.abs(np.subtract(x.bbox_xyxy, y.bbox_xyxy)).max() <= 1.0


COLOUR = [
    {"name": "RandomBrightnessContrast", "p": 1}, {"name": "RandomGamma", "p": 1}, {"name": "InvertImg", "p": 1},
    {"name": "Posterize", "p": 1}, {"name": "Solarize", "p": 1}, {"name": "RandomToneCurve", "p": 1},
    {"name": "RandomToneCurve", "per_channel": True, "p": 1},
    {"name": "HueSaturationValue", "p": 1}, {"name": "ChannelShuffle", "p": 1}, {"name": "Normalize"},
    {"name": "ColorJitter", "saturation": 0, "hue": 0, "p": 1},
    {"name": "RGBShift", "p": 1}, {"name": "ChannelDropout", "p": 1},
    {"name": "ChannelDropout", "channel_drop_range": [1, 2], "fill": 200, "p": 1},
    {"name": "PlanckianJitter", "p": 1}, {"name": "PlanckianJitter", "mode": "cied", "p": 1},
    {"name": "ToGray", "p": 1}, {"name": "ToGray", "method": "max", "p": 1}, {"name": "ToSepia", "p": 1},
]


@pytest.mark.parametrize("transform", COLOUR, ids=lambda t: t["name"])
def test_one_colour_transform_gives_its_own_pixels(transform):
    """Its table is what it computes per pixel: the same bytes (floats for Normalize)."""
    fused, unfused = stage([transform]), stage([transform], fuse=False)
    for seed in range(3):
        a = fused.apply(scene(seed), sample_rng(7, "c", seed)).image
        b = unfused.apply(scene(seed), sample_rng(7, "c", seed)).image
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("shape", [(8, 8, 3), (20, 30, 1), (40, 40, 4), (1, 1, 3), (60, 60, 3)])
def test_normalize_of_small_images_through_its_float_table_gives_albumentations_floats(shape):
    """Small images go through Normalize's float table (one cv2.LUT call), larger ones
    through the float conversion: the same float32 values as albumentations either way."""
    rgb = shape[2] == 3
    transform = {"name": "Normalize", "mean": [0.485, 0.456, 0.406] if rgb else 0.45,
                 "std": [0.229, 0.224, 0.225] if rgb else 0.226}
    fused, unfused = stage([transform]), stage([transform], fuse=False)
    for seed in range(3):
        sample = Sample(index=seed, image=np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
        a = fused.apply(sample, sample_rng(7, "n", seed)).image
        b = unfused.apply(sample, sample_rng(7, "n", seed)).image
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == shape
        assert np.array_equal(a, b)


def test_colour_jitter_and_to_float_are_within_a_few_levels():
    """ColorJitter's saturation is one channel mix (albumentations rounds the gray image
    first), its contrast takes the gray mean from channel means, and its hue turns OpenCV's
    256-step hue (albumentations: the 180-step one): a few levels apart on few pixels.
    ToFloat multiplies by 1/255 where albumentations divides."""
    for transform, level, mean in ([{"name": "ColorJitter", "p": 1}, 3.0, 0.6], [{"name": "ToFloat"}, 1e-6, 1e-7]):
        fused, unfused = stage([transform]), stage([transform], fuse=False)
        for seed in range(4):
            a = fused.apply(scene(seed), sample_rng(8, "j", seed)).image.astype(float)
            b = unfused.apply(scene(seed), sample_rng(8, "j", seed)).image.astype(float)
            difference = np.abs(a - b)
            assert np.quantile(difference, 0.999) <= level and difference.mean() <= mean


def test_colour_jitter_hue_is_closer_to_torchvisions_hue():
    """torchvision's hue (float HSV) is the reference ColorJitter is named after: the
    256-step hue the compiled chain turns is twice as close to it as albumentations' 180-step."""
    import torch
    from albumentations.augmentations.pixel.functional import adjust_hue_torchvision
    from torchvision.transforms.v2.functional import adjust_hue

    from imgsynth.augment.compiler import _color_jitter_ops, apply_colour

    image = scene(0).image
    for factor in (-0.09, -0.03, 0.05, 0.1):
        exact = adjust_hue(torch.from_numpy(image).permute(2, 0, 1).float() / 255, factor)
        exact = exact.permute(1, 2, 0).numpy() * 255
        ours = apply_colour(image, _color_jitter_ops(None, {"order": [3], "hue": factor}, 3))
        theirs = adjust_hue_torchvision(image.copy(), factor)
        assert np.abs(ours - exact).mean() < 0.7 * np.abs(theirs - exact).mean()


def test_tables_match_albucore():
    """The brightness/contrast tables are written out (faster than albucore's call on a
    ramp); they must stay albucore's."""
    from albucore import multiply, multiply_add

    from imgsynth.augment.compiler import ContrastLut, _brightness_contrast_ops, _color_jitter_ops

    ramp = F.ramp_image(3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        alpha, beta, factor, mean = rng.uniform(0, 2), rng.uniform(-100, 100), rng.uniform(0, 2), rng.uniform(0, 255)
        ours = _brightness_contrast_ops(None, {"alpha": alpha, "beta": beta}, 3)[0].tables[0]
        assert np.array_equal(ours, multiply_add(ramp, alpha, beta)[0, :, 0])
        ours = _color_jitter_ops(None, {"order": [0], "brightness": factor}, 3)[0].tables[0]
        assert np.array_equal(ours, multiply(ramp, factor)[0, :, 0])
        ours = ContrastLut(factor).tables(mean)[0]
        assert np.array_equal(ours, multiply_add(ramp, factor, mean * (1 - factor))[0, :, 0])


def test_crop_then_rotate_shows_border_where_the_unfused_chain_does():
    """After a crop, a rotation brings in border, not the pixels the crop cut away; masks
    are empty there. One warp from the original would otherwise show the cut-away pixels."""
    chain = [{"name": "Crop", "x_min": 60, "y_min": 40, "x_max": 260, "y_max": 200, "p": 1},
             {"name": "Rotate", "limit": [30, 30], "p": 1}]
    image = np.full((H, W, 3), 200, np.uint8)
    full = np.ones((H, W), bool)
    sample = Sample(index=0, image=image, instances=[Instance("all", (0.0, 0.0, W, H), mask=full)])
    a = stage(chain).apply(sample, np.random.default_rng(0))
    b = stage(chain, fuse=False).apply(sample, np.random.default_rng(0))
    border_a, border_b = a.image[:, :, 0] < 100, b.image[:, :, 0] < 100
    assert border_b.sum() > 2000
    assert (border_a == border_b).mean() > 0.99
    assert (a.instances[0].mask == b.instances[0].mask).mean() > 0.99


def test_masks_beyond_eight_move_exactly():
    """Masks travel eight to a byte through one nearest-neighbour warp per byte."""
    rng = np.random.default_rng(0)
    masks = (rng.random((21, 60, 80)) < 0.3).astype(np.uint8)
    matrix = F.as_3x3(np.array([[0.9, 0.2, 5.0], [-0.1, 1.1, -3.0]]))
    moved = F.warp_masks(masks, matrix, 70, 90)
    for k in range(21):
        expected = cv2.warpAffine(masks[k], matrix[:2], (90, 70), flags=cv2.INTER_NEAREST,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        assert np.array_equal(moved[k], expected)


def test_gray_and_float_images_fuse_what_applies_to_them():
    """HSV needs three channels and tables need uint8: those transforms then run as
    albumentations runs them (a barrier), the warps still fuse."""
    chain = [{"name": "Affine", "rotate": [-20, 20], "p": 1}, {"name": "HueSaturationValue", "p": 1},
             {"name": "ColorJitter", "p": 1}, {"name": "HorizontalFlip", "p": 1}]
    gray = Sample(index=0, image=scene(0).image[:, :, :1].copy())
    out = stage(chain).apply(gray, np.random.default_rng(0))
    assert out.image.shape == (H, W, 1) and out.image.dtype == np.uint8
    floats = Sample(index=0, image=scene(0).image.astype(np.float32) / 255)
    a = stage(chain).apply(floats, np.random.default_rng(1)).image
    b = stage(chain, fuse=False).apply(floats, np.random.default_rng(1)).image
    assert a.dtype == np.float32 and np.abs(a - b).mean() < 0.01


def test_fuse_false_in_a_recipe_runs_the_unfused_pipeline():
    from imgsynth.augment.compiler import FusedChain
    from imgsynth.augment.pipeline import AlbumentationsStep

    assert isinstance(stage([{"name": "Rotate"}]).steps[0], FusedChain)
    assert isinstance(stage([{"name": "Rotate"}], fuse=False).steps[0], AlbumentationsStep)


NOISE_CHAINS = [
    [{"name": "GaussNoise", "p": 1}],
    [{"name": "GaussNoise", "std_range": [0.05, 0.3], "mean_range": [-0.1, 0.1], "p": 1}],
    [{"name": "HorizontalFlip", "p": 0.5}, {"name": "GaussNoise", "p": 0.7},
     {"name": "RandomBrightnessContrast", "p": 1}],
    [{"name": "GaussNoise", "per_channel": False, "p": 1}],  # albumentations' own path
]


@pytest.mark.parametrize("chain", NOISE_CHAINS, ids=["default", "mean-std", "between", "shared"])
@pytest.mark.parametrize("shape", [(H, W, 3), (37, 1001, 3), (50, 40, 1)], ids=["rgb", "wide", "gray"])
def test_gauss_noise_in_bands_gives_albumentations_bytes(chain, shape):
    """GaussNoise runs band by band in a fused chain (no full-image float temporaries) and
    still gives the bytes of albumentations' own code: the same draws and noise stream."""
    fused, unfused = stage(chain), stage(chain, fuse=False)
    rng = np.random.default_rng(1)
    for seed in range(4):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        a = fused.apply(Sample(index=seed, image=image), sample_rng(8, "n", seed)).image
        b = unfused.apply(Sample(index=seed, image=image), sample_rng(8, "n", seed)).image
        assert a.shape == b.shape and np.array_equal(a, b)
        assert not np.array_equal(a, image) or chain[0].get("p") == 0.5


def test_a_per_pixel_transform_between_warps_keeps_one_resample():
    """ToGray between two rotations does not split them: the image is resampled once (as
    sharp as one rotation of the gray image by the summed angle), labels as unfused."""
    chain = [{"name": "Rotate", "limit": [10, 10], "p": 1}, {"name": "ToGray", "p": 1},
             {"name": "Rotate", "limit": [-10, -10], "p": 1}]
    fused, unfused = stage(chain), stage(chain, fuse=False)
    sample = scene(0)
    a = fused.apply(sample, sample_rng(9, "g", 0))
    b = unfused.apply(sample, sample_rng(9, "g", 0))
    gray = cv2.cvtColor(sample.image, cv2.COLOR_RGB2GRAY)
    inner = (slice(40, H - 40), slice(40, W - 40))  # away from the rotated corners
    assert np.array_equal(a.image[..., 0], a.image[..., 1])
    # +10 then -10 degrees is the identity: one resample gives the gray image back exactly
    assert np.array_equal(a.image[..., 0][inner], gray[inner])
    assert not np.array_equal(b.image[..., 0][inner], gray[inner])  # two resamples blur
    for x, y in zip(a.instances, b.instances, strict=True):
        assert np.abs(np.subtract(x.bbox_xyxy, y.bbox_xyxy)).max() <= 1.0


@pytest.mark.parametrize("transform", [{"name": "imgsynth.Transpose", "p": 1}, {"name": "imgsynth.Rot90", "p": 1},
                                       {"name": "Transpose", "p": 1},
                                       {"name": "RandomRotate90", "p": 1}], ids=lambda t: t["name"])
def test_quarter_turns_of_images_with_five_channels(transform):
    """A 5-channel (multispectral) image turned or transposed: OpenCV's transpose has no kernel
    for 5-byte or 20-byte pixels (it raised an assertion); the turn is the unfused chain's,
    channel for channel."""
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (7, 11, 5), dtype=np.uint8), rng.random((7, 11, 5), dtype=np.float32)):
        for seed in range(4):
            a = stage([transform]).apply(Sample(index=seed, image=image), sample_rng(3, "t", seed)).image
            b = stage([transform], fuse=False).apply(Sample(index=seed, image=image), sample_rng(3, "t", seed)).image
            assert a.shape == b.shape and np.array_equal(a, b)
