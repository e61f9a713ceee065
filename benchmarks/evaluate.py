"""Evaluator benchmark: feature extraction vs torch-fidelity, and cached real stats.

    .venv/bin/python benchmarks/evaluate.py [--n-real 400] [--n-fake 25] [--device cpu]

1. Throughput: imgsynth and torch-fidelity extract Inception features from the same PNG
   files (64x64, decoded, TF-compatible resize to 299, one forward pass for pool3 and
   logits). No Inception weights can be downloaded here, so both load the SAME
   random-init weights file for the same torch-fidelity InceptionV3 architecture: the
   work per image is identical to the real weights; only the numbers are meaningless.
   As a check that both compute the same thing, torch-fidelity's own module is run on
   the same decoded images and its pool3 features compared with ours. torch-fidelity
   decodes in a 4-worker DataLoader, imgsynth in the main thread.
2. Cache: `imgsynth eval --metrics kid` of fake set A against an uncached real set, then
   of a second fake set B against the same real set (real features now cached): wall
   time ratio. (Inception FID needs more than 2,048 images per set, too slow on 2 CPU
   cores, so KID is the metric here.) The ratio grows with n_real / n_fake; the
   real-side time alone is also printed.
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_pngs(folder: Path, n: int, seed: int, size: int = 64) -> Path:
    import cv2

    from imgsynth.io.image import encode_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        noise = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        image = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
        (folder / f"{i:05d}.png").write_bytes(encode_image(image))
    return folder


def random_inception_weights(path: Path) -> Path:
    """A state_dict of torch-fidelity's InceptionV3 with random init (seeded)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, *a, **k: None  # keep random init
    try:
        torch.manual_seed(0)
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    torch.save(model.state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-images", type=int, default=200, help="images for the throughput test")
    parser.add_argument("--n-real", type=int, default=500)
    parser.add_argument("--n-fake", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import cv2
    import torch
    import torch_fidelity

    from imgsynth.evaluate import eval_command
    from imgsynth.evaluate.encode import encode_image_set
    from imgsynth.evaluate.features import get_extractor
    from imgsynth.evaluate.imageset import open_image_set

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, cv2 threads {cv2.getNumThreads()}, "
          f"device {args.device}, torch {torch.__version__}, torch-fidelity {torch_fidelity.__version__}")
    work = Path(tempfile.mkdtemp(prefix="imgsynth-bench-eval-"))
    try:
        weights = random_inception_weights(work / "inception-random.pth")
        images = write_pngs(work / "throughput", args.n_images, seed=1)

        # 1. throughput, same files, same weights, same resize (paper preset = TF resize)
        extractor = get_extractor("inception", preset="paper", weights=weights, device=args.device)
        encode_image_set(open_image_set(write_pngs(work / "warm", 8, seed=9)), extractor, cache_dir=False)
        start = time.perf_counter()
        ours = encode_image_set(open_image_set(images), extractor, cache_dir=False)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = torch_fidelity.calculate_metrics(
            input1=str(images), isc=True, isc_splits=1, cuda=args.device.startswith("cuda"),
            batch_size=64, cache=False, verbose=False, feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=str(weights))
        theirs_s = time.perf_counter() - start
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        from imgsynth.io.image import decode_image

        peer = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                           feature_extractor_weights_path=str(weights))
        batch = np.stack([decode_image(p) for p in sorted(images.iterdir())[:8]])
        with torch.inference_mode():
            peer_feats = peer(torch.from_numpy(batch).permute(0, 3, 1, 2))[0].double().numpy()
        gap = np.abs(peer_feats - ours.features[:8]).max() / np.abs(peer_feats).max()
        print(f"feature extraction, {args.n_images} PNG 64x64 -> Inception 299 (random weights):")
        print(f"  imgsynth       {args.n_images / ours_s:8.1f} images/s  "
              f"(includes pHash + pixel stats per image)")
        print(f"  torch-fidelity {args.n_images / theirs_s:8.1f} images/s")
        print(f"  ratio imgsynth/torch-fidelity {theirs_s / ours_s:.2f}")
        print(f"  same features as torch-fidelity's module: max relative difference {gap:.2e}")
        del theirs

        # 2. cached real features
        real = write_pngs(work / "real", args.n_real, seed=2)
        fake_a = write_pngs(work / "fake_a", args.n_fake, seed=3)
        fake_b = write_pngs(work / "fake_b", args.n_fake, seed=4)
        common = dict(metrics="kid", preset="paper", extractor="inception", weights=weights,
                      cache_dir=work / "cache", device=args.device, log=lambda message: None)
        start = time.perf_counter()
        first = eval_command(real, fake_a, out=work / "report_a", **common)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        second = eval_command(real, fake_b, out=work / "report_b", **common)
        second_s = time.perf_counter() - start
        print(f"imgsynth eval, {args.n_real} real vs {args.n_fake} fake (kid + report):")
        print(f"  first run (real not cached)   {first_s:7.2f} s  (real encode "
              f"{first['timings_s']['encode_real']:.2f} s)")
        print(f"  second fake set, cached real  {second_s:7.2f} s  (real from cache "
              f"{second['timings_s']['encode_real']:.3f} s)")
        print(f"  speed-up end to end {first_s / second_s:.1f}x, real side "
              f"{first['timings_s']['encode_real'] / max(second['timings_s']['encode_real'], 1e-9):.0f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
