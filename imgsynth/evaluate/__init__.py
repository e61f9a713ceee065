"""Evaluate synthetic images against real ones: FID/KID/IS (torchmetrics), precision/
recall/density/coverage, memorization, distribution statistics, TSTR utility, and a
self-contained HTML report. Importing this package does not import torch.

Python API for trainers and notebooks:
    fid_from_arrays(real, fake, extractor="builtin", preset="clean") -> float
    features_from_arrays(images, extractor="builtin") -> (N, D) features
    fid_from_features(real_feats, fake_feats) / fid_from_stats(real_stats, fake_stats)
    stats_from_features, save_stats, load_stats, FeatureStats
    get_extractor(name, preset=..., weights=...)   (also imgsynth.evaluate.features)
    eval_command(real, fake, metrics, preset, out, extractor, ...)   (what `imgsynth eval` runs)
"""

from imgsynth.evaluate.cli import eval_command, save_stats_command
from imgsynth.evaluate.features import get_extractor
from imgsynth.evaluate.fid import (
    FeatureStats,
    features_from_arrays,
    fid_from_arrays,
    fid_from_features,
    fid_from_stats,
    inception_score_from_logits,
    kid_from_features,
    load_stats,
    save_stats,
    stats_from_features,
)

__all__ = [
    "FeatureStats", "eval_command", "features_from_arrays", "fid_from_arrays",
    "fid_from_features", "fid_from_stats", "get_extractor", "inception_score_from_logits",
    "kid_from_features", "load_stats", "save_stats", "save_stats_command", "stats_from_features",
]
