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


def test_a_crop_outside_the_image_fails_as_unfused():
    """Crop without pad_if_needed past the image's edge: albumentations refuses it; the
    compiled chain used to fill the missing part with replicated edge pixels and go on."""
    chain = [{"name": "Crop", "x_min": 95, "y_min": 48, "x_max": 131, "y_max": 123, "p": 1}]
    sample = Sample(index=0, image=image(80, 120), instances=[Instance("b", (100.0, 50.0, 118.0, 70.0))])
    fused, unfused = both(chain, sample)
    assert isinstance(unfused, ValueError) and "crop" in str(unfused)
    assert type(fused) is type(unfused) and str(fused) == str(unfused)
