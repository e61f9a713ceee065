"""FID, KID and IS computed by torchmetrics on features we extracted (and cached).

torchmetrics' metrics are given an identity "feature extractor" that declares the
feature width, so they run their own formulas on our features: FID's eigenvalue form,
KID's unbiased polynomial-kernel MMD over random subsets, IS over splits. Their random
subsets/shuffles use torch's global RNG: we seed it from the caller's seed inside the
call and restore it afterwards, so results repeat and nothing else is disturbed.

`fid_reference_numpy` is a plain scipy implementation (the original TTUR formula) that
the tests compare against.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError
from imgsynth.io.atomic import atomic_write_bytes


@dataclass
class FeatureStats:
    """Gaussian summary of a feature set: all FID needs from the real side."""

    mean: np.ndarray  # (D,)
    covariance: np.ndarray  # (D, D), unbiased (n - 1)
    n: int
    extractor_id: str
    preset: str


def stats_from_features(features: np.ndarray, extractor_id: str, preset: str) -> FeatureStats:
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise InputError(f"FID needs at least 2 images per set, got {len(features)}",
                         fix="add images")
    return FeatureStats(features.mean(0), np.cov(features, rowvar=False), len(features),
                        extractor_id, preset)


def save_stats(path: str | Path, stats: FeatureStats) -> None:
    """Write mean, covariance, n, extractor id and preset as an .npz."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, mean=stats.mean, covariance=stats.covariance, n=np.int64(stats.n),
             extractor_id=np.array(stats.extractor_id), preset=np.array(stats.preset))
    atomic_write_bytes(path, buffer.getvalue())


def load_stats(path: str | Path) -> FeatureStats:
    try:
        with np.load(path, allow_pickle=False) as data:
            return FeatureStats(data["mean"], data["covariance"], int(data["n"]),
                                str(data["extractor_id"]), str(data["preset"]))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"not an imgsynth stats file ({exc})", file=str(path),
                         fix="write one with save_stats / `imgsynth eval --save-real-stats`") from None


def check_comparable(real: FeatureStats, fake: FeatureStats) -> None:
    if real.extractor_id != fake.extractor_id:
        raise InputError(
            f"real statistics come from extractor '{real.extractor_id}' but the fake set was "
            f"encoded with '{fake.extractor_id}'; FIDs from different extractors/presets are "
            "not comparable", fix="use the same --extractor, --weights and --preset for both")


def check_not_singular(stats: FeatureStats, role: str) -> None:
    dim = len(stats.mean)
    if stats.n <= dim:
        raise InputError(
            f"{role} set has {stats.n} images but the features have {dim} dimensions: its "
            f"covariance is singular, so FID is not defined (it would be dominated by noise)",
            fix=f"use at least {dim + 1} images (10,000+ for Inception FID), or use KID, which "
                "is unbiased for small sets (--metrics kid)")


def _identity(num_features: int):
    import torch

    class Identity(torch.nn.Module):
        """Hands torchmetrics our precomputed features."""

        def __init__(self):
            super().__init__()
            self.num_features = num_features

        def forward(self, x):
            return x

    return Identity()


def fid_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    """FID by torchmetrics' formula, in float64, from two Gaussian summaries."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    check_comparable(real, fake)
    check_not_singular(real, "real")
    check_not_singular(fake, "fake")
    metric = FrechetInceptionDistance(feature=_identity(len(real.mean))).set_dtype(torch.float64)
    # torchmetrics keeps sums; rebuild them from (mean, covariance, n).
    for prefix, stats in (("real", real), ("fake", fake)):
        mean = torch.from_numpy(np.asarray(stats.mean, dtype=np.float64))
        cov = torch.from_numpy(np.asarray(stats.covariance, dtype=np.float64))
        setattr(metric, f"{prefix}_features_sum", mean * stats.n)
        setattr(metric, f"{prefix}_features_cov_sum", cov * (stats.n - 1) + stats.n * torch.outer(mean, mean))
        setattr(metric, f"{prefix}_features_num_samples", torch.tensor(stats.n))
    metric.orig_dtype = torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "compute before update": the states are set above
        return max(float(metric.compute()), 0.0)


def fid_from_features(real: np.ndarray, fake: np.ndarray, extractor_id: str = "features",
                      preset: str = "clean") -> float:
    return fid_from_stats(stats_from_features(real, extractor_id, preset),
                          stats_from_features(fake, extractor_id, preset))


def fid_reference_numpy(mu1, sigma1, mu2, sigma2) -> float:
    """The TTUR/pytorch-fid formula with scipy's sqrtm (reference for tests)."""
    from scipy import linalg

    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean.real))


@contextmanager
def seeded_torch_rng(seed: int):
    """Seed torch's global CPU RNG for one call and restore its state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def kid_from_features(real: np.ndarray, fake: np.ndarray, *, subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID mean and std over random subsets (subset_size is capped at the smaller set)."""
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise InputError(f"KID needs at least 2 images per set (real {len(real)}, fake {len(fake)})",
                         fix="add images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "saves all features in buffer": we know
        metric = KernelInceptionDistance(feature=_identity(real.shape[1]), subsets=subsets,
                                         subset_size=size)
    metric.update(torch.from_numpy(np.asarray(real, dtype=np.float64)), real=True)
    metric.update(torch.from_numpy(np.asarray(fake, dtype=np.float64)), real=False)
    with seeded_torch_rng(seed):
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score_from_logits(logits: np.ndarray, *, splits: int = 10,
                                 seed: int = 0) -> tuple[float, float]:
    """IS mean and std over splits (torchmetrics shuffles first; seeded here)."""
    import torch
    from torchmetrics.image.inception import InceptionScore

    if len(logits) < splits:
        raise InputError(f"IS with {splits} splits needs at least {splits} images, got {len(logits)}",
                         fix="add images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = InceptionScore(feature=_identity(logits.shape[1]), splits=splits)
    metric.update(torch.from_numpy(np.asarray(logits, dtype=np.float64)))
    with seeded_torch_rng(seed):
        mean, std = metric.compute()
    return float(mean), float(std)


def as_rgb_batch(images: np.ndarray, role: str) -> np.ndarray:
    """(N,H,W), (N,H,W,1) or (N,H,W,3) uint8 -> (N,H,W,3) uint8."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise InputError(f"{role} images must be uint8 0..255, got {images.dtype}",
                         fix="convert with (x * 255).round().clip(0, 255).astype(np.uint8)")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise InputError(f"{role} images must be (N, H, W, C) with C 1 or 3, got {images.shape}",
                         fix="pass channel-last RGB or grayscale arrays")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def fid_from_arrays(real: np.ndarray, fake: np.ndarray, extractor="builtin", *,
                    preset: str = "clean", batch_size: int = 64, device: str = "cpu") -> float:
    """FID between two (N, H, W, C) uint8 arrays; `extractor` is a name or an extractor.

    Both must have the same channel count (1 or 3): a gray set against a colour set is
    almost always a mistake, and FID would mostly measure the missing colour.
    """
    from imgsynth.evaluate.features import get_extractor

    real, fake = np.asarray(real), np.asarray(fake)
    real_c = real.shape[-1] if real.ndim == 4 else 1
    fake_c = fake.shape[-1] if fake.ndim == 4 else 1
    if real_c != fake_c:
        raise InputError(f"mismatched channels: real images have {real_c}, fake images {fake_c}",
                         fix="convert both sets to the same channel count (RGB or grayscale)")
    if isinstance(extractor, str):
        extractor = get_extractor(extractor, preset=preset, device=device)
    real_feats = features_from_arrays(real, extractor, batch_size=batch_size, role="real")
    fake_feats = features_from_arrays(fake, extractor, batch_size=batch_size, role="fake")
    return fid_from_features(real_feats, fake_feats, extractor.id, preset)


def features_from_arrays(images: np.ndarray, extractor="builtin", *, preset: str = "clean",
                         batch_size: int = 64, device: str = "cpu", role: str = "images") -> np.ndarray:
    """(N, D) features of a (N, H, W, C) uint8 array, e.g. to keep a trainer's real stats."""
    from imgsynth.evaluate.features import get_extractor

    if isinstance(extractor, str):
        extractor = get_extractor(extractor, preset=preset, device=device)
    rgb = as_rgb_batch(images, role)
    return np.concatenate([extractor.extract(rgb[i:i + batch_size])[0]
                           for i in range(0, len(rgb), batch_size)])
