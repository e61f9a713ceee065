"""Colour statistics, class balance and box histograms."""

from __future__ import annotations

import numpy as np

from imgsynth.evaluate.encode import encode_images
from imgsynth.evaluate.stats import box_stats, channel_stats, class_balance


def encode(images, extractor):
    return encode_images(((str(i), im) for i, im in enumerate(images)), extractor)


def test_a_red_cast_is_found_in_red_only(digits, builtin):
    images, _ = digits
    real, fake = encode(images[:200], builtin), encode(images[200:400], builtin)
    red = images[200:400].copy()
    red[..., 0] = np.clip(red[..., 0].astype(int) + 40, 0, 255)
    tinted = encode(red, builtin)
    plain = channel_stats(real.channel_moments, fake.channel_moments, real.histograms, fake.histograms)
    cast = channel_stats(real.channel_moments, tinted.channel_moments, real.histograms, tinted.histograms)
    assert plain["R"]["ks_image_mean"]["p_value"] > 0.01
    assert cast["R"]["ks_image_mean"]["p_value"] < 1e-6
    assert cast["G"]["ks_image_mean"] == plain["G"]["ks_image_mean"]
    assert cast["R"]["fake_pixel_mean"] > plain["R"]["fake_pixel_mean"] + 20
    assert tinted.gray.sum() < len(tinted) and real.gray.all()


def test_class_balance_reports_shares_and_missing_classes():
    balance = class_balance(["a"] * 6 + ["b"] * 4, ["a"] * 10 + ["c"] * 0)
    assert balance["classes"]["a"] == {"real": 6, "fake": 10, "real_share": 0.6, "fake_share": 1.0}
    assert balance["missing_in_fake"] == ["b"]
    assert abs(balance["total_variation_distance"] - 0.4) < 1e-12


def test_box_histograms_compare_size_aspect_and_position():
    real = [[("x", [10, 10, 30, 30], 100, 100)], [("x", [50, 50, 70, 70], 100, 100)]]
    fake = [[("x", [0, 0, 80, 20], 100, 100)], [("x", [0, 0, 80, 20], 100, 100)]]
    result = box_stats(real, fake)
    assert result["relative_size"]["real_median"] == 0.2
    assert abs(result["relative_size"]["fake_median"] - 0.4) < 1e-12
    assert result["log2_aspect"]["real_median"] == 0.0 and result["log2_aspect"]["fake_median"] == 2.0
    assert result["centre_x"]["real_median"] == 0.4 and result["centre_x"]["fake_median"] == 0.4
    assert result["log2_aspect"]["ks"]["statistic"] == 1.0
