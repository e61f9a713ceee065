"""imgsynth augmentation vs albumentations and torchvision.transforms.v2, same process, same images.

    .venv/bin/python benchmarks/augment.py [--images 200] [--repeat 3]

256x256 uint8 RGB, one process, one thread for cv2 and torch (printed). Every
peer and imgsynth run on the same images in the same process state: glibc's
MALLOC_MMAP_THRESHOLD_ (see shared/INSTALL-NOTES.md) changes albumentations'
GaussNoise speed by ~3x, and importing torchvision changes it too; torch and
torchvision are imported before any timing, and the variable's value is printed.
Timings on a shared machine are noisy: the best of --repeat runs is reported.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import cv2
import numpy as np
import torch
import torchvision.transforms.v2 as T  # imported up front: it changes malloc behaviour

import albumentations as A
from imgsynth.augment.config import AugmentConfig
from imgsynth.augment.functional import gaussian_noise_image
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed, sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext


def run_seconds(fn, items) -> tuple[float, int]:
    """One timed pass; `items` may be a callable that makes fresh items (per-sample
    Generators are consumed by a pass), built outside the timed loop."""
    run = items() if callable(items) else items
    start = time.perf_counter()
    for item in run:
        fn(item)
    return time.perf_counter() - start, len(run)


def images_per_second(fn, items, repeat: int) -> float:
    run_seconds(fn, items)
    best, n = min(run_seconds(fn, items) for _ in range(repeat))
    return n / best


def paired_images_per_second(fn_a, items_a, fn_b, items_b, repeat: int) -> tuple[float, float]:
    """Best of `repeat` passes each, A and B alternating, so that load on a shared
    machine drifting during the run hits both sides alike."""
    run_seconds(fn_a, items_a)
    run_seconds(fn_b, items_b)
    a, b = [], []
    for _ in range(repeat):
        a.append(run_seconds(fn_a, items_a))
        b.append(run_seconds(fn_b, items_b))
    (ta, na), (tb, nb) = min(a), min(b)
    return na / ta, nb / tb


def with_rngs(batch, stage: str):
    """Items paired with their per-sample Generators, made fresh for each timed pass:
    making Generators is the engine's job, outside the transform being timed."""
    return lambda: [(item, sample_rng(0, stage, i)) for i, item in enumerate(batch)]


def make_items(n: int):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    items = []
    for _ in range(n):
        image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        masks = []
        for _ in range(3):
            cx, cy, r = rng.integers(40, 216, 2).tolist() + [int(rng.integers(10, 30))]
            masks.append((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)
        items.append((image, masks))
    return items


def stage_of(transforms):
    return AugmentConfig.model_validate({"type": "augment", "transforms": transforms}).build(
        BuildContext(seed=0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"cv2 threads {cv2.getNumThreads()}, torch threads {torch.get_num_threads()}, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, "
          f"albumentations {A.__version__}, torch {torch.__version__}")
    items = make_items(args.images)
    samples = [Sample(index=i, image=img, instances=[Instance("o", tight_bbox(m), mask=m) for m in ms])
               for i, (img, ms) in enumerate(items)]
    rows = []

    def compare(name, ours, peer, peer_name, items_ours, items_peer):
        a, b = paired_images_per_second(ours, items_ours, peer, items_peer, args.repeat)
        rows.append((name, a, peer_name, b))
        print(f"{name:<44} imgsynth {a:8.0f} img/s | {peer_name:<22} {b:8.0f} img/s | ratio {a / b:5.2f}")

    # 1. The same albumentations pipeline, through imgsynth and raw (image only, then with labels).
    # Both sides get the same per-sample random state (made outside the timed loop), so
    # they draw the same parameters and do the same pixel work: the difference is
    # imgsynth's own overhead (seeding, label bookkeeping), not which images got blurred.
    spec = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "Rotate", "limit": 30, "p": 1.0},
            {"name": "RandomBrightnessContrast", "p": 1.0}, {"name": "GaussianBlur", "p": 0.5}]
    stage = stage_of(spec)
    raw = A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=30, p=1.0),
                     A.RandomBrightnessContrast(p=1.0), A.GaussianBlur(p=0.5)], seed=0)
    raw_labeled = A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=30, p=1.0),
                             A.RandomBrightnessContrast(p=1.0), A.GaussianBlur(p=0.5)], seed=0,
                            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"]))
    bare = [Sample(index=s.index, image=s.image) for s in samples]

    def peer_with_rngs():
        # What AlbumentationsStep does before calling its Compose: a python seed drawn
        # from the sample's Generator, then the Generator itself.
        rngs = [sample_rng(0, "b", s.index) for s in samples]
        return [(it, rng, random.Random(derived_int_seed(rng))) for it, rng in zip(items, rngs)]

    def peer(compose, **labels):
        def call(item):
            (image, masks), rng, py_random = item
            compose.set_random_state(rng, py_random)
            if not labels:
                return compose(image=image)
            return compose(image=image, masks=np.stack(masks).astype(np.uint8),
                           bboxes=[tight_bbox(m) for m in masks], ids=[0, 1, 2])
        return call

    compare("pipeline, image only", lambda it: stage.apply(*it), peer(raw), "A.Compose",
            with_rngs(bare, "b"), peer_with_rngs)
    compare("pipeline, 3 masks + boxes (ours: tight)", lambda it: stage.apply(*it),
            peer(raw_labeled, labels=True), "A.Compose(bboxes,masks)", with_rngs(samples, "b"),
            peer_with_rngs)

    # 2. Gaussian noise, sigma 10/255, independent per pixel, channel and image.
    gauss = A.GaussNoise(std_range=(10 / 255, 10 / 255), per_channel=True, p=1.0)
    compare("Gaussian noise sigma=10 (kernel)",
            lambda it: gaussian_noise_image(it[0][0], 10.0, it[1]),
            lambda it: gauss(image=it[0]), "A.GaussNoise", with_rngs(items, "n"), items)
    noise_stage = stage_of([{"name": "imgsynth.GaussianNoise", "sigma": 10}])
    compare("Gaussian noise sigma=10 (stage)", lambda it: noise_stage.apply(*it),
            lambda it: gauss(image=it[0]), "A.GaussNoise", with_rngs(bare, "n"), items)

    # 2b. The other noise stages vs the albumentations transform of the same purpose.
    for name, ours, alb, peer_name in [
        ("salt & pepper 2%", {"name": "imgsynth.SaltPepper", "amount": 0.02},
         A.SaltAndPepper(amount=(0.02, 0.02), salt_vs_pepper=(0.5, 0.5), p=1.0), "A.SaltAndPepper"),
        ("Poisson, white = 100 photons", {"name": "imgsynth.PoissonNoise", "peak": 100},
         A.ShotNoise(scale_range=(0.01, 0.01), p=1.0), "A.ShotNoise"),
        ("speckle, std 0.1 (A: uniform factor)", {"name": "imgsynth.SpeckleNoise", "sigma": 0.1},
         A.MultiplicativeNoise(multiplier=(1 - 0.1 * 3 ** 0.5, 1 + 0.1 * 3 ** 0.5), per_channel=True,
                               elementwise=True, p=1.0), "A.MultiplicativeNoise"),
    ]:
        st = stage_of([ours])
        compare(name, lambda it: st.apply(*it), lambda it: alb(image=it[0]), peer_name,
                with_rngs(bare, "n2"), items)

    # 3. Flips and rotation vs albumentations and torchvision.transforms.v2 (uint8 tensors).
    tensors = [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img, _ in items]
    for name, ours, alb, tv in [
        ("horizontal flip", [{"name": "imgsynth.HorizontalFlip", "p": 1}], A.HorizontalFlip(p=1),
         T.RandomHorizontalFlip(p=1)),
        ("rotate 30 (crop)", [{"name": "imgsynth.Rotate", "limit": 30, "p": 1}], A.Rotate(limit=30, p=1),
         T.RandomRotation(30, interpolation=T.InterpolationMode.BILINEAR)),
        ("rotate 30 expand", [{"name": "imgsynth.Rotate", "limit": 30, "expand": True, "p": 1}], None,
         T.RandomRotation(30, interpolation=T.InterpolationMode.BILINEAR, expand=True)),
    ]:
        st = stage_of(ours)
        if alb is not None:
            compare(name, lambda it: st.apply(*it), lambda it: alb(image=it[0]), "albumentations",
                    with_rngs(bare, "g"), items)
        compare(name, lambda it: st.apply(*it), lambda t: tv(t), "torchvision v2 (tensor)",
                with_rngs(bare, "g"), tensors)

    # 4. Batched torch path on CPU (per-sample flips, rotation, brightness/contrast, noise).
    from imgsynth.torch import BatchAugment

    batch = torch.stack(tensors[:64])
    batched = BatchAugment(seed=0, hflip=0.5, rotate_limit=30, brightness=0.1, contrast=0.1,
                           noise_sigma=(5, 10))
    cpu_stage = stage_of([{"name": "imgsynth.HorizontalFlip"}, {"name": "imgsynth.Rotate", "limit": 30},
                          {"name": "RandomBrightnessContrast", "p": 1},
                          {"name": "imgsynth.GaussianNoise", "sigma": [5, 10]}])
    start = time.perf_counter()
    for i in range(3):
        batched(batch, batch_index=i)
    gpu_like = 3 * len(batch) / (time.perf_counter() - start)
    cpu = images_per_second(lambda s: cpu_stage.apply(s, sample_rng(0, "c", s.index)), bare[:64], 1)
    print(f"{'BatchAugment on ' + str(batch.device) + ' (B=64)':<44} {gpu_like:8.0f} img/s | "
          f"per-sample numpy path {cpu:8.0f} img/s | ratio {gpu_like / cpu:5.2f}")
    if torch.cuda.is_available():
        gb = batch.cuda()
        batched(gb, batch_index=0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(20):
            batched(gb, batch_index=i)
        torch.cuda.synchronize()
        rate = 20 * len(gb) / (time.perf_counter() - start)
        print(f"{'BatchAugment on cuda (B=64)':<44} {rate:8.0f} img/s | ratio to CPU numpy path "
              f"{rate / cpu:5.2f}")


if __name__ == "__main__":
    main()
