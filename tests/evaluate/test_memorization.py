"""The copy checks: of a synthetic set against a real one (`imgsynth eval`), and of a trained
model against its own training set (`imgsynth train`'s memorization.json)."""

from __future__ import annotations

import numpy as np

from imgsynth.evaluate.memorization import (
    hamming_matrix,
    memorization_report,
    phash_image,
    training_memorization,
)


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


def test_a_model_that_returns_its_training_images_is_caught(digits):
    images, _ = digits
    train, heldout, fresh = images[:600], images[600:800], images[800:1000]
    copier = training_memorization(train[:100], train, heldout)
    assert copier["samples"] == 100 and copier["training_images"] == 600
    assert copier["sample_nn_min"] == 0.0 and copier["ratio"] == 0.0
    assert copier["near_copies"] == 100
    honest = training_memorization(fresh, train, heldout)  # new digits, as a good model makes
    assert 0.7 < honest["ratio"] < 1.4
    assert honest["near_copies"] <= 10
    assert honest["space"] == "pixels at 16px, RMS in [0, 1]"


def test_without_held_out_images_there_is_no_baseline(digits):
    images, _ = digits
    report = training_memorization(images[:10], images[10:50], images[:0])
    assert "ratio" not in report and "near_copies" not in report
    assert 0 < report["sample_nn_median"] <= 1
