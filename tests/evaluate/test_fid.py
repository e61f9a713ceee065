"""FID / KID / IS: against a scipy reference, self-consistency, seeds, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from imgsynth.core.errors import InputError
from imgsynth.evaluate import fid


@pytest.fixture(scope="module")
def digit_features(digits, builtin):
    images, labels = digits
    return fid.features_from_arrays(images, builtin), labels


def test_fid_of_a_set_against_itself_is_zero(digit_features):
    features, _ = digit_features
    assert abs(fid.fid_from_features(features, features)) < 1e-3


def test_fid_matches_numpy_scipy_reference(digit_features):
    features, labels = digit_features
    real, fake = features[labels < 5], features[labels >= 5]
    value = fid.fid_from_features(real, fake)
    ref = fid.fid_reference_numpy(real.mean(0), np.cov(real, rowvar=False),
                                  fake.mean(0), np.cov(fake, rowvar=False))
    assert value > 10 * fid.fid_from_features(features[::2], features[1::2])
    assert abs(value - ref) / ref < 1e-4


def test_fid_from_arrays_orders_sets_by_similarity(digits):
    images, labels = digits
    real, other_half = images[::2], images[1::2]
    brighter = np.clip(other_half.astype(int) + 60, 0, 255).astype(np.uint8)
    same = fid.fid_from_arrays(real, other_half, "builtin")
    shifted = fid.fid_from_arrays(real, brighter, "builtin")
    assert 0 < same < shifted


def test_saved_then_loaded_stats_give_the_same_fid(tmp_path, digit_features):
    features, labels = digit_features
    real = fid.stats_from_features(features[labels < 5], "builtin-x", "clean")
    fake = fid.stats_from_features(features[labels >= 5], "builtin-x", "clean")
    fid.save_stats(tmp_path / "real.npz", real)
    loaded = fid.load_stats(tmp_path / "real.npz")
    assert (loaded.n, loaded.extractor_id, loaded.preset) == (real.n, "builtin-x", "clean")
    assert fid.fid_from_stats(loaded, fake) == fid.fid_from_stats(real, fake)


def test_kid_is_unbiased_for_sets_from_one_distribution(digit_features):
    features, labels = digit_features
    rng = np.random.default_rng(0)
    order = rng.permutation(len(features))
    half_a, half_b = features[order[:800]], features[order[800:1600]]
    kid_same, std_same = fid.kid_from_features(half_a, half_b, subsets=20, subset_size=400)
    kid_diff, _ = fid.kid_from_features(features[labels < 5], features[labels >= 5],
                                        subsets=20, subset_size=400)
    assert kid_diff > 0
    assert abs(kid_same) < 0.02 * kid_diff
    assert abs(kid_same) < 3 * std_same + 1e-4


def test_inception_score_repeats_with_a_seed_and_leaves_torch_rng_alone(digit_features):
    import torch

    features, _ = digit_features
    logits = features[:, :10] * 5.0
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = fid.inception_score_from_logits(logits, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    assert fid.inception_score_from_logits(logits, seed=7) == first
    assert fid.inception_score_from_logits(logits, seed=8) != first


def test_fewer_images_than_feature_dims_says_singular_and_suggests_kid(digit_features):
    features, _ = digit_features
    with pytest.raises(InputError) as info:
        fid.fid_from_features(features[:50], features[50:300])
    assert "singular" in str(info.value) and "KID" in str(info.value)


def test_stats_from_another_extractor_are_refused():
    rng = np.random.default_rng(0)
    a = fid.stats_from_features(rng.standard_normal((40, 4)), "inception-v3-compat-2048-x-paper", "paper")
    b = fid.stats_from_features(rng.standard_normal((40, 4)), "builtin-randconv", "paper")
    with pytest.raises(InputError, match="not comparable"):
        fid.fid_from_stats(a, b)


def test_mismatched_channels_are_named(digits):
    images, _ = digits
    with pytest.raises(InputError, match="mismatched channels: real images have 3, fake images 1"):
        fid.fid_from_arrays(images[:200], images[:200, :, :, 0], "builtin")


def test_float_images_are_refused_with_the_conversion():
    with pytest.raises(InputError, match="uint8"):
        fid.features_from_arrays(np.zeros((4, 8, 8, 3), np.float32), "builtin")
