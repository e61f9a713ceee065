"""imgsynth augmentation vs albumentations and torchvision.transforms.v2, same process, same images.

    .venv/bin/python benchmarks/augment.py [--images 60] [--repeat 3] [--sections ...]

Sections (all by default):
  pipelines   four standard pipelines, written out below for each tool with the same
              parameter ranges: classification (500x375 photos), detection (640x480, 8
              objects with masks and boxes), small images (32x32, CIFAR-style), OCR lines
              (32 px high). imgsynth runs each as
              a recipe's transform list, fused (the default) and unfused (`fuse: false`,
              the path before compilation); albumentations as A.Compose; torchvision v2 on
              uint8 tensors (tv_tensors for the labels).
  small       small images, where a pipeline's per-sample cost matters more than its
              resampling: the CIFAR-style pipeline at 32, 64 and 128 px and other common
              ones at 28-32 px (photos shrunk), fused / unfused / A.Compose.
  sharpness   how far each tool's output is from one exact resample, for the geometric part
              of the detection and OCR pipelines: PSNR against an analytic image evaluated at
              the exact source position of every output pixel (higher is sharper).
  dataloader  end to end in a DataLoader (num_workers=2, persistent workers, best of
              --loader-epochs epochs after a warm-up one): the detection pipeline (batches
              of 8) and the small-image one (32x32 CHW tensors, batches of 256),
              AugmentedDataset vs a Dataset calling A.Compose, batches/s.
  kernels     single transforms and noise kernels vs their albumentations/torchvision peers
              (256x256), and BatchAugment on the CPU.

One process, one thread for cv2 and torch (printed). Every tool runs on the same images in
the same process state: glibc's MALLOC_MMAP_THRESHOLD_ (see shared/INSTALL-NOTES.md) changes
albumentations' GaussNoise speed by ~3x, and importing torchvision changes it too; torch and
torchvision are imported before any timing, and the variable's value is printed. Timings on
a shared machine are noisy: tools are timed in alternation, best of --repeat passes each.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.transforms.v2 as T  # imported up front: it changes malloc behaviour
from torchvision import tv_tensors

import albumentations as A
from imgsynth.augment.config import AugmentConfig
from imgsynth.augment.functional import gaussian_noise_image
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed, sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", category=UserWarning)  # albumentations' bbox processor notes

# ---------------------------------------------------------------------------
# The three standard pipelines, written out for each tool with the same ranges
# ---------------------------------------------------------------------------
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BILINEAR = T.InterpolationMode.BILINEAR  # torchvision's affine and rotation default to nearest

# imgsynth: a recipe's `transforms:` list (albumentations names, as an existing recipe has them).
CLASSIFICATION = [
    {"name": "RandomResizedCrop", "size": [224, 224], "p": 1.0},
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "p": 1.0},
    {"name": "Normalize", "mean": list(MEAN), "std": list(STD)},
]
DETECTION = [
    {"name": "Affine", "scale": [0.5, 1.5], "translate_percent": [-0.1, 0.1], "rotate": [-10, 10],
     "shear": [-2, 2], "p": 1.0},
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "HueSaturationValue", "hue_shift_limit": 5, "sat_shift_limit": 30, "val_shift_limit": 20,
     "p": 1.0},
    {"name": "Perspective", "scale": [0.05, 0.1], "p": 0.3},
    {"name": "GaussNoise", "std_range": [0.02, 0.06], "p": 0.3},
]
# CIFAR-style training on 32x32 images (pad 4, crop back, flip, normalize): small images,
# where the per-sample cost of a pipeline matters more than its resampling.
SMALL = [
    {"name": "PadIfNeeded", "min_height": 40, "min_width": 40, "border_mode": 0, "fill": 0, "p": 1.0},
    {"name": "RandomCrop", "height": 32, "width": 32, "p": 1.0},
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "Normalize", "mean": list(MEAN), "std": list(STD)},
]
# "Rotate +-3 with expand": imgsynth.Rotate(expand) in a recipe; A.Affine(fit_output=True) for
# albumentations (albumentations_pipeline), RandomRotation(expand=True) for torchvision.
OCR = [
    {"name": "Perspective", "scale": [0.02, 0.05], "fill": 255, "p": 0.5},
    {"name": "imgsynth.Rotate", "limit": 3, "expand": True, "fill": 255, "p": 1.0},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.2, "contrast_limit": 0.2, "p": 1.0},
    {"name": "Blur", "blur_limit": [3, 3], "p": 0.5},
    {"name": "ImageCompression", "quality_range": [60, 95], "p": 0.5},
]


def albumentations_pipeline(spec: list[dict], **kwargs) -> A.Compose:
    """The same list as A.Compose. imgsynth.Rotate with expand (which albumentations lacks)
    becomes A.Affine(rotate, fit_output=True): the same rotation, the canvas grown to hold it."""
    transforms = []
    for t in spec:
        params = {k: v for k, v in t.items() if k != "name"}
        if t["name"] == "imgsynth.Rotate":
            limit = params.pop("limit")
            transforms.append(A.Affine(rotate=(-limit, limit), fit_output=params.pop("expand"), **params))
        else:
            transforms.append(getattr(A, t["name"])(**params))
    return A.Compose(transforms, **kwargs)


def torchvision_classification():
    return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(),
                      T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.ToDtype(torch.float32, scale=True),
                      T.Normalize(MEAN, STD)])


def torchvision_detection():
    # HSV shift: torchvision has ColorJitter (factors) for it; noise needs float pixels.
    return T.Compose([
        T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.5, 1.5), shear=(-2, 2, -2, 2),
                       interpolation=BILINEAR),
        T.RandomHorizontalFlip(), T.ColorJitter(brightness=0.08, saturation=0.12, hue=5 / 180),
        T.RandomPerspective(distortion_scale=0.2, p=0.3),
        T.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        T.RandomApply([T.GaussianNoise(sigma=0.04)], p=0.3)])


def torchvision_small():
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                      T.ToDtype(torch.float32, scale=True), T.Normalize(MEAN, STD)])


def torchvision_ocr():
    return T.Compose([T.RandomPerspective(distortion_scale=0.1, p=0.5, fill=255),
                      T.RandomRotation(3, expand=True, fill=255, interpolation=BILINEAR),
                      T.ColorJitter(brightness=0.2, contrast=0.2),
                      T.RandomApply([T.GaussianBlur(3)], p=0.5),
                      T.RandomApply([T.JPEG((60, 95))], p=0.5)])


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def make_photos(n: int) -> list[np.ndarray]:
    """500x375 RGB photos: crops of scikit-learn's china.jpg and flower.jpg, resized."""
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(0)
    sources = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    photos = []
    for i in range(n):
        src = sources[i % 2]
        h, w = src.shape[:2]
        ch = int(rng.integers(int(h * 0.75), h + 1))
        cw = min(w, int(ch * 4 / 3))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        photo = cv2.resize(src[y:y + ch, x:x + cw], (500, 375), interpolation=cv2.INTER_AREA)
        photos.append(np.ascontiguousarray(photo[:, ::-1] if i % 4 >= 2 else photo))
    return photos


def make_scenes(n: int, height: int = 480, width: int = 640, objects: int = 8):
    """Textured 640x480 scenes with 8 objects (discs, ellipses, rectangles): (image, masks
    (8, H, W) uint8, tight xyxy boxes)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:height, :width]
    background = cv2.resize(cv2.imread(str(ROOT / "sample_assets/backgrounds/terrain_640x480.jpg"))[:, :, ::-1],
                            (width, height))
    scenes = []
    for _ in range(n):
        image = np.roll(background, int(rng.integers(0, width)), axis=1).copy()
        masks = np.zeros((objects, height, width), np.uint8)
        for k in range(objects):
            r = rng.uniform(20, 70)
            cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
            if k % 3 == 0:
                shape = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * 0.7)
            else:
                shape = (xx - cx) ** 2 + ((yy - cy) * rng.uniform(0.7, 1.4)) ** 2 < r * r
            masks[k] = shape
            image[shape] = (image[shape] * 0.3 + rng.integers(60, 256, 3) * 0.7).astype(np.uint8)
        scenes.append((image, masks, [tight_bbox(m.astype(bool)) for m in masks]))
    return scenes


def make_lines(n: int) -> list[np.ndarray]:
    """32 px high text lines (DejaVu Sans, corpus sentences), dark on light, RGB."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(ROOT / "sample_assets/fonts/latin/DejaVuSans.ttf"), 22)
    texts = [t for t in (ROOT / "sample_assets/text/corpus.txt").read_text(encoding="utf-8").splitlines() if t]
    lines = []
    for i in range(n):
        text = texts[i % len(texts)][:40]
        width = int(font.getlength(text)) + 12
        image = Image.new("RGB", (width, 32), (235, 232, 225))
        ImageDraw.Draw(image).text((6, 4), text, font=font, fill=(20, 20, 30))
        lines.append(np.asarray(image).copy())
    return lines


def stage_of(transforms, fuse: bool = True):
    return AugmentConfig.model_validate({"type": "augment", "transforms": transforms, "fuse": fuse}).build(
        BuildContext())


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

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


def alternating_rates(contenders: list[tuple], repeat: int) -> list[float]:
    """Best of `repeat` passes for each (fn, items), the contenders taking turns, so that
    load on a shared machine drifting during the run hits all of them alike."""
    for fn, items in contenders:
        run_seconds(fn, items)
    times: list[list] = [[] for _ in contenders]
    for _ in range(repeat):
        for k, (fn, items) in enumerate(contenders):
            times[k].append(run_seconds(fn, items))
    return [n / t for t, n in (min(ts) for ts in times)]


def paired_images_per_second(fn_a, items_a, fn_b, items_b, repeat: int) -> tuple[float, float]:
    a, b = alternating_rates([(fn_a, items_a), (fn_b, items_b)], repeat)
    return a, b


def with_rngs(batch, stage: str):
    """Items paired with their per-sample Generators, made fresh for each timed pass:
    making Generators is the engine's job, outside the transform being timed."""
    return lambda: [(item, sample_rng(0, stage, i)) for i, item in enumerate(batch)]


def albumentations_state(batch, stage: str):
    """What imgsynth's albumentations step does before calling its Compose: the sample's
    Generator and a python Random seeded from it; the peer gets the same state, so both
    draw the same parameters."""
    def make():
        out = []
        for i, item in enumerate(batch):
            rng = sample_rng(0, stage, i)
            out.append((item, rng, random.Random(derived_int_seed(rng))))
        return out
    return make


def seeded_torch(batch):
    """torchvision draws from torch's global generator: seeded once per pass."""
    def make():
        torch.manual_seed(0)
        return batch
    return make


# ---------------------------------------------------------------------------
# 1. The standard pipelines
# ---------------------------------------------------------------------------

def pipelines_section(args) -> list[tuple]:
    print("\n== Standard pipelines: images/s (best of %d, tools in alternation) ==" % args.repeat)
    print(f"{'pipeline':<34}{'fused':>9}{'unfused':>9}{'A.Compose':>11}{'tv v2':>9}"
          f"{'fused/A':>9}{'fused/tv':>10}{'fused/unfused':>15}")
    rows = []

    # classification: photos, no labels
    photos = make_photos(args.images)
    samples = [Sample(index=i, image=p) for i, p in enumerate(photos)]
    rows.append(run_pipeline("classification 500x375 -> 224", CLASSIFICATION, samples, photos,
                             albumentations_pipeline(CLASSIFICATION), None,
                             torchvision_classification(),
                             [torch.from_numpy(p).permute(2, 0, 1).contiguous() for p in photos], args))

    # detection: 8 objects with masks and boxes
    scenes = make_scenes(max(8, args.images // 2))
    samples = [Sample(index=i, image=img, instances=[Instance("o", box, mask=m.astype(bool))
                                                     for m, box in zip(masks, boxes)])
               for i, (img, masks, boxes) in enumerate(scenes)]
    alb = albumentations_pipeline(DETECTION, bbox_params=A.BboxParams(format="pascal_voc",
                                                                      label_fields=["labels"]))
    tv_items = [(tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1).contiguous()),
                 {"boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes), format="XYXY", canvas_size=img.shape[:2]),
                  "masks": tv_tensors.Mask(torch.from_numpy(masks)), "labels": torch.arange(len(boxes))})
                for img, masks, boxes in scenes]
    rows.append(run_pipeline("detection 640x480, 8 masks+boxes", DETECTION, samples, scenes, alb,
                             lambda img, masks, boxes: {"masks": masks, "bboxes": boxes,
                                                        "labels": list(range(len(boxes)))},
                             torchvision_detection(), tv_items, args, tv_takes_target=True))

    # small images: 32x32, many per pass
    rng = np.random.default_rng(0)
    smalls = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(args.images * 8)]
    rows.append(run_pipeline("small 32x32: pad, crop, flip, norm", SMALL,
                             [Sample(index=i, image=x) for i, x in enumerate(smalls)], smalls,
                             albumentations_pipeline(SMALL), None, torchvision_small(),
                             [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in smalls], args))

    # OCR lines
    lines = make_lines(args.images * 2)
    samples = [Sample(index=i, image=line) for i, line in enumerate(lines)]
    rows.append(run_pipeline("OCR line, 32 px high", OCR, samples, lines, albumentations_pipeline(OCR),
                             None, torchvision_ocr(),
                             [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in lines], args))
    return rows


def run_pipeline(name, spec, samples, raw, alb, alb_labels, tv, tv_items, args, tv_takes_target=False):
    fused, unfused = stage_of(spec, fuse=True), stage_of(spec, fuse=False)

    def peer(item):
        data, rng, py_random = item
        alb.set_random_state(rng, py_random)
        if alb_labels is None:
            return alb(image=data)
        image, masks, boxes = data
        return alb(image=image, **alb_labels(image, masks, boxes))

    def torchvision(item):
        return tv(*item) if tv_takes_target else tv(item)

    rates = alternating_rates([
        (lambda it: fused.apply(*it), with_rngs(samples, "p")),
        (lambda it: unfused.apply(*it), with_rngs(samples, "p")),
        (peer, albumentations_state(raw, "p")),
        (torchvision, seeded_torch(tv_items)),
    ], args.repeat)
    f, u, a, t = rates
    print(f"{name:<34}{f:9.0f}{u:9.0f}{a:11.0f}{t:9.0f}{f / a:9.2f}{f / t:10.2f}{f / u:15.2f}")
    return (name, f, u, a, t)


# ---------------------------------------------------------------------------
# 2. Small images
# ---------------------------------------------------------------------------

def small_pipelines(size: int) -> list[tuple[str, int, int, list[dict]]]:
    """(name, size, channels, transforms): pipelines trained on small images."""
    pad = [{**SMALL[0], "min_height": size + 8, "min_width": size + 8}, {**SMALL[1], "height": size, "width": size}]
    return [
        (f"CIFAR: pad 4, crop, flip, norm, {size}px", size, 3, pad + SMALL[2:]),
        (f"CIFAR + ColorJitter(p 0.8), {size}px", size, 3,
         pad + [SMALL[2], {"name": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4,
                           "hue": 0.1, "p": 0.8}, SMALL[3]]),
        (f"SimCLR: RRC, flip, ToGray(p 0.2), norm, {size}px", size, 3,
         [{"name": "RandomResizedCrop", "size": [size, size], "scale": [0.2, 1.0], "p": 1.0}, SMALL[2],
          {"name": "ToGray", "p": 0.2}, SMALL[3]]),
        (f"geometry only: 2 flips + RandomRotate90, {size}px", size, 3,
         [SMALL[2], {"name": "VerticalFlip", "p": 0.5}, {"name": "RandomRotate90", "p": 1.0}]),
        ("MNIST: Rotate 15 + norm, gray 28px", 28, 1,
         [{"name": "Rotate", "limit": 15, "p": 1.0}, {"name": "Normalize", "mean": 0.1307, "std": 0.3081}]),
    ]


def small_section(args) -> list[tuple]:
    print("\n== Small images: images/s (best of %d, tools in alternation) ==" % args.repeat)
    print(f"{'pipeline':<46}{'fused':>9}{'unfused':>9}{'A.Compose':>11}{'fused/A':>9}{'fused/unfused':>15}")
    photos = make_photos(max(4, args.images // 4))
    cases = [case for size in (32, 64, 128) for case in small_pipelines(size)[:1]] + small_pipelines(32)[1:]
    rows = []
    for name, size, channels, spec in cases:
        images = []
        for k in range(args.images * 8):  # shrunk windows of the photos
            photo = photos[k % len(photos)]
            y, x = (k * 37) % (photo.shape[0] - 128), (k * 53) % (photo.shape[1] - 128)
            small = cv2.resize(photo[y:y + 128, x:x + 128], (size, size), interpolation=cv2.INTER_AREA)
            images.append(small if channels == 3 else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        samples = [Sample(index=i, image=x) for i, x in enumerate(images)]
        fused, unfused, alb = stage_of(spec, fuse=True), stage_of(spec, fuse=False), albumentations_pipeline(spec)

        def peer(item, alb=alb):
            data, rng, py_random = item
            alb.set_random_state(rng, py_random)
            return alb(image=data)

        f, u, a = alternating_rates([
            (lambda it, st=fused: st.apply(*it), with_rngs(samples, "s")),
            (lambda it, st=unfused: st.apply(*it), with_rngs(samples, "s")),
            (peer, albumentations_state(images, "s")),
        ], args.repeat)
        print(f"{name:<46}{f:9.0f}{u:9.0f}{a:11.0f}{f / a:9.2f}{f / u:15.2f}")
        rows.append((name, f, u, a))
    return rows


# ---------------------------------------------------------------------------
# 3. Sharpness: distance from one exact resample
# ---------------------------------------------------------------------------

def analytic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth test pattern (wavelengths 5..40 px) as a function of pixel-index position."""
    v = 127.5 + 40 * np.sin(2 * np.pi * (0.11 * x + 0.07 * y)) + 30 * np.sin(2 * np.pi * (-0.05 * x + 0.17 * y))
    return v + 20 * np.cos(2 * np.pi * 0.025 * (x + 2 * y))


def sharpness_section(args) -> list[tuple]:
    """Each tool warps an analytic pattern and a coordinate image (x, y, 1) with the same
    parameters; the coordinates give every output pixel's exact source position, where the
    pattern is evaluated: PSNR of the tool's uint8 output against that, over pixels with a
    full neighbourhood inside the source (higher: closer to one exact resample)."""
    print("\n== Sharpness: PSNR (dB) against the exact warp of an analytic pattern ==")
    print(f"{'geometry':<46}{'fused':>8}{'unfused':>9}{'A.Compose':>11}{'tv v2':>8}")
    rows = []
    cases = [
        ("detection: Affine + HorizontalFlip + Perspective", 480, 640,
         [DETECTION[0], DETECTION[1], {**DETECTION[3], "p": 1.0}],
         T.Compose([T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.5, 1.5), shear=(-2, 2, -2, 2),
                                   interpolation=BILINEAR),
                    T.RandomHorizontalFlip(), T.RandomPerspective(distortion_scale=0.2, p=1.0)])),
        ("OCR: Perspective + Rotate(expand)", 64, 400,
         [{**OCR[0], "p": 1.0, "fill": 0}, {**OCR[1], "fill": 0}],
         T.Compose([T.RandomPerspective(distortion_scale=0.1, p=1.0),
                    T.RandomRotation(3, expand=True, interpolation=BILINEAR)])),
    ]
    for name, height, width, spec, tv in cases:
        yy, xx = np.mgrid[:height, :width].astype(np.float64)
        pattern = np.repeat(np.clip(np.rint(analytic(xx, yy)), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
        coords = np.dstack([xx, yy, np.ones_like(xx)]).astype(np.float32)
        scores = {}
        for tool in ("fused", "unfused", "albumentations", "torchvision"):
            psnrs = []
            for i in range(args.sharpness_samples):
                out, where = warp_both(tool, spec, tv, pattern, coords, i)
                psnrs.append(psnr_against_analytic(out, where, height, width))
            scores[tool] = float(np.mean(psnrs))
        print(f"{name:<46}{scores['fused']:8.2f}{scores['unfused']:9.2f}{scores['albumentations']:11.2f}"
              f"{scores['torchvision']:8.2f}")
        rows.append((name, scores))
    return rows


def warp_both(tool, spec, tv, pattern, coords, i):
    """(tool's uint8 output of the pattern, its coordinate image under the same parameters)."""
    if tool in ("fused", "unfused"):
        stage = stage_of(spec, fuse=tool == "fused")
        out = stage.apply(Sample(index=i, image=pattern), sample_rng(0, "s", i)).image
        where = stage.apply(Sample(index=i, image=coords), sample_rng(0, "s", i)).image
        return out, where
    if tool == "albumentations":
        alb = albumentations_pipeline(spec, additional_targets={"coords": "image"})
        rng = sample_rng(0, "s", i)
        alb.set_random_state(rng, random.Random(derived_int_seed(rng)))
        result = alb(image=pattern, coords=coords)
        return result["image"], result["coords"]
    torch.manual_seed(i)
    image, where = tv(tv_tensors.Image(torch.from_numpy(pattern).permute(2, 0, 1)),
                      tv_tensors.Image(torch.from_numpy(coords).permute(2, 0, 1)))
    return image.permute(1, 2, 0).numpy(), where.permute(1, 2, 0).numpy()


def psnr_against_analytic(out: np.ndarray, where: np.ndarray, height: int, width: int) -> float:
    x, y, valid = where[:, :, 0].astype(np.float64), where[:, :, 1].astype(np.float64), where[:, :, 2]
    inside = (valid > 0.999) & (x >= 2) & (y >= 2) & (x <= width - 3) & (y <= height - 3)
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    reference = analytic(x, y)
    error = out[:, :, 0].astype(np.float64)[inside] - reference[inside]
    return float(10 * np.log10(255.0 ** 2 / np.mean(error ** 2)))


# ---------------------------------------------------------------------------
# 4. DataLoader end to end
# ---------------------------------------------------------------------------

class SceneSet(torch.utils.data.Dataset):
    """(CHW uint8 image, {"boxes", "labels", "masks"}) over in-memory scenes."""

    def __init__(self, scenes):
        self.scenes = [(torch.from_numpy(img).permute(2, 0, 1).contiguous(), torch.from_numpy(masks),
                        torch.tensor(boxes, dtype=torch.float32)) for img, masks, boxes in scenes]

    def __len__(self):
        return len(self.scenes)

    def __getitem__(self, i):
        image, masks, boxes = self.scenes[i]
        return image, {"boxes": boxes, "labels": torch.arange(len(boxes)), "masks": masks}


class AlbumentationsSet(torch.utils.data.Dataset):
    """What an albumentations user writes: tensors to arrays, A.Compose, arrays to tensors."""

    def __init__(self, base, spec):
        self.base = base
        self.compose = albumentations_pipeline(spec, bbox_params=A.BboxParams(format="pascal_voc",
                                                                              label_fields=["labels"]))

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, target = self.base[i]
        out = self.compose(image=image.permute(1, 2, 0).numpy(), masks=target["masks"].numpy(),
                           bboxes=target["boxes"].numpy(), labels=target["labels"].numpy())
        keep = torch.as_tensor(np.asarray(out["labels"], dtype=np.int64))
        return (torch.from_numpy(out["image"]).permute(2, 0, 1),
                {"boxes": torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32)).reshape(-1, 4),
                 "labels": keep, "masks": torch.from_numpy(np.asarray(out["masks"]))[keep]})


def collate_list(batch):
    return batch


class SmallSet(torch.utils.data.Dataset):
    """(CHW uint8 tensor, class) at 32x32, as torchvision's CIFAR10 with pil_to_tensor gives."""

    def __init__(self, images):
        self.images = [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in images]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i % 10


class AlbumentationsSmallSet(torch.utils.data.Dataset):
    """A.Compose on each item. `seeded`: each item's randomness from (seed, epoch, index), as
    imgsynth gives it (a Generator and a python Random seeded from it): item i is then the
    same in any worker; unseeded, the Compose draws from its own state."""

    def __init__(self, base, spec, seeded: bool = False):
        self.base, self.compose, self.seeded = base, albumentations_pipeline(spec), seeded

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        image, label = self.base[i]
        if self.seeded:
            rng = sample_rng(0, "augment/epoch/0", i)
            self.compose.set_random_state(rng, random.Random(derived_int_seed(rng)))
        out = self.compose(image=image.permute(1, 2, 0).numpy())["image"]
        return torch.from_numpy(out).permute(2, 0, 1), label


def dataloader_section(args) -> list[tuple]:
    from imgsynth.torch import AugmentedDataset

    print("\n== DataLoader end to end: num_workers=2, persistent workers, batches/s ==")
    scenes = SceneSet(make_scenes(args.loader_images))
    rng = np.random.default_rng(0)
    smalls = SmallSet([rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(args.loader_images * 64)])
    cases = [("detection, batch 8", [AugmentedDataset(scenes, DETECTION, seed=0), AlbumentationsSet(scenes, DETECTION)],
              8, collate_list),
             ("small 32x32 (CIFAR-style), batch 256",
              [AugmentedDataset(smalls, SMALL, seed=0), AlbumentationsSmallSet(smalls, SMALL),
               AlbumentationsSmallSet(smalls, SMALL, seeded=True)], 256, None)]
    rows = []
    for title, datasets, batch_size, collate in cases:
        rates = []
        for dataset in datasets:
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=2, collate_fn=collate,
                                                 persistent_workers=True)
            for _ in loader:  # warm-up epoch: starts the workers
                pass
            best = 0.0
            for epoch in range(1, 1 + args.loader_epochs):
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch)
                start = time.perf_counter()
                batches = sum(1 for _ in loader)
                best = max(best, batches / (time.perf_counter() - start))
            rates.append(best)
            del loader
        ours, peer = rates[:2]
        line = (f"{title:<38} imgsynth AugmentedDataset {ours:8.2f} | albumentations Dataset {peer:8.2f} "
                f"| ratio {ours / peer:5.2f}")
        if len(rates) > 2:
            line += f" | seeded per item {rates[2]:8.2f} | ratio {ours / rates[2]:5.2f}"
        print(line)
        rows.append((title, *rates))
    return rows


# ---------------------------------------------------------------------------
# 5. Kernels and single transforms (256x256)
# ---------------------------------------------------------------------------

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


def kernels_section(args) -> None:
    print("\n== Single transforms and kernels, 256x256 ==")
    items = make_items(args.images * 3)
    samples = [Sample(index=i, image=img, instances=[Instance("o", tight_bbox(m), mask=m) for m in ms])
               for i, (img, ms) in enumerate(items)]

    def compare(name, ours, peer, peer_name, items_ours, items_peer):
        a, b = paired_images_per_second(ours, items_ours, peer, items_peer, args.repeat)
        print(f"{name:<44} imgsynth {a:8.0f} img/s | {peer_name:<22} {b:8.0f} img/s | ratio {a / b:5.2f}")

    # The same albumentations pipeline, through imgsynth (fused) and raw A.Compose.
    spec = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "Rotate", "limit": 30, "p": 1.0},
            {"name": "RandomBrightnessContrast", "p": 1.0}, {"name": "GaussianBlur", "p": 0.5}]
    stage = stage_of(spec)
    raw = albumentations_pipeline(spec)
    raw_labeled = albumentations_pipeline(spec, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"]))
    bare = [Sample(index=s.index, image=s.image) for s in samples]

    def peer(compose, labels=False):
        def call(item):
            (image, masks), rng, py_random = item
            compose.set_random_state(rng, py_random)
            if not labels:
                return compose(image=image)
            return compose(image=image, masks=np.stack(masks).astype(np.uint8),
                           bboxes=[tight_bbox(m) for m in masks], ids=[0, 1, 2])
        return call

    compare("pipeline, image only", lambda it: stage.apply(*it), peer(raw), "A.Compose",
            with_rngs(bare, "b"), albumentations_state(items, "b"))
    compare("pipeline, 3 masks + boxes (ours: tight)", lambda it: stage.apply(*it),
            peer(raw_labeled, labels=True), "A.Compose(bboxes,masks)", with_rngs(samples, "b"),
            albumentations_state(items, "b"))

    gauss = A.GaussNoise(std_range=(10 / 255, 10 / 255), per_channel=True, p=1.0)
    compare("Gaussian noise sigma=10 (kernel)", lambda it: gaussian_noise_image(it[0][0], 10.0, it[1]),
            lambda it: gauss(image=it[0]), "A.GaussNoise", with_rngs(items, "n"), items)
    noise_stage = stage_of([{"name": "imgsynth.GaussianNoise", "sigma": 10}])
    compare("Gaussian noise sigma=10 (stage)", lambda it: noise_stage.apply(*it),
            lambda it: gauss(image=it[0]), "A.GaussNoise", with_rngs(bare, "n"), items)
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
    # A bare transform call draws nothing per sample; in a pipeline it runs in a Compose that
    # is seeded per sample, as the "pipeline" rows above run it.
    flip_stage = stage_of([{"name": "HorizontalFlip", "p": 1}])
    compare("horizontal flip, as a one-transform pipeline", lambda it: flip_stage.apply(*it),
            peer(A.Compose([A.HorizontalFlip(p=1)])), "A.Compose",
            with_rngs(bare, "g"), albumentations_state(items, "g"))

    # Batched torch path on CPU (per-sample flips, rotation, brightness/contrast, noise).
    from imgsynth.torch import BatchAugment

    batch = torch.stack(tensors[:64])
    batched = BatchAugment(seed=0, hflip=0.5, rotate_limit=30, brightness=0.1, contrast=0.1,
                           noise_sigma=(5, 10))
    cpu_stage = stage_of([{"name": "imgsynth.HorizontalFlip"}, {"name": "imgsynth.Rotate", "limit": 30},
                          {"name": "RandomBrightnessContrast", "p": 1},
                          {"name": "imgsynth.GaussianNoise", "sigma": [5, 10]}])
    # both best of --repeat passes over the same 64 images, taking turns
    gpu_like, cpu = alternating_rates([
        (lambda b: batched(b, batch_index=0), lambda: [batch]),
        (lambda s: cpu_stage.apply(s, sample_rng(0, "c", s.index)), bare[:64])], args.repeat)
    gpu_like *= len(batch)  # one item is a batch
    print(f"{'BatchAugment on ' + str(batch.device) + ' (B=64)':<44} {gpu_like:8.0f} img/s | "
          f"per-sample numpy path {cpu:8.0f} img/s | ratio {gpu_like / cpu:5.2f}")


SECTIONS = ("pipelines", "small", "sharpness", "dataloader", "kernels")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=60, help="images per pipeline pass")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sharpness-samples", type=int, default=12)
    parser.add_argument("--loader-images", type=int, default=64)
    parser.add_argument("--loader-epochs", type=int, default=3)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"cv2 threads {cv2.getNumThreads()}, torch threads {torch.get_num_threads()}, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, "
          f"albumentations {A.__version__}, torch {torch.__version__}, cv2 {cv2.__version__}, "
          f"cpus {os.cpu_count()}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if "pipelines" in args.sections:
        pipelines_section(args)
    if "small" in args.sections:
        small_section(args)
    if "sharpness" in args.sections:
        sharpness_section(args)
    if "dataloader" in args.sections:
        dataloader_section(args)
    if "kernels" in args.sections:
        kernels_section(args)


if __name__ == "__main__":
    main()
