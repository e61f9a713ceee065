"""Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each real (fake) sample gets a ball reaching its k-th nearest real (fake) neighbour.
- precision: share of fakes inside some real ball (fidelity)
- recall: share of reals inside some fake ball (diversity)
- density: how many real balls contain each fake, divided by k, averaged (can exceed 1)
- coverage: share of real balls that contain at least one fake
Sets larger than `max_samples` are subsampled with the given seed (distance matrices
grow with the square of the set size).
"""

from __future__ import annotations

import numpy as np

from imgsynth.core.errors import InputError


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def kth_neighbour_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row."""
    dist = pairwise_distances(features, features)
    # column 0 of the sorted row is the point itself (distance 0)
    return np.partition(dist, k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5, max_samples: int = 5000,
         seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if len(real) > max_samples:
        real = real[np.sort(rng.choice(len(real), max_samples, replace=False))]
    if len(fake) > max_samples:
        fake = fake[np.sort(rng.choice(len(fake), max_samples, replace=False))]
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise InputError("precision/recall need at least 2 images per set", fix="add images")
    real_radii = kth_neighbour_radii(real, k)
    fake_radii = kth_neighbour_radii(fake, k)
    real_fake = pairwise_distances(real, fake)  # (n_real, n_fake)
    inside_real_ball = real_fake < real_radii[:, None]
    return {
        "precision": float(inside_real_ball.any(axis=0).mean()),
        "recall": float((real_fake < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real_ball.sum(axis=0).mean() / k),
        "coverage": float((real_fake.min(axis=1) < real_radii).mean()),
        "k": int(k),
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
    }
