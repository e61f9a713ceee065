"""Simple distribution checks a person can read: colour, classes, boxes.

- Per channel: pixel mean/std over the set, and two-sample KS tests on the per-image
  channel means and standard deviations (brightness and contrast per image; KS on raw
  pixels would flag any difference with millions of samples).
- Class balance: count and share per class, total variation distance between shares.
- Boxes (detection sets): relative width/height (sqrt of relative area), aspect
  ratio (log2 w/h) and centre position, with KS tests, real vs synthetic.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

CHANNELS = ("R", "G", "B")


def ks_test(a: np.ndarray, b: np.ndarray) -> dict:
    from scipy.stats import ks_2samp

    if len(a) == 0 or len(b) == 0:
        return {"statistic": None, "p_value": None}
    result = ks_2samp(a, b)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}


def histogram_moments(hist: np.ndarray) -> tuple[float, float]:
    values = np.arange(256, dtype=np.float64)
    total = max(hist.sum(), 1)
    mean = float((hist * values).sum() / total)
    return mean, float(np.sqrt((hist * (values - mean) ** 2).sum() / total))


def channel_stats(real_moments: np.ndarray, fake_moments: np.ndarray,
                  real_hist: np.ndarray, fake_hist: np.ndarray) -> dict:
    """Per-channel summary; moments are (N, 6) per-image means then stds."""
    out = {}
    for c, name in enumerate(CHANNELS):
        real_mean, real_std = histogram_moments(real_hist[c])
        fake_mean, fake_std = histogram_moments(fake_hist[c])
        out[name] = {
            "real_pixel_mean": real_mean, "fake_pixel_mean": fake_mean,
            "real_pixel_std": real_std, "fake_pixel_std": fake_std,
            "ks_image_mean": ks_test(real_moments[:, c], fake_moments[:, c]),
            "ks_image_std": ks_test(real_moments[:, 3 + c], fake_moments[:, 3 + c]),
        }
    return out


def class_balance(real_labels: list[str] | None, fake_labels: list[str] | None) -> dict:
    real = Counter(real_labels or [])
    fake = Counter(fake_labels or [])
    classes = sorted(set(real) | set(fake))
    n_real, n_fake = max(sum(real.values()), 1), max(sum(fake.values()), 1)
    rows = {c: {"real": real[c], "fake": fake[c], "real_share": real[c] / n_real,
                "fake_share": fake[c] / n_fake} for c in classes}
    tvd = 0.5 * sum(abs(r["real_share"] - r["fake_share"]) for r in rows.values())
    return {"classes": rows, "total_variation_distance": tvd if real and fake else None,
            "missing_in_fake": [c for c in classes if real[c] and not fake[c]],
            "missing_in_real": [c for c in classes if fake[c] and not real[c]]}


def box_measures(boxes: list | None) -> dict[str, np.ndarray]:
    """Per-box relative size sqrt(w*h / (W*H)), log2 aspect w/h, centre x/W, centre y/H."""
    rows = []
    for per_image in boxes or []:
        for _cls, (x1, y1, x2, y2), width, height in per_image:
            w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
            rows.append((np.sqrt(w * h / (width * height)), np.log2(w / h),
                         (x1 + x2) / 2 / width, (y1 + y2) / 2 / height))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return {"relative_size": arr[:, 0], "log2_aspect": arr[:, 1],
            "centre_x": arr[:, 2], "centre_y": arr[:, 3]}


def box_stats(real_boxes: list | None, fake_boxes: list | None) -> dict:
    real, fake = box_measures(real_boxes), box_measures(fake_boxes)
    return {name: {"real_n": int(len(real[name])), "fake_n": int(len(fake[name])),
                   "real_median": float(np.median(real[name])) if len(real[name]) else None,
                   "fake_median": float(np.median(fake[name])) if len(fake[name]) else None,
                   "ks": ks_test(real[name], fake[name])} for name in real}
