"""Does the synthetic set copy the real one?

- Nearest-neighbour test in feature space: a synthetic image is flagged when its nearest
  real image is closer than `threshold`. By default the threshold is the `quantile`
  (default 1%) of real-to-real nearest-neighbour distances: a flagged image sits closer
  to a real image than 99% of real images sit to their own nearest other real image.
- Exact duplicates: identical decoded pixels. Near duplicates: 64-bit DCT perceptual
  hashes (pHash) within `max_hamming` bits.
- A generative model against its own training set (`imgsynth train` runs it at the end):
  nearest-neighbour distances in pixels, against those of held-out real images.
"""

from __future__ import annotations

import math

import numpy as np


def phash_image(image: np.ndarray) -> int:
    """64-bit pHash: 32x32 gray, 2-D DCT, low 8x8 frequencies above their median."""
    import cv2
    from scipy.fft import dctn

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
    low = dctn(small, type=2, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term says brightness, not structure
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bit distances between uint64 hashes (byte popcount table)."""
    x = np.bitwise_xor(a.astype(np.uint64)[:, None], b.astype(np.uint64)[None, :])
    return _POPCOUNT[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.int64)


def nearest_distances(query: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False,
                      chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance and index of each query row's nearest reference row, in chunks
    so 50k x 50k sets never build the full matrix."""
    ref_sq = (reference ** 2).sum(1)
    dist = np.empty(len(query))
    index = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), chunk):
        q = query[start:start + chunk]
        d2 = (q ** 2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * q @ reference.T
        if exclude_self:
            rows = np.arange(len(q))
            d2[rows, start + rows] = np.inf
        index[start:start + len(q)] = d2.argmin(1)
        dist[start:start + len(q)] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return dist, index


def memorization_report(real_features: np.ndarray, fake_features: np.ndarray,
                        real_names: list[str], fake_names: list[str],
                        real_phash: np.ndarray, fake_phash: np.ndarray,
                        real_sha: np.ndarray, fake_sha: np.ndarray, *,
                        threshold: float | None = None, quantile: float = 0.01,
                        max_hamming: int = 4, max_listed: int = 20) -> dict:
    fake_nn, fake_nn_index = nearest_distances(fake_features, real_features)
    if threshold is None:
        real_nn, _ = nearest_distances(real_features, real_features, exclude_self=True)
        threshold = float(np.quantile(real_nn, quantile))
        rule = f"{quantile:g} quantile of real-to-real nearest-neighbour distances"
    else:
        rule = "given by the user"
    flagged = np.flatnonzero(fake_nn < threshold)
    closest = flagged[np.argsort(fake_nn[flagged])][:max_listed]

    real_by_sha = {sha: i for i, sha in enumerate(real_sha)}
    exact = [(i, real_by_sha[sha]) for i, sha in enumerate(fake_sha) if sha in real_by_sha]
    near = []
    for start in range(0, len(fake_phash), 256):
        dist = hamming_matrix(fake_phash[start:start + 256], real_phash)
        best = dist.argmin(1)
        for row in np.flatnonzero(dist[np.arange(len(best)), best] <= max_hamming):
            near.append((start + int(row), int(best[row]), int(dist[row, best[row]])))
    n_fake = len(fake_features)
    return {
        "nn_threshold": threshold,
        "nn_threshold_rule": rule,
        "share_closer_than_threshold": len(flagged) / n_fake,
        "n_closer_than_threshold": int(len(flagged)),
        "closest_pairs": [{"fake": fake_names[i], "real": real_names[fake_nn_index[i]],
                           "distance": float(fake_nn[i])} for i in closest],
        "exact_duplicates": len(exact),
        "exact_duplicate_pairs": [{"fake": fake_names[f], "real": real_names[r]}
                                  for f, r in exact[:max_listed]],
        "near_duplicates": len(near),
        "near_duplicate_rule": f"pHash (64 bit) Hamming distance <= {max_hamming}",
        "near_duplicate_pairs": [{"fake": fake_names[f], "real": real_names[r], "hamming": h}
                                 for f, r, h in near[:max_listed]],
        "share_near_duplicates": len(near) / n_fake,
    }


def training_memorization(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> dict:
    """Nearest-neighbour distance (RMS per pixel in [0, 1], at most 64x64) of generated
    images to the training set, against the same distance for held-out real images.

    A model that copies its training images puts many samples closer to them than
    held-out real images ever are; `near_copies` counts samples below the 1% quantile
    of the held-out distances (about 1% expected for a model that does not copy).
    """
    def pixels(images: np.ndarray) -> np.ndarray:
        if images.shape[1] > 64:
            factor = images.shape[1] // 64
            images = images.reshape(len(images), 64, factor, 64, factor, -1).mean(axis=(2, 4))
        return images.reshape(len(images), -1).astype(np.float64) / 255.0

    reference = pixels(train)
    dim = reference.shape[1]
    fake_nn = nearest_distances(pixels(samples), reference)[0] / math.sqrt(dim)
    report = {"space": f"pixels at {min(train.shape[1], 64)}px, RMS in [0, 1]",
              "samples": int(len(samples)), "training_images": int(len(train)),
              "sample_nn_median": float(np.median(fake_nn)), "sample_nn_min": float(fake_nn.min())}
    if len(heldout):
        real_nn = nearest_distances(pixels(heldout), reference)[0] / math.sqrt(dim)
        threshold = float(np.quantile(real_nn, 0.01))
        report.update({"heldout_nn_median": float(np.median(real_nn)),
                       "ratio": float(np.median(fake_nn) / max(np.median(real_nn), 1e-12)),
                       "near_copy_threshold": threshold,
                       "near_copies": int((fake_nn < threshold).sum())})
    return report
