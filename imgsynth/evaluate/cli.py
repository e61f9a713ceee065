"""`imgsynth eval`: score a synthetic image set against a real one and write a report.

eval_command is a plain function; the CLI maps its flags onto these arguments. Steps:
1. check arguments, build the feature extractor (missing weights fail here, exit 2),
2. open and encode both sets (cached per file set and extractor),
3. compute each requested metric; one that cannot run on this input is recorded as
   skipped with the reason instead of stopping the others,
4. draw figures and write report.json and report.html.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from imgsynth.core.errors import ImgsynthError, InputError, RecipeError, did_you_mean
from imgsynth.core.versions import package_versions

METRICS = ("fid", "kid", "is", "prdc", "memorization", "stats", "tstr")
PAPER_MIN_SAMPLES = 2048


def parse_metrics(metrics) -> list[str]:
    if metrics is None:
        return list(METRICS)
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    for name in names:
        if name not in METRICS:
            raise RecipeError(f"unknown metric '{name}'.{did_you_mean(name, METRICS)}",
                              key="metrics", fix=f"choose from: {','.join(METRICS)}")
    return [m for m in METRICS if m in names]


# Recorded in report.json: the packages whose versions decide the numbers.
REPORTED_PACKAGES = ("imgsynth", "torch", "torchvision", "torchmetrics", "torch-fidelity",
                     "numpy", "scipy", "scikit-learn")


def input_warnings(n_real: int, n_fake: int, preset: str, extractor_id: str,
                   real_gray: bool | None, fake_gray: bool) -> list[str]:
    """Things a reader must know before trusting the numbers (real_gray None: no images)."""
    warnings = []
    n_small = min(n_real, n_fake)
    if preset == "paper" and n_small < PAPER_MIN_SAMPLES:
        warnings.append(
            f"paper preset: only {n_small} images in the smaller set; FID is biased upwards "
            f"below {PAPER_MIN_SAMPLES:,} samples and published numbers use 10,000-50,000. "
            "Compare only FIDs computed with the same sample counts; KID is unbiased.")
    if not extractor_id.startswith("inception"):
        warnings.append(f"extractor '{extractor_id}' is not the FID Inception network: these "
                        "numbers are not comparable to published FID/IS values.")
    if real_gray is not None and real_gray != fake_gray:
        gray_role = "real" if real_gray else "synthetic"
        warnings.append(
            f"mismatched channels: the {gray_role} images are all grayscale, the other set "
            "is colour; FID and the colour statistics will mostly measure the missing colour.")
    return warnings


def compute_metric(name: str, real, real_stats, fake, *, preset: str, seed: int,
                   kid_subsets: int, kid_subset_size: int, memorization_quantile: float) -> dict:
    """One metric's result dict; raises InputError when the input does not allow it."""
    from imgsynth.evaluate import fid, memorization, prdc, stats, utility

    if real is None and name not in ("fid", "is"):
        raise InputError("needs the real images, but --real is a stats file (FID only)",
                         fix="pass the real image folder to get this metric")
    if name == "fid":
        if real is not None:
            real_stats = fid.stats_from_features(real.features, real.extractor_id, preset)
        fake_stats = fid.stats_from_features(fake.features, fake.extractor_id, preset)
        return {"value": fid.fid_from_stats(real_stats, fake_stats)}
    if name == "kid":
        mean, std = fid.kid_from_features(real.features, fake.features, subsets=kid_subsets,
                                          subset_size=kid_subset_size, seed=seed)
        return {"mean": mean, "std": std, "subsets": kid_subsets,
                "subset_size": min(kid_subset_size, len(real), len(fake)),
                "kernel": "polynomial degree 3, gamma 1/D, coef 1"}
    if name == "is":
        if fake.logits is None:
            raise InputError(f"extractor '{fake.extractor_id}' has no class logits",
                             fix="use --extractor inception for IS")
        splits = 10
        mean, std = fid.inception_score_from_logits(fake.logits, splits=splits, seed=seed)
        return {"mean": mean, "std": std, "splits": splits}
    if name == "prdc":
        return prdc.prdc(real.features, fake.features, seed=seed)
    if name == "memorization":
        return memorization.memorization_report(
            real.features, fake.features, real.names, fake.names, real.phash, fake.phash,
            real.pixel_sha, fake.pixel_sha, quantile=memorization_quantile)
    if name == "stats":
        result = {"channels": stats.channel_stats(real.channel_moments, fake.channel_moments,
                                                  real.histograms, fake.histograms)}
        if real.labels or fake.labels:
            result["class_balance"] = stats.class_balance(real.labels, fake.labels)
        if real.boxes or fake.boxes:
            result["boxes"] = stats.box_stats(real.boxes, fake.boxes)
        return result
    if name == "tstr":
        if not real.labels or not fake.labels:
            missing = "real" if not real.labels else "synthetic"
            raise InputError(f"the {missing} set has no class labels",
                             fix="use an imgsynth output folder with labels (manifest.jsonl) or "
                                 "an ImageFolder layout (one sub-folder per class)")
        return utility.tstr(real.features, real.labels, fake.features, fake.labels, seed=seed)
    raise AssertionError(name)


def draw_figures(real, real_set, fake, fake_set, metrics: dict, seed: int) -> tuple[dict, str | None]:
    from imgsynth.evaluate import report, stats

    figures = {}
    projection = None
    if real is not None:
        figures["projection"], projection = report.projection_figure(real.features, fake.features, seed)
    figures["grids"] = report.grids_figure(real_set.files if real_set else None, fake_set.files)
    if real is not None:
        figures["channels"] = report.channel_figure(real.histograms, fake.histograms)
    stat_result = metrics.get("stats", {})
    if "class_balance" in stat_result:
        figures["classes"] = report.class_figure(stat_result["class_balance"])
    if "boxes" in stat_result:
        figures["boxes"] = report.box_figure(stats.box_measures(real.boxes), stats.box_measures(fake.boxes))
    pairs = metrics.get("memorization", {}).get("closest_pairs")
    if pairs:
        figures["closest_pairs"] = report.pairs_figure(pairs, real_set.root, fake_set.root)
    return figures, projection


def eval_command(real, fake, metrics=None, preset: str = "paper", out="eval_report",
                 extractor: str = "inception", *, weights=None, cache_dir=None, seed: int = 0,
                 batch_size: int = 64, device: str = "cpu", allow_download: bool = False,
                 save_real_stats=None, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 memorization_quantile: float = 0.01, log=None) -> dict:
    """Evaluate `fake` (a folder) against `real` (a folder, or a stats .npz from
    save_stats) and write OUT/report.json and OUT/report.html. Returns the report dict.

    `cache_dir=None` uses ~/.cache/imgsynth/features ($IMGSYNTH_CACHE); False disables it.
    """
    from imgsynth.core.device import pick_device
    from imgsynth.evaluate import fid
    from imgsynth.evaluate.encode import encode_image_set
    from imgsynth.evaluate.features import check_preset, get_extractor
    from imgsynth.evaluate.imageset import open_image_set
    from imgsynth.evaluate.report import write_report

    log = log or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    # 1. arguments and extractor
    names = parse_metrics(metrics)
    check_preset(preset)
    device = str(pick_device(device, key="--device"))
    real_path, fake_path, out = Path(real), Path(fake), Path(out)
    real_is_stats = real_path.suffix == ".npz"
    real_stats = fid.load_stats(real_path) if real_is_stats else None
    if real_is_stats and real_stats.preset != preset:
        raise InputError(f"the real stats were computed with preset '{real_stats.preset}', "
                         f"not '{preset}'", file=str(real_path), fix=f"pass --preset {real_stats.preset}")
    real_set = None if real_is_stats else open_image_set(real_path, "real")
    fake_set = open_image_set(fake_path, "fake")
    feature_extractor = get_extractor(extractor, preset=preset, weights=weights, device=device,
                                      allow_download=allow_download)

    # 2. encode (cached)
    real_enc = None
    if real_set is not None:
        log(f"encoding real set: {len(real_set.files)} images from {real_path}")
        real_enc = encode_image_set(real_set, feature_extractor, cache_dir=cache_dir, batch_size=batch_size)
    log(f"encoding fake set: {len(fake_set.files)} images from {fake_path}")
    fake_enc = encode_image_set(fake_set, feature_extractor, cache_dir=cache_dir, batch_size=batch_size)
    if save_real_stats is not None and real_enc is not None:
        fid.save_stats(save_real_stats, fid.stats_from_features(
            real_enc.features, real_enc.extractor_id, preset))
    encoded_seconds = time.perf_counter() - started

    # 3. metrics
    n_real = len(real_enc) if real_enc is not None else real_stats.n
    warnings = input_warnings(n_real, len(fake_enc), preset, feature_extractor.id,
                              bool(real_enc.gray.all()) if real_enc is not None else None,
                              bool(fake_enc.gray.all()))
    results = {}
    for name in names:
        try:
            results[name] = compute_metric(
                name, real_enc, real_stats, fake_enc, preset=preset, seed=seed,
                kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                memorization_quantile=memorization_quantile)
        except ImgsynthError as exc:
            results[name] = {"skipped": exc.message + (f" (fix: {exc.fix})" if exc.fix else "")}
            log(f"{name}: skipped: {exc.message}")

    # 4. report
    figures, projection = draw_figures(real_enc, real_set, fake_enc, fake_set, results, seed)
    report = {
        "how": {
            "real": str(real_path), "fake": str(fake_path),
            "n_real": n_real,
            "n_fake": len(fake_enc),
            "extractor": extractor, "extractor_id": feature_extractor.id,
            "feature_dim": feature_extractor.num_features,
            "weights_sha256": getattr(feature_extractor, "weights_sha256", None),
            "preset": preset, "resize": feature_extractor.resize_note,
            "decode": "imgsynth.io.image.decode_image (EXIF applied, alpha over black, 8-bit RGB)",
            "fid_formula": "torchmetrics FrechetInceptionDistance, float64, eigenvalue trace sqrt",
            "real_layout": real_set.layout if real_set else "stats file",
            "fake_layout": fake_set.layout,
            "seed": seed, "projection": projection, "device": device,
            "versions": package_versions(REPORTED_PACKAGES, missing="not installed"),
        },
        "metrics": results,
        "warnings": warnings,
        "timings_s": {"encode_real": real_enc.seconds if real_enc is not None else 0.0,
                      "encode_fake": fake_enc.seconds,
                      "real_from_cache": bool(real_enc.from_cache) if real_enc is not None else True,
                      "fake_from_cache": fake_enc.from_cache,
                      "encode_total": encoded_seconds,
                      "total": time.perf_counter() - started},
    }
    json_path, html_path = write_report(out, report, figures)
    log(f"wrote {json_path} and {html_path}")
    return report


def save_stats_command(images, out, extractor: str = "inception", preset: str = "paper", *,
                       weights=None, cache_dir=None, batch_size: int = 64, device: str = "cpu",
                       allow_download: bool = False) -> Path:
    """Encode a real image folder once and write its FID stats .npz (usable as --real)."""
    from imgsynth.core.device import pick_device
    from imgsynth.evaluate import fid
    from imgsynth.evaluate.encode import encode_image_set
    from imgsynth.evaluate.features import get_extractor
    from imgsynth.evaluate.imageset import open_image_set

    device = str(pick_device(device, key="--device"))
    image_set = open_image_set(images, "real")
    feature_extractor = get_extractor(extractor, preset=preset, weights=weights, device=device,
                                      allow_download=allow_download)
    encoded = encode_image_set(image_set, feature_extractor, cache_dir=cache_dir, batch_size=batch_size)
    fid.save_stats(out, fid.stats_from_features(encoded.features, encoded.extractor_id, preset))
    return Path(out)

