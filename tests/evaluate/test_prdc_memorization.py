"""Precision/recall/density/coverage and the copy checks."""

from __future__ import annotations

import numpy as np

from imgsynth.evaluate.memorization import hamming_matrix, memorization_report, phash_image
from imgsynth.evaluate.prdc import prdc


def test_prdc_of_identical_sets_is_perfect_and_of_disjoint_sets_zero():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 8))
    same = prdc(real, real.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] >= 1.0
    far = prdc(real, real + 100.0)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0


def test_mode_collapse_keeps_precision_but_loses_recall():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 4))
    collapsed = np.repeat(real[:5], 10, axis=0) + rng.normal(0, 0.01, (50, 4))  # 5 modes
    result = prdc(real, collapsed)
    assert result["precision"] > 0.9
    assert result["recall"] < 0.1 and result["coverage"] < 0.2


def test_phash_survives_brightness_but_separates_different_digits(digits):
    images, labels = digits
    zero, one = images[labels == 0][0], images[labels == 1][0]
    brighter = np.clip(zero.astype(int) + 20, 0, 255).astype(np.uint8)
    hashes = np.array([phash_image(zero), phash_image(brighter), phash_image(one)], dtype=np.uint64)
    dist = hamming_matrix(hashes[:1], hashes)[0]
    assert dist[0] == 0 and dist[1] <= 4 and dist[2] > 10


def test_copied_images_are_found(digits, builtin):
    from imgsynth.evaluate.encode import encode_images

    images, _ = digits
    real_images, fresh = images[:300], images[300:400]
    copies = real_images[[3, 50, 77, 120, 299]]
    fake_images = np.concatenate([fresh, copies])
    real = encode_images(((f"r{i}", im) for i, im in enumerate(real_images)), builtin)
    fake = encode_images(((f"f{i}", im) for i, im in enumerate(fake_images)), builtin)
    report = memorization_report(real.features, fake.features, real.names, fake.names,
                                 real.phash, fake.phash, real.pixel_sha, fake.pixel_sha)
    assert report["exact_duplicates"] == 5
    assert {p["real"] for p in report["exact_duplicate_pairs"]} == {"r3", "r50", "r77", "r120", "r299"}
    flagged = {p["fake"] for p in report["closest_pairs"]}
    assert {"f100", "f101", "f102", "f103", "f104"} <= flagged
    assert report["n_closer_than_threshold"] < 20  # the fresh digits are mostly not flagged
    assert report["near_duplicates"] >= 5
