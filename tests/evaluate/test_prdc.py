"""Precision, recall, density and coverage."""

from __future__ import annotations

import numpy as np

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
