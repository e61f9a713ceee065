"""Compiled chains against the unfused pipeline on unusual data: tiny and odd-sized images,
gray, four channels, float32, instances at the border or with nothing left. Each test
below is a minimal case a randomized comparison found; the last test is that comparison,
bounded and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from imgsynth.augment.config import AugmentConfig
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext


def stage(transforms, fuse=True, **kwargs):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": transforms, "fuse": fuse, **kwargs})
    return config.build(BuildContext())


def both(chain, sample, seed=0, **kwargs):
    """(fused, unfused): each the augmented Sample or the exception it raised."""
    out = []
    for fuse in (True, False):
        try:
            out.append(stage(chain, fuse=fuse, **kwargs).apply(sample, sample_rng(seed, "fuzz", sample.index)))
        except Exception as exc:  # noqa: BLE001 - compared below
            out.append(exc)
    return out


def image(height, width, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def boxes(sample):
    return np.array([i.bbox_xyxy for i in sample.instances]).reshape(-1, 4)


def test_a_crop_outside_the_image_fails_as_unfused():
    """Crop without pad_if_needed past the image's edge: albumentations refuses it; the
    compiled chain used to fill the missing part with replicated edge pixels and go on."""
    chain = [{"name": "Crop", "x_min": 95, "y_min": 48, "x_max": 131, "y_max": 123, "p": 1}]
    sample = Sample(index=0, image=image(80, 120), instances=[Instance("b", (100.0, 50.0, 118.0, 70.0))])
    fused, unfused = both(chain, sample)
    assert isinstance(unfused, ValueError) and "crop" in str(unfused)
    assert type(fused) is type(unfused) and str(fused) == str(unfused)


def test_perspective_fit_output_on_a_one_pixel_high_image():
    """Perspective's fitted output of a 1-pixel-high image can round to 0 rows; cv2 then
    keeps the input's size (an empty dsize), and so must the compiled warp (it raised
    'cannot reshape array of size 21 into shape (0,9,newaxis)')."""
    chain = [{"name": "Perspective", "scale": [0.1, 0.15], "fit_output": True, "keep_size": False, "p": 1}]
    sizes = set()
    for index in range(40):
        sample = Sample(index=index, image=image(1, 7), instances=[Instance("b", (1.0, 0.0, 4.0, 1.0))])
        fused, unfused = both(chain, sample)
        assert not isinstance(fused, Exception), fused
        assert fused.image.shape == unfused.image.shape
        assert np.allclose(boxes(fused), boxes(unfused), atol=1e-3)
        sizes.add(fused.image.shape[:2])
    assert (1, 7) in sizes  # the case of an empty fitted size was met


def test_a_warp_to_an_empty_image_fails_with_a_message_naming_the_transform():
    """RandomScale of a 3x2 image by 0.1..0.2 has no pixels left: the unfused chain fails in
    cv2.resize; the compiled one used to fail with a numpy reshape error."""
    chain = [{"name": "RandomScale", "scale_limit": [-0.9, -0.8], "p": 1}]
    fused, unfused = both(chain, Sample(index=0, image=image(3, 2)))
    assert isinstance(unfused, Exception)
    assert isinstance(fused, ValueError) and "RandomScale" in str(fused) and "3x2" in str(fused)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("shape", [(1, 5, 3), (5, 1, 3), (1, 1, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_to_gray_keeps_an_image_one_pixel_high_or_wide(shape, dtype, fuse):
    """albumentations' ToGray squeezes its gray image before stacking it three times: a
    1x5 RGB image came back as a 5x3 one-channel image (1x1: a flat array of 3)."""
    rgb = image(*shape) if dtype == np.uint8 else image(*shape).astype(dtype) / np.float32(255)
    out = stage([{"name": "ToGray", "method": "average", "p": 1}], fuse=fuse).apply(
        Sample(index=0, image=rgb), np.random.default_rng(0)).image
    assert out.shape == shape and out.dtype == dtype
    gray = rgb.astype(np.float64).mean(axis=2)
    assert np.abs(out[..., 0] - gray).max() <= (1 if dtype == np.uint8 else 1e-6)
    assert (out == out[..., :1]).all()


@pytest.mark.parametrize("fuse", [True, False])
def test_to_gray_before_a_flip_of_a_one_pixel_high_image(fuse):
    """In one albumentations Compose the flip after ToGray saw the squeezed 5x3 image; the
    stage still pickles (DataLoader workers) with ToGray keeping the image's size."""
    import pickle

    rgb = image(1, 5).astype(np.float32) / np.float32(255)
    augment = stage([{"name": "ToGray", "method": "average", "p": 1}, {"name": "HorizontalFlip", "p": 1}], fuse=fuse)
    outs = [a.apply(Sample(index=0, image=rgb), np.random.default_rng(0)).image
            for a in (augment, pickle.loads(pickle.dumps(augment)))]
    gray = rgb.mean(axis=2)[:, ::-1]
    for out in outs:
        assert out.shape == (1, 5, 3) and np.abs(out[..., 1] - gray).max() < 1e-6
