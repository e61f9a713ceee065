"""TSTR on scikit-learn's digits: real data posing as synthetic must score like real."""

from __future__ import annotations

import numpy as np

from imgsynth.evaluate.fid import features_from_arrays
from imgsynth.evaluate.utility import tstr


def test_tstr_with_a_real_split_as_synthetic_matches_train_on_real(digits, builtin):
    images, labels = digits
    features = features_from_arrays(images, builtin)
    order = np.random.default_rng(0).permutation(len(labels))
    real, synth = order[:900], order[900:1500]
    result = tstr(features[real], labels[real], features[synth], labels[synth], seed=0)
    assert result["train_real_test_real"] > 0.9
    assert abs(result["train_synth_test_real"] - result["train_real_test_real"]) < 0.05
    assert result["train_real_plus_synth_test_real"] >= result["train_real_test_real"] - 0.02
    assert 0.93 < result["tstr_over_trtr"] < 1.07


def test_tstr_with_shuffled_synthetic_labels_collapses(digits, builtin):
    images, labels = digits
    features = features_from_arrays(images[:600], builtin)
    shuffled = np.random.default_rng(1).permutation(labels[400:600])
    result = tstr(features[:400], labels[:400], features[400:600], shuffled, seed=0)
    assert result["train_synth_test_real"] < 0.3 < result["train_real_test_real"]
